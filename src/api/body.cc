#include "api/body.h"

#include <cstdlib>
#include <utility>

namespace kg::api {

BodyRead ReadBody(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
                  size_t max_bytes, httplib::Request* out) {
  *out = req;
  size_t seen = 0;
  const size_t drain_until = max_bytes * 4;
  // Counts `n` more bytes; false once past the drain bound.
  auto count = [&](size_t n) {
    seen += n;
    return seen <= drain_until;
  };
  bool ok;
  if (req.is_multipart_form_data()) {
    httplib::MultipartFormDataItems items;
    ok = reader(
        [&](const httplib::MultipartFormData& part) {
          items.push_back(part);
          return true;
        },
        [&](const char* data, size_t n) {
          if (!count(n)) return false;
          if (seen <= max_bytes && !items.empty()) items.back().content.append(data, n);
          return true;
        });
    if (ok && seen <= max_bytes) {
      for (auto& part : items) out->files.emplace(part.name, std::move(part));
    }
  } else {
    // One allocation for a body of known length instead of doubling (a 50 MB body grew
    // through 64 MB with the old 32 MB buffer still held).
    std::string length = req.get_header_value("Content-Length");
    if (!length.empty()) {
      unsigned long long n = std::strtoull(length.c_str(), nullptr, 10);
      if (n <= max_bytes) out->body.reserve(static_cast<size_t>(n));
    }
    ok = reader([&](const char* data, size_t n) {
      if (!count(n)) return false;
      if (seen <= max_bytes) out->body.append(data, n);
      return true;
    });
  }
  // httplib itself refuses a Content-Length over set_payload_max_length (status 413).
  if (seen > max_bytes || res.status == 413) {
    out->body.clear();
    out->files.clear();
    return BodyRead::kTooLarge;
  }
  return ok ? BodyRead::kOk : BodyRead::kBroken;
}

}  // namespace kg::api
