#pragma once
// The document a POST /api/v1/tasks carries, in any of the three accepted shapes:
// - application/json: {"text": ..., "title", "provider", "source", "id", "format"}; a body
//   with no content type or application/x-www-form-urlencoded (curl -d's default) that is a
//   JSON object is read the same way;
// - text/plain, text/markdown, text/html: the body is the document, the other fields are
//   query parameters (?title=...&provider=...); the content type implies the format unless
//   ?format= says otherwise. Large documents need no JSON escaping this way. A text/plain
//   body that is a JSON object with a string "text" is refused (kInvalidArgument saying to
//   send application/json) unless ?format= is given: it is a JSON client's mistake, and
//   storing it would make the braces part of the document;
// - multipart/form-data: a `file` part is the document (its content type implies the
//   format as above), the other fields are form parts or query parameters.
// Only the shape is checked here (field types and lengths, known format); whether the text
// is text and the provider exists is for the route.

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/message.h"

namespace kg::api {

struct Submission {
  // The document: a view of the request's body (text/* body) or file part (multipart), so
  // a 50 MB upload is not copied; of `owned` for JSON, where it had to be unescaped. Valid
  // while the request and this Submission live (`owned` is on the heap, so a move keeps it).
  std::string_view text;
  std::unique_ptr<std::string> owned;
  std::string title, provider, source, id;
  std::string format;  // text|markdown|html; "" when neither the field nor the content type says
};

// kInvalidArgument naming the field and what is accepted.
Result<Submission> ParseSubmission(const http::Request& req);

// The fields of a text/* submission from its query (title, provider, source, id, format),
// checked as ParseSubmission checks them; `text` is left empty.
Result<Submission> ParseQueryFields(const http::Request& head);

// Whether the body of `head` is a plain-text document (text/plain, ?format absent or text), the
// one shape that can be taken piece by piece as it arrives.
bool IsPlainTextUpload(const http::Request& head);

}  // namespace kg::api
