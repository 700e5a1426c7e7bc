#pragma once
// PlanTask for a document that arrives in pieces (an upload read as it comes): the text is
// checked, sanitised and chunked as it arrives, so the whole raw document is never held.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/util.h"
#include "pipeline/document.h"
#include "text/stream.h"
#include "text/text.h"

namespace kg {

// Not thread-safe: Add and Finish are called by one thread at a time (any thread: ICU state
// is per thread and per call).
//
// Memory: a bounded window of the text (ChunkStream: the next chunk and the sentence being
// read, plus up to `window_step` new bytes), then the plan itself: each chunk is encoded into
// its queue item as soon as it is final. A document id derived from the content is known only
// at Finish; until then the items carry a placeholder of the same length (hex needs no JSON
// escaping), overwritten in place by Finish.
class StreamPlanner {
 public:
  StreamPlanner(std::string task_id, std::string provider, std::string doc_id /* "" = derive */,
                std::string title, std::string source, ChunkOptions options,
                size_t window_step = ChunkStream::kDefaultStep);

  // Feeds the next piece of the raw document (any size, split anywhere, also inside a UTF-8
  // sequence). kInvalidArgument when CheckText would refuse the document for what the text so
  // far already shows (a NUL byte: the same message and offset); the planner is dead after an
  // error, and every later call returns it.
  Status Add(std::string_view piece);
  // Ends the document: the plan PlanTask(task_id, provider, doc_id, title, source, text,
  // options) gives for the concatenation `text` of every piece, or kInvalidArgument with
  // CheckText's message when CheckText refuses that text (its shares of invalid sequences and
  // control characters are known only now). An empty or blank document gives an empty plan.
  // Call once.
  Result<TaskPlan> Finish();

  size_t bytes() const { return check_.bytes(); }
  // Bytes of document text held besides the plan being built (the chunking window).
  size_t buffered_bytes() const { return chunker_.buffered_bytes(); }

 private:
  void Take(std::vector<Chunk>& chunks);

  std::string task_id_, provider_, doc_id_, title_, source_;
  bool derive_id_;  // doc_id_ is then the placeholder
  Sha256 hash_;  // of the raw bytes, when the id is derived
  Utf8Stream check_;
  ChunkStream chunker_;
  std::string sanitized_;     // scratch: the sanitised form of the current piece
  std::vector<Chunk> ready_;  // scratch: chunks made final by the current piece
  std::vector<ChunkItem> items_;
  Status failed_;
  bool finished_ = false;
};

}  // namespace kg
