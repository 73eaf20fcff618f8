// The dashboard's static files (server/http/assets/), embedded into the
// binary at build time by embed_assets.cmake (a generated assets_data.cc).
//
// Thread-safety: immutable data.
#pragma once

#include <cstddef>
#include <string_view>

namespace orchard::server::http {

struct Asset {
  std::string_view name;          // "index.html"
  std::string_view content_type;  // "text/html; charset=utf-8"
  std::string_view data;
};

// The asset called `name`, or nullptr.
const Asset* FindAsset(std::string_view name);

}  // namespace orchard::server::http
