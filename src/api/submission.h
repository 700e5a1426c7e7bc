#pragma once
// The document a POST /api/v1/tasks carries, in any of the three accepted shapes:
// - application/json: {"text": ..., "title", "provider", "source", "id", "format", "token_budget"}; a body
//   with no content type or application/x-www-form-urlencoded (curl -d's default) that is a
//   JSON object is read the same way;
// - text/plain, text/markdown, text/html: the body is the document, the other fields are
//   query parameters (?title=...&provider=...&token_budget=...); the content type implies the format unless
//   ?format= says otherwise. Large documents need no JSON escaping this way. A text/plain
//   body that is a JSON object with a string "text" is refused (kInvalidArgument saying to
//   send application/json) unless ?format= is given: it is a JSON client's mistake, and
//   storing it would make the braces part of the document;
// - multipart/form-data: a `file` part is the document (its content type implies the
//   format as above), the other fields are form parts or query parameters.
// Only the shape is checked here (field types and lengths, known format); whether the text
// is text and the provider exists is for the route.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
  // LLM tokens the task may spend, 0 = no limit: "token_budget", a whole number from 0 to
  // 2^63-1 (a JSON integer; in a query or a form part, its decimal digits).
  int64_t token_budget = 0;
};

// kInvalidArgument naming the field and what is accepted.
Result<Submission> ParseSubmission(const http::Request& req);

// The fields of a text/* submission from its query (title, provider, source, id, format, token_budget),
// checked as ParseSubmission checks them; `text` is left empty.
Result<Submission> ParseQueryFields(const http::Request& head);

// The documents of a POST /api/v1/tasks/batch body, each in the JSON shape above (an object
// with "text" and the optional fields), in either of two shapes:
// - application/x-ndjson: one object per line (blank lines are skipped; a line may end in \r\n);
// - application/json: an array of objects.
// `where` names a document in messages: "line 7" (NDJSON, the line in the body, blanks
// counted, so an editor finds it) or "document 7" (the array, counted from 1).
struct BatchDocument {
  std::string where;
  Submission fields;
};
struct Batch {
  std::vector<BatchDocument> documents;  // in input order; empty when over the cap
  size_t count = 0;                      // documents the body holds
};

// The most documents a batch may carry (413 past it).
constexpr size_t kMaxBatchDocuments = 10000;

// The documents of a batch body, each checked as ParseSubmission checks a JSON one.
// kInvalidArgument for an unsupported content type, an empty body or one with no document, or
// the first bad document (its `where` and the field). A body holding more than max_documents
// is not read past the count: ok, with `documents` empty and `count` set (the route answers 413).
Result<Batch> ParseBatch(const http::Request& req, size_t max_documents);

// Whether the body of `head` is a plain-text document (text/plain, ?format absent or text), the
// one shape that can be taken piece by piece as it arrives.
bool IsPlainTextUpload(const http::Request& head);

}  // namespace kg::api
