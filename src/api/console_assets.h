#pragma once
// The web console's static files (web/), built by web/build.sh and compiled into the binary by
// embed_assets.cmake: served at / and /NAME, nothing fetched at run time.

#include <cstddef>
#include <string_view>

namespace kg::api {

struct ConsoleAsset {
  const char* name;  // file name, no directory ("index.html", "app.js")
  const char* content_type;
  const char* etag;  // a quoted digest of the content, for If-None-Match
  const unsigned char* data;
  std::size_t size;
};

namespace internal {
extern const ConsoleAsset kConsoleAssets[];
extern const std::size_t kConsoleAssetCount;
}  // namespace internal

// The asset named `name`, or nullptr.
inline const ConsoleAsset* FindConsoleAsset(std::string_view name) {
  for (std::size_t i = 0; i < internal::kConsoleAssetCount; ++i) {
    if (name == internal::kConsoleAssets[i].name) return &internal::kConsoleAssets[i];
  }
  return nullptr;
}

}  // namespace kg::api
