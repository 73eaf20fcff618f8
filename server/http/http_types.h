// The HTTP request and response as the handlers see them: plain values with
// no Beast types, so handlers are tested without sockets, and the parsing of
// a request target into a path and its query parameters.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orchard::server::http {

struct HttpRequest {
  std::string method;                        // "GET"
  std::string path;                          // percent-decoded, without the query
  std::map<std::string, std::string> query;  // decoded; a repeated key keeps the last value
  std::string target_error;                  // non-empty: the target could not be parsed
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Splits "/api/v1/tasks?state=Running&limit=5" into path and query, decoding
// %XX and '+' (in the query). A malformed escape sets target_error.
HttpRequest ParseTarget(std::string method, std::string_view target);

}  // namespace orchard::server::http
