#include "pipeline/stream_plan.h"

#include <utility>

namespace kg {

namespace {

// Stands for a derived document id until it is known: DocumentIdFor's length ("d" and 24 hex
// digits), and found only where the payload holds the id (see Finish).
const std::string kPlaceholderId = "d" + std::string(24, '0');

}  // namespace

StreamPlanner::StreamPlanner(std::string task_id, std::string provider, std::string doc_id, std::string title,
                             std::string source, ChunkOptions options, size_t window_step)
    : task_id_(std::move(task_id)),
      provider_(std::move(provider)),
      doc_id_(std::move(doc_id)),
      title_(std::move(title)),
      source_(std::move(source)),
      derive_id_(doc_id_.empty()),
      chunker_(options, window_step) {
  if (derive_id_) doc_id_ = kPlaceholderId;
}

void StreamPlanner::Take(std::vector<Chunk>& chunks) {
  for (Chunk& c : chunks) {
    int idx = static_cast<int>(items_.size());
    std::string i = std::to_string(idx);
    // The payload takes the text and frees it once encoded.
    ChunkPayload p{doc_id_, title_, source_, doc_id_ + ":" + i, std::move(c.text), idx, static_cast<int64_t>(c.offset)};
    items_.push_back({task_id_ + ":" + i, task_id_, provider_, idx, EncodePayload(p)});
  }
  chunks.clear();
}

Status StreamPlanner::Add(std::string_view piece) {
  if (finished_) return Status::Internal("StreamPlanner::Add after Finish");
  if (!failed_.ok()) return failed_;
  if (derive_id_) hash_.Update(piece);  // the id is of the raw bytes, as DocumentIdFor's
  sanitized_.clear();
  if (Status s = check_.Add(piece, sanitized_); !s.ok()) return failed_ = s;
  chunker_.Add(sanitized_, ready_);
  Take(ready_);
  return Status::Ok();
}

Result<TaskPlan> StreamPlanner::Finish() {
  if (finished_) return Status::Internal("StreamPlanner::Finish called twice");
  finished_ = true;
  if (!failed_.ok()) return failed_;
  sanitized_.clear();
  if (Status s = check_.Finish(sanitized_); !s.ok()) return failed_ = s;
  chunker_.Add(sanitized_, ready_);
  chunker_.Finish(ready_);
  Take(ready_);
  TaskPlan plan;
  plan.doc_id = std::move(doc_id_);
  if (derive_id_) {
    plan.doc_id = "d" + hash_.HexDigest().substr(0, 24);  // DocumentIdFor's form
    // The payload's keys are sorted ("chunk_id", "doc_id", "idx", ..., "text", "title"): the
    // first two occurrences are the ids, before any text from the document or the caller.
    for (ChunkItem& item : items_) {
      size_t chunk_id = item.payload.find(kPlaceholderId);
      size_t doc_id = chunk_id == std::string::npos ? chunk_id : item.payload.find(kPlaceholderId, chunk_id + 1);
      if (doc_id == std::string::npos || item.payload.find("\"chunk_id\":\"") + 12 != chunk_id ||
          item.payload.find("\"doc_id\":\"") + 10 != doc_id) {
        return failed_ = Status::Internal("chunk payload without the document id placeholder: " + item.payload.substr(0, 80));
      }
      item.payload.replace(chunk_id, plan.doc_id.size(), plan.doc_id);
      item.payload.replace(doc_id, plan.doc_id.size(), plan.doc_id);
    }
  }
  plan.items = std::move(items_);
  return plan;
}

}  // namespace kg
