// Request-target parsing; see http_types.h.
#include "server/http/http_types.h"

namespace orchard::server::http {

namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// false on a malformed %XX.
bool Decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = Hex(in[i + 1]), lo = Hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

}  // namespace

HttpRequest ParseTarget(std::string method, std::string_view target) {
  HttpRequest r;
  r.method = std::move(method);
  const size_t q = target.find('?');
  if (!Decode(target.substr(0, q), false, r.path)) {
    r.target_error = "the path has a malformed %-escape";
    return r;
  }
  if (q == std::string_view::npos) return r;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string key, value;
    if (!Decode(pair.substr(0, eq), true, key) ||
        (eq != std::string_view::npos && !Decode(pair.substr(eq + 1), true, value))) {
      r.target_error = "the query has a malformed %-escape";
      return r;
    }
    r.query[key] = value;
  }
  return r;
}

}  // namespace orchard::server::http
