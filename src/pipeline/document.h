#pragma once
// From a submitted document to queue items, and from a provider's extraction to the
// graph batch of one chunk (normalised keys, provenance).

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "graph/graph_store.h"
#include "text/text.h"
#include "provider/extraction.h"
#include "queue/queue.h"

namespace kg {

// What the queue carries for one chunk (serialised as JSON in ChunkItem::payload).
struct ChunkPayload {
  std::string doc_id, title, source, chunk_id, text;
  int idx = 0;
  // Byte offset of `text` in the (sanitised) document; -1 when unknown, as in payloads queued
  // by a kgflow before sentence evidence: then the chunk stands for the sentence.
  int64_t offset = -1;
};
std::string EncodePayload(const ChunkPayload& p);
Result<ChunkPayload> DecodePayload(const std::string& json);

// "d" + the first 24 hex digits of the SHA-256 of the text: equal text, equal id.
std::string DocumentIdFor(std::string_view text);

struct TaskPlan {
  std::string doc_id;
  std::vector<ChunkItem> items;
};
// Chunks `text` for `provider` (invalid UTF-8 replaced by U+FFFD first); queue ids are
// "<task_id>:<idx>", graph chunk ids "<doc_id>:<idx>". `doc_id` empty means derive it
// from the content.
TaskPlan PlanTask(const std::string& task_id, const std::string& provider, std::string doc_id,
                  const std::string& title, const std::string& source, std::string_view text,
                  const ChunkOptions& options);

// Normalises names to keys, drops empty names and self-relations, folds duplicates,
// and makes sure both ends of every relation are entities of the chunk.
//
// Each relation carries the ids of the document's sentences it was read from
// (RelationRec::sentences, "<doc_id>@<byte offset in the document>"): the chunk's sentence
// holding the relation's quoted `sentence` when it is found verbatim, else the first
// sentence of the chunk that names both ends as written (for the n-th report of the same
// relation, the n-th such sentence: an extractor reading sentence by sentence reports it once
// per sentence), else none (the chunk's id then stands for the sentence; so too when the
// payload's offset is unknown). A sentence read in two overlapping chunks gets the same id
// from both, so the graph counts it once.
GraphBatch BuildBatch(const ChunkPayload& chunk, const Extraction& extraction);

}  // namespace kg
