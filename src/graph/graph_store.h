#pragma once
// The knowledge graph:
//   (:Document {id,title,source})-[:HAS_CHUNK]->(:Chunk {id,idx,text})
//   (:Chunk)-[:MENTIONS]->(:Entity {key,name,type,description})
//   (:Entity)-[:RELATION {type, evidence:[chunk ids], weight}]->(:Entity)
//
// Contract (tests/graph/graph_store_contract_test.cc): Merge is idempotent — merging the
// same batch twice leaves every count and every evidence set unchanged; relation weight
// is the size of its evidence set; an entity keeps its first non-empty description.
//
// Fencing: a batch is one chunk's whole contribution (its mentions and the evidence of its
// relations), written in one transaction together with the chunk's lease generation
// (queue.h). A batch whose generation is older than the one stored for its chunk is
// refused with kConflict and changes nothing: a worker that stalled after losing its
// lease cannot overwrite the newer holder's result. A batch of the same or a newer
// generation *replaces* the chunk's previous contribution (an LLM may answer differently
// the second time): mentions and evidence it no longer has are removed, and a relation
// left without evidence or an entity left without mentions is deleted.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace kg {

struct Config;

struct DocumentRec {
  std::string id, title, source;
};
struct ChunkRec {
  std::string id, doc_id;
  int idx = 0;
  std::string text;
  int64_t generation = 0;  // the lease generation that wrote this contribution
};
struct EntityRec {
  std::string key, name, type, description;
  int64_t mentions = 0;  // filled by queries
};
struct RelationRec {
  std::string src, dst, type;       // entity keys and relation type
  std::vector<std::string> evidence;  // chunk ids (filled by queries)
  int64_t weight = 0;                 // filled by queries
};

// Everything one chunk contributes; the chunk's id is the evidence of its relations.
struct GraphBatch {
  DocumentRec doc;
  ChunkRec chunk;
  std::vector<EntityRec> entities;
  std::vector<RelationRec> relations;
};

struct GraphStats {
  int64_t documents = 0, chunks = 0, entities = 0, relations = 0;
};

struct Neighbour {
  std::string direction;  // "out" or "in"
  RelationRec relation;
  EntityRec entity;       // the other end
};

struct EntityDetail {
  EntityRec entity;
  std::vector<Neighbour> neighbours;
  std::vector<std::string> chunks;  // chunk ids that mention it
  std::vector<std::string> documents;
};

struct GraphSnapshot {
  std::vector<DocumentRec> documents;
  std::vector<ChunkRec> chunks;
  std::vector<EntityRec> entities;
  std::vector<std::pair<std::string, std::string>> mentions;  // (chunk id, entity key)
  std::vector<RelationRec> relations;
};

class GraphStore {
 public:
  virtual ~GraphStore() = default;
  // Writes the batches in one transaction. kConflict (and nothing written) when any batch
  // is older than its chunk's stored generation.
  virtual Status Merge(const std::vector<GraphBatch>& batches) = 0;
  virtual Result<GraphStats> Stats() = 0;
  // Entities whose name or key contains `q` (case-insensitive), most mentioned first.
  virtual Result<std::vector<EntityRec>> SearchEntities(const std::string& q, int limit) = 0;
  virtual Result<EntityDetail> GetEntity(const std::string& key) = 0;
  virtual Result<GraphSnapshot> Export() = 0;
};

Result<std::unique_ptr<GraphStore>> OpenSqliteGraphStore(const std::string& path);
Result<std::unique_ptr<GraphStore>> OpenGraphStore(const Config& config);

// Serialisations of a snapshot.
std::string ExportJson(const GraphSnapshot& s);
std::string ExportGraphml(const GraphSnapshot& s);

}  // namespace kg
