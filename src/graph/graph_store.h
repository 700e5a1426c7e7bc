#pragma once
// The knowledge graph:
//   (:Document {id,title,source})-[:HAS_CHUNK]->(:Chunk {id,idx,text})
//   (:Chunk)-[:MENTIONS]->(:Entity {key,name,type,description})
//   (:Entity)-[:RELATION {type, evidence:[chunk ids], weight}]->(:Entity)
//
// Evidence is kept per (relation, chunk, sentence): the chunk that stated the relation and
// the id of the document's sentence it was read from (RelationRec::sentences). A relation's
// `evidence` is the set of its chunk ids (provenance); its `weight` is the number of distinct
// sentences, so one sentence read in two overlapping chunks counts once and two sentences
// count twice.
//
// Contract (tests/graph/graph_store_contract_test.cc): Merge is idempotent — merging the
// same batch twice leaves every count and every evidence set unchanged; relation weight
// is the number of distinct sentences among its evidence; an entity keeps its first
// non-empty description.
//
// Fencing: a batch is one chunk's whole contribution (its mentions and the evidence of its
// relations), written in one transaction together with the chunk's lease generation
// (queue.h). A batch whose generation is older than the one stored for its chunk is
// refused with kConflict and changes nothing: a worker that stalled after losing its
// lease cannot overwrite the newer holder's result. A batch of the same or a newer
// generation *replaces* the chunk's previous contribution (an LLM may answer differently
// the second time): mentions and evidence it no longer has are removed, and a relation
// left without evidence or an entity left without mentions is deleted. Only the chunk's own
// evidence rows go: a sentence another chunk also read keeps that chunk's row and its weight.
//
// Thread safety: every method may be called from any thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/pool_usage.h"
#include "common/status.h"

namespace kg {

struct Config;
struct MysqlEndpoint;  // mysql/endpoint.h
struct Neo4jEndpoint;  // bolt/endpoint.h

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
  int64_t weight = 0;                 // distinct sentences (filled by queries)
  // In a batch: ids of the sentences of the document the chunk states the relation in,
  // "<doc_id>@<byte offset of the sentence in the document>" (BuildBatch); empty means the
  // chunk's id stands for its one sentence. Not filled by queries.
  std::vector<std::string> sentences{};
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

// Receives a streamed export (GraphStore::ExportTo) one record at a time. A non-OK
// Status from any call ends the export, and ExportTo returns it. The references are valid
// only for the call.
class GraphSink {
 public:
  virtual ~GraphSink() = default;
  virtual Status Document(const DocumentRec& d) = 0;
  virtual Status Chunk(const ChunkRec& c) = 0;
  virtual Status Entity(const EntityRec& e) = 0;  // with `mentions` filled
  virtual Status Mention(const std::string& chunk_id, const std::string& entity_key) = 0;
  virtual Status Relation(const RelationRec& r) = 0;  // with `evidence` and `weight` filled
};

// The most chunk ids one GetChunks call takes: a bound on one query's parameters and reply.
inline constexpr size_t kGetChunksMax = 200;
// kInvalidArgument when a GetChunks call names more than kGetChunksMax ids (every backend's check).
inline Status CheckGetChunksCount(size_t n) {
  if (n <= kGetChunksMax) return Status::Ok();
  return Status::Invalid("get chunks: " + std::to_string(n) + " ids, at most " + std::to_string(kGetChunksMax));
}

class GraphStore {
 public:
  virtual ~GraphStore() = default;
  // Writes the batches in one transaction. kConflict (and nothing written) when any batch
  // is older than its chunk's stored generation.
  virtual Status Merge(const std::vector<GraphBatch>& batches) = 0;
  virtual Result<GraphStats> Stats() = 0;
  // Entities whose name or key's name part contains `q` (case-insensitive), most mentioned
  // first. The key is matched with `q` folded as keys are (NormalizeName), so case in every
  // script, width and compatibility forms do not matter: "ΣΊΣΥΦΟΣ" finds
  // "organization:σίσυφοσ labs"; the type prefix is not searched ("person" is no one's name).
  // An empty `q` lists the most mentioned; a `q` that folds to nothing (white space, format
  // characters) finds nothing.
  virtual Result<std::vector<EntityRec>> SearchEntities(const std::string& q, int limit) = 0;
  // kNotFound when no entity has exactly this key.
  virtual Result<EntityDetail> GetEntity(const std::string& key) = 0;
  // The stored chunks among `ids` (at most kGetChunksMax of them, else kInvalidArgument), with
  // doc_id, idx and text, ordered by (doc_id, idx, id); unknown ids are skipped and repeated
  // ids give one record. One round trip: what an entity's provenance view reads to show the
  // text behind its evidence. `generation` is not filled.
  virtual Result<std::vector<ChunkRec>> GetChunks(const std::vector<std::string>& ids) = 0;
  // Keys of every entity, of any type, whose key's name part ("<type>:<name>") equals
  // `normalized_name`, sorted; empty when there is none. The caller normalises the name
  // the way keys are made (NormalizeName), so "Meridian  ANALYTICS" finds
  // "organization:meridian analytics".
  virtual Result<std::vector<std::string>> FindByName(const std::string& normalized_name) = 0;
  // The whole graph in memory; for small graphs and tests. Prefer ExportTo.
  virtual Result<GraphSnapshot> Export() = 0;
  // Streams the same content as Export(), in the same order, section by section: every
  // document (by id), then every chunk (by document, index), entity (by key), mention (by
  // chunk, entity) and relation (by source, target, type; evidence sorted). Memory stays
  // bounded whatever the graph size, the records come from one consistent snapshot, and a
  // slow sink does not block the store's other callers.
  virtual Status ExportTo(GraphSink& sink) = 0;
  // The connections of this store's pool in this process now (a snapshot, cheap, thread-safe);
  // nullopt for the embedded store, which has no pool.
  virtual std::optional<PoolUsage> Connections() const { return std::nullopt; }
};

Result<std::unique_ptr<GraphStore>> OpenSqliteGraphStore(const std::string& path);
// The graph in a MySQL/MariaDB database (tables graph_*, beside the task store's), its schema
// brought up to date under the database's migration lock (component "graph"). Keys of any
// length and script are compared exactly (by SHA-256, never by collation). kUnavailable when
// the server cannot be reached, kInvalidArgument for a bad endpoint.
Result<std::unique_ptr<GraphStore>> OpenMysqlGraphStore(const MysqlEndpoint& endpoint);
// The graph in Neo4j 5 over Bolt (bolt:// or neo4j:// with routing): nodes merged on the
// SHA-256 of their id or key under uniqueness constraints created at open, relation types
// stored as data, writes batched (UNWIND) in one transaction per Merge with the fence first
// (neo4j_graph_store.cc says how, and what consistency ExportTo gives). kUnavailable when the
// server cannot be reached, kInvalidArgument for refused credentials or a bad endpoint.
Result<std::unique_ptr<GraphStore>> OpenNeo4jGraphStore(const Neo4jEndpoint& endpoint);
Result<std::unique_ptr<GraphStore>> OpenGraphStore(const Config& config);

// The whole of a streamed export (`stream` calls the sink for every record) in memory: how a
// store implements Export() over its ExportTo.
Result<GraphSnapshot> CollectExport(const std::function<Status(GraphSink&)>& stream);

// Serialisations of a snapshot.
std::string ExportJson(const GraphSnapshot& s);
std::string ExportGraphml(const GraphSnapshot& s);

// Receives serialised text piece by piece; returns false when the reader has gone, which
// ends the export with kUnavailable.
using ByteSink = std::function<bool(std::string_view)>;
// Stream the graph's serialisation into `out` with bounded memory (pieces of about
// 64 KiB). Same document as ExportJson / ExportGraphml of Export().
Status StreamJson(GraphStore& g, const ByteSink& out);
Status StreamGraphml(GraphStore& g, const ByteSink& out);

// Text for GraphML element content or attribute values: markup characters escaped, and
// every character XML 1.0 forbids (C0 controls other than tab, LF, CR; U+FFFE, U+FFFF;
// invalid UTF-8, surrogates included) replaced by U+FFFD.
std::string GraphmlEscape(std::string_view s);

}  // namespace kg
