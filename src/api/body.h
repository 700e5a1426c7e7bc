#pragma once
// Reads a request body under the KG_MAX_BODY_MB limit whatever its transfer encoding.
//
// Debian's cpp-httplib 0.11.4 applies set_payload_max_length only to a body with a
// Content-Length; a chunked body (or one ended by closing the connection) was read into
// memory whole, however large. Every route that can carry a body is therefore registered
// with a content reader, and the body is read here, counting bytes as they arrive.

#include <httplib.h>

#include <cstddef>

namespace kg::api {

enum class BodyRead {
  kOk,        // `out` holds the body (req.body, or req.files for multipart)
  kTooLarge,  // over `max_bytes`: answer 413 and close the connection
  kBroken,    // the body could not be read (malformed chunking or multipart, timeout)
};

// Reads the body of `req` through `reader` into `out` (a copy of `req` with body or files
// filled). Nothing beyond `max_bytes` is kept: past the limit the rest is read and thrown
// away, so the client sees the 413 instead of a reset, up to 4 x `max_bytes`, after which
// reading stops (the caller must close the connection, as for any non-kOk result).
BodyRead ReadBody(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
                  size_t max_bytes, httplib::Request* out);

}  // namespace kg::api
