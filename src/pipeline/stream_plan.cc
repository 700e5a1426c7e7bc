#include "pipeline/stream_plan.h"

#include <utility>

namespace kg {

StreamPlanner::StreamPlanner(std::string task_id, std::string provider, std::string doc_id, std::string title,
                             std::string source, ChunkOptions options, size_t window_step)
    : task_id_(std::move(task_id)),
      provider_(std::move(provider)),
      doc_id_(std::move(doc_id)),
      title_(std::move(title)),
      source_(std::move(source)),
      derive_id_(doc_id_.empty()),
      chunker_(options, window_step) {}

void StreamPlanner::Encode(const std::string& doc_id, Chunk& chunk) {
  int idx = static_cast<int>(items_.size());
  std::string i = std::to_string(idx);
  // The payload takes the text and frees it when encoded.
  ChunkPayload p{doc_id, title_, source_, doc_id + ":" + i, std::move(chunk.text), idx,
                 static_cast<int64_t>(chunk.offset)};
  items_.push_back({task_id_ + ":" + i, task_id_, provider_, idx, EncodePayload(p)});
}

void StreamPlanner::Take(std::vector<Chunk>& chunks) {
  for (Chunk& c : chunks) {
    if (derive_id_) {
      held_.push_back(std::move(c));
    } else {
      Encode(doc_id_, c);
    }
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
  plan.doc_id = derive_id_ ? "d" + hash_.HexDigest().substr(0, 24) : std::move(doc_id_);  // DocumentIdFor's form
  for (Chunk& c : held_) Encode(plan.doc_id, c);
  held_.clear();
  plan.items = std::move(items_);
  return plan;
}

}  // namespace kg
