// The graph in Neo4j 5 over Bolt (graph_store.h's model and contract):
//   (:Document {sha, id, title, source})-[:HAS_CHUNK]->(:Chunk {sha, id, doc_sha, doc_id, idx, text,
//     generation, rels})-[:MENTIONS]->(:Entity {sha, key, name, type, description, name_sha, name_part})
//   (:Entity)-[:RELATION {sha, type, ev, evidence, weight}]->(:Entity)
//
// Identity by hash, as in the MySQL store: every node is merged on `sha`, the SHA-256 (hex) of
// its id or key, under a uniqueness constraint; a relation on the SHA-256 of its length-prefixed
// (src, dst, type). Neo4j's range indexes refuse values of more than about 8 KB, so an index on
// the text itself would make a long entity name fail its whole batch; the hash makes a key of
// any length and script indexable and exact. FindByName looks up `name_sha` (the hash of the
// key's name part), indexed.
//
// Every value is a parameter. A relation's type is data (the `type` property of the one
// relationship type RELATION), never part of the Cypher text, so no type can change a query.
//
// Evidence: `ev` on the relationship is the set of its (sentence, chunk) pairs, each written as
// the sentence id's SHA-256 (64 hex characters) followed by the chunk id, so it splits without a
// separator. `evidence` (chunk ids, sorted) and `weight` (distinct sentences) are derived from
// it in the same transaction, for people who browse the graph; the store's reads derive them
// from `ev` themselves. A chunk's `rels` lists the relations it holds evidence in, so replacing
// its contribution finds them by index.
//
// Merge: one write transaction per call (Pool::InTransaction, deadlocks and other transient
// errors retried with jitter) and a handful of `UNWIND $rows ... MERGE` statements per run of
// batches with distinct chunks, rows sorted by key so concurrent merges lock in the same order.
// The fence comes first: every chunk node of the call is merged and write-locked, and its
// stored generation read under the lock, before anything else is written.
//
// Export: Neo4j reads are read committed, not snapshots. ExportTo therefore reads the whole
// graph quickly in one read transaction into a temporary file (bounded memory: records are
// pulled in batches) and then feeds the sink from the file, so a slow sink holds no
// connection, no transaction and no lock. The sections are read one after the other: D
// (documents), C (chunks), E (entities), M (mentions), R (relations). What it gives: every
// record of a Merge committed before the first section was read, none of one committed after
// the last. A Merge that commits between two sections shows in the later ones only: its chunk
// without its document (between D and C), its mention without its entity (between E and M),
// its relation without its ends (between E and R), and an entity's mention count (read in E)
// that disagrees with M. A Merge that replaces a chunk's contribution and commits mid-spool
// also deletes: what it deleted shows in the earlier sections only (an entity in E none of
// whose mentions are in M, say). Such dangling references are not dropped: a record created
// after its section was read exists again when the next section is read, so re-checking
// existence in that section's query cannot tell, and remembering every exported key would
// cost memory in the size of the graph. For an exact copy, export while no Merge runs.
// Each section's order is Cypher's ORDER BY on strings, which compares by code point: the
// same as the byte order of UTF-8 that graph_store.h asks for (checked by
// Neo4jGraph.ExportOrderIsByteOrder).
#include "graph/neo4j_graph_store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "bolt/bolt.h"
#include "common/util.h"
#include "graph/keys.h"
#include "text/text.h"

namespace kg {
namespace {

using bolt::AccessMode;
using bolt::Connection;
using bolt::List;
using bolt::Map;
using bolt::Value;

// ---------------------------------------------------------------------------------------
// Schema, created at open (every statement idempotent).
constexpr const char* kSchema[] = {
    "CREATE CONSTRAINT kg_document_sha IF NOT EXISTS FOR (d:Document) REQUIRE d.sha IS UNIQUE",
    "CREATE CONSTRAINT kg_chunk_sha IF NOT EXISTS FOR (c:Chunk) REQUIRE c.sha IS UNIQUE",
    "CREATE CONSTRAINT kg_entity_sha IF NOT EXISTS FOR (e:Entity) REQUIRE e.sha IS UNIQUE",
    "CREATE INDEX kg_entity_name_sha IF NOT EXISTS FOR (e:Entity) ON (e.name_sha)",
    "CREATE INDEX kg_relation_sha IF NOT EXISTS FOR ()-[r:RELATION]-() ON (r.sha)",
};

// The identity of a relation (graph/keys.h).
std::string RelationSha(std::string_view src, std::string_view dst, std::string_view type) {
  return Sha256Hex(graph_keys::RelationIdentity(src, dst, type));
}

using graph_keys::NamePart;

constexpr size_t kShaHex = 64;

// An `ev` entry: the sentence's hash, then the chunk id.
std::string EvEntry(std::string_view sentence, std::string_view chunk_id) {
  std::string e = Sha256Hex(sentence);
  e += chunk_id;
  return e;
}

// A relation's evidence (chunk ids, sorted by bytes) and weight (distinct sentences) from its `ev`.
void FillEvidence(const List& ev, RelationRec& r) {
  std::set<std::string> chunks, sentences;
  for (const Value& v : ev) {
    const std::string& e = v.AsString();
    if (e.size() < kShaHex) continue;
    sentences.insert(e.substr(0, kShaHex));
    chunks.insert(e.substr(kShaHex));
  }
  r.evidence.assign(chunks.begin(), chunks.end());
  r.weight = static_cast<int64_t>(sentences.size());
}

List Strings(const std::vector<std::string>& v) {
  List out;
  out.reserve(v.size());
  for (const std::string& s : v) out.emplace_back(s);
  return out;
}

// ---------------------------------------------------------------------------------------
// What one run of batches with distinct chunk ids writes, folded in C++ so that each statement
// gets all its rows at once: deduplicated (the first writer's title, name and type; an entity's
// first non-empty description in batch order) and sorted by hash.
struct Segment {
  struct Chunk {
    std::string id, text;
    int64_t generation = 0;
    std::set<std::string> entities;   // shas of the entities it mentions
    std::set<std::string> relations;  // shas of the relations it states
  };
  struct Doc {
    std::string id, title, source;
  };
  struct Entity {
    std::string key, name, type, description, name_sha;
  };
  struct Relation {
    std::string src_sha, dst_sha, src, dst, type;
    std::set<std::string> ev;  // EvEntry
  };
  std::map<std::string, Chunk> chunks;      // by sha
  std::map<std::string, Doc> docs;          // by sha
  std::map<std::string, Entity> entities;   // by sha
  std::set<std::pair<std::string, std::string>> mentions;  // (chunk sha, entity sha)
  std::map<std::string, Relation> relations;  // by sha
};

// Splits `batches` into runs in which no chunk comes twice (a chunk merged twice in one call
// replaces its first contribution, so the second must see the first written).
std::vector<Segment> PlanSegments(const std::vector<GraphBatch>& batches) {
  std::vector<Segment> out;
  for (const GraphBatch& b : batches) {
    const std::string chunk_sha = Sha256Hex(b.chunk.id);
    if (out.empty() || out.back().chunks.count(chunk_sha) > 0) out.emplace_back();
    Segment& s = out.back();
    Segment::Chunk& ch = s.chunks[chunk_sha];
    ch.id = b.chunk.id;
    ch.text = b.chunk.text;
    ch.generation = b.chunk.generation;
    s.docs.try_emplace(Sha256Hex(b.doc.id), Segment::Doc{b.doc.id, b.doc.title, b.doc.source});
    for (const EntityRec& e : b.entities) {
      const std::string sha = Sha256Hex(e.key);
      auto [it, fresh] = s.entities.try_emplace(
          sha, Segment::Entity{e.key, e.name, e.type, e.description, Sha256Hex(NamePart(e.key))});
      if (!fresh && it->second.description.empty()) it->second.description = e.description;
      s.mentions.emplace(chunk_sha, sha);
      ch.entities.insert(sha);
    }
    for (const RelationRec& r : b.relations) {
      const std::string sha = RelationSha(r.src, r.dst, r.type);
      auto it = s.relations.try_emplace(sha, Segment::Relation{Sha256Hex(r.src), Sha256Hex(r.dst), r.src, r.dst, r.type, {}})
                    .first;
      // No sentence known: the chunk stands for its one sentence.
      if (r.sentences.empty()) it->second.ev.insert(EvEntry(b.chunk.id, b.chunk.id));
      for (const std::string& sentence : r.sentences) it->second.ev.insert(EvEntry(sentence, b.chunk.id));
      ch.relations.insert(sha);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Statements (every value a parameter; $rows sorted by the key the statement merges on).
//
// Every statement that computes a property from its stored value write-locks the node or
// relationship first (SET _lock ... REMOVE _lock) and reads it after: Neo4j reads are read
// committed and take no lock, so a read-then-SET in one clause loses a concurrent Merge's update.

// Merges and write-locks each chunk node of the call, then reads its generation: a concurrent
// Merge of the same chunk waits at the lock and then reads what the first one committed.
constexpr const char* kFence =
    "UNWIND $rows AS row "
    "MERGE (c:Chunk {sha: row.sha}) "
    "ON CREATE SET c.id = row.id, c.doc_sha = row.doc_sha, c.doc_id = row.doc_id, c.idx = row.idx, c.text = '', "
    "c.generation = row.generation, c.rels = [] "
    "SET c._lock = true REMOVE c._lock "
    "RETURN row.sha AS sha, c.generation AS generation";
constexpr const char* kOldRelations =
    "UNWIND $rows AS row MATCH (c:Chunk {sha: row.sha}) UNWIND coalesce(c.rels, []) AS sha RETURN DISTINCT sha";
// Removes the segment's chunks' evidence that their new contribution no longer has.
constexpr const char* kPruneEvidence =
    "UNWIND $rows AS row MATCH ()-[r:RELATION {sha: row.sha}]->() SET r._lock = true REMOVE r._lock "
    "WITH r, row, [x IN r.ev WHERE NOT substring(x, 64) IN row.ids OR x IN row.keep] AS kept "
    "WHERE size(kept) <> size(r.ev) SET r.ev = kept";
constexpr const char* kPruneMentions =
    "UNWIND $rows AS row MATCH (c:Chunk {sha: row.sha})-[m:MENTIONS]->(e:Entity) WHERE NOT e.sha IN row.entities "
    "DELETE m RETURN DISTINCT e.sha AS sha";
constexpr const char* kDocuments =
    "UNWIND $rows AS row MERGE (d:Document {sha: row.sha}) "
    "ON CREATE SET d.id = row.id, d.title = row.title, d.source = row.source";
constexpr const char* kChunks =
    "UNWIND $rows AS row MATCH (c:Chunk {sha: row.sha}) "
    "SET c.text = row.text, c.generation = row.generation, c.rels = row.rels "
    "WITH c MATCH (d:Document {sha: c.doc_sha}) MERGE (d)-[:HAS_CHUNK]->(c)";
// Every entity is write-locked, created or not: the lock also keeps a concurrent Merge from
// deleting it under this one (kDeleteEntities locks before it looks).
constexpr const char* kEntities =
    "UNWIND $rows AS row MERGE (e:Entity {sha: row.sha}) "
    "ON CREATE SET e.key = row.key, e.name = row.name, e.type = row.type, e.description = row.description, "
    "e.name_sha = row.name_sha, e.name_part = row.name_part "
    "SET e._lock = true REMOVE e._lock "
    "WITH e, row WHERE e.description = '' AND row.description <> '' SET e.description = row.description";
constexpr const char* kMentions =
    "UNWIND $rows AS row MATCH (c:Chunk {sha: row.chunk}) MATCH (e:Entity {sha: row.entity}) "
    "MERGE (c)-[:MENTIONS]->(e)";
constexpr const char* kRelations =
    "UNWIND $rows AS row MATCH (a:Entity {sha: row.src}) MATCH (b:Entity {sha: row.dst}) "
    "MERGE (a)-[r:RELATION {sha: row.sha}]->(b) "
    "ON CREATE SET r.type = row.type, r.ev = [] "
    "SET r._lock = true REMOVE r._lock "
    "WITH r, row SET r.ev = r.ev + [x IN row.ev WHERE NOT x IN r.ev] "
    "RETURN row.sha AS sha";
constexpr const char* kDeleteRelations =
    "UNWIND $rows AS sha MATCH ()-[r:RELATION {sha: sha}]->() SET r._lock = true REMOVE r._lock "
    "WITH r WHERE size(r.ev) = 0 DELETE r";
constexpr const char* kRefreshRelations =
    "UNWIND $rows AS sha MATCH ()-[r:RELATION {sha: sha}]->() SET r._lock = true REMOVE r._lock WITH r "
    "CALL { WITH r UNWIND r.ev AS x WITH DISTINCT substring(x, 64) AS c ORDER BY c RETURN collect(c) AS evidence } "
    "CALL { WITH r UNWIND r.ev AS x RETURN count(DISTINCT substring(x, 0, 64)) AS weight } "
    "SET r.evidence = evidence, r.weight = weight";
// Locks each candidate before looking at its relationships, so a concurrent Merge that
// mentions it either committed before (and the entity stays) or waits and then finds none.
constexpr const char* kDeleteEntities =
    "UNWIND $rows AS sha MATCH (e:Entity {sha: sha}) SET e._lock = true REMOVE e._lock "
    "WITH e WHERE NOT EXISTS { (e)--() } DELETE e";

constexpr const char* kMentionCount = "COUNT { (e)<-[:MENTIONS]-(:Chunk) }";

// Rows per statement: large enough that a worker's batches take one statement each, small
// enough that one message and one statement's memory on the server stay modest.
constexpr size_t kRowsPerStatement = 2000;

// Merges wait for each other on shared nodes and deadlock now and then (Neo4j detects it and
// fails one of them with a transient error): retried whole, patiently, but no attempt begins
// after Neo4jGraphOptions::merge_deadline: the pool waits no longer than that between attempts
// (RetryPolicy::max_total), and Merge checks it at the start of each attempt.
bolt::RetryPolicy MergeRetry(std::chrono::milliseconds deadline) {
  return bolt::RetryPolicy{16, std::chrono::milliseconds(10), std::chrono::milliseconds(1000), deadline};
}

// How long Init waits for the indexes to come online: the wait is one read, so well within
// io_timeout_ms (less 5 s for the round trip and the server's own pace), and at least 1 s.
int AwaitIndexesSeconds(int io_timeout_ms) { return std::max(1, io_timeout_ms / 1000 - 5); }

struct Counts {
  int64_t nodes_created = 0, nodes_deleted = 0, relationships_created = 0, relationships_deleted = 0;
  int64_t statements = 0;
  void Add(const bolt::Summary& s) {
    ++statements;
    nodes_created += s.Counter("nodes-created");
    nodes_deleted += s.Counter("nodes-deleted");
    relationships_created += s.Counter("relationships-created");
    relationships_deleted += s.Counter("relationships-deleted");
  }
};

// One attempt of a Merge's transaction.
class MergeTx {
 public:
  MergeTx(Connection& c, bool one_row_per_statement) : c_(c), one_row_(one_row_per_statement) {}

  // Runs `cypher` over `rows` ($rows), in pieces; the records of every piece.
  Result<std::vector<List>> Rows(const char* cypher, const List& rows) {
    std::vector<List> out;
    const size_t step = one_row_ ? 1 : kRowsPerStatement;
    for (size_t begin = 0; begin < rows.size(); begin += step) {
      List piece(rows.begin() + begin, rows.begin() + std::min(rows.size(), begin + step));
      auto r = c_.Run(cypher, Map{{"rows", Value(std::move(piece))}}, AccessMode::kWrite);
      if (!r.ok()) return Retryable(r.status());
      counts.Add(r->summary);
      for (List& rec : r->records) out.push_back(std::move(rec));
    }
    return out;
  }

  Counts counts;

 private:
  // A constraint violation inside a Merge is a race between two merges (a node deleted and
  // found at once), not the fence: retried like a deadlock rather than reported as kConflict.
  // Likewise a node or relationship deleted by a concurrent Merge between this statement's
  // match and its lock (Neo.ClientError.Statement.EntityNotFound).
  static Status Retryable(const Status& s) {
    if (s.code() == Code::kConflict || bolt::Neo4jCode(s) == "Neo.ClientError.Statement.EntityNotFound") {
      return Status::Unavailable(s.message());
    }
    return s;
  }

  Connection& c_;
  bool one_row_;
};

EntityRec EntityOf(const List& r, size_t from = 0) {
  return EntityRec{r[from].AsString(), r[from + 1].AsString(), r[from + 2].AsString(), r[from + 3].AsString(),
                   r[from + 4].AsInt()};
}

// ---------------------------------------------------------------------------------------
// The export's spool: records in a temporary file, each a tag byte and a count of
// length-prefixed strings. The file is made in $TMPDIR (else /tmp; std::tmpfile ignores
// TMPDIR) and unlinked at once, so it goes when closed, even by a crash.
class Spool {
 public:
  // A spool, or kInternal naming the directory it could not be made in.
  static Result<std::unique_ptr<Spool>> Create() {
    const char* env = std::getenv("TMPDIR");
    const std::string dir = env != nullptr && *env != '\0' ? env : "/tmp";
    std::string path = dir + "/kgflow-export-XXXXXX";
    const int fd = ::mkstemp(path.data());
    if (fd < 0) {
      return Status::Internal("cannot create a temporary file in " + dir + ": " + std::strerror(errno));
    }
    ::unlink(path.c_str());
    std::FILE* f = ::fdopen(fd, "w+b");
    if (f == nullptr) {
      const int err = errno;
      ::close(fd);
      return Status::Internal("cannot open the temporary file in " + dir + ": " + std::strerror(err));
    }
    return std::unique_ptr<Spool>(new Spool(f));
  }
  ~Spool() { std::fclose(f_); }
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  Status Write(char tag, const std::vector<std::string>& fields) {
    std::string rec(1, tag);
    PutU64(rec, fields.size());
    for (const std::string& f : fields) {
      PutU64(rec, f.size());
      rec += f;
    }
    if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size()) return Status::Internal("export: spool write failed");
    return Status::Ok();
  }
  Status Rewind() {
    if (std::fflush(f_) != 0 || std::fseek(f_, 0, SEEK_SET) != 0) return Status::Internal("export: spool rewind failed");
    return Status::Ok();
  }
  // False at the end.
  Result<bool> Read(char& tag, std::vector<std::string>& fields) {
    int c = std::fgetc(f_);
    if (c == EOF) return false;
    tag = static_cast<char>(c);
    uint64_t n = 0;
    KG_RETURN_IF_ERROR(GetU64(n));
    fields.resize(n);
    for (std::string& f : fields) {
      uint64_t len = 0;
      KG_RETURN_IF_ERROR(GetU64(len));
      f.resize(len);
      if (len > 0 && std::fread(f.data(), 1, len, f_) != len) return Status::Internal("export: spool truncated");
    }
    return true;
  }

 private:
  static void PutU64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out += static_cast<char>(v >> (8 * i) & 0xff);
  }
  Status GetU64(uint64_t& v) {
    unsigned char b[8];
    if (std::fread(b, 1, 8, f_) != 8) return Status::Internal("export: spool truncated");
    v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
    return Status::Ok();
  }
  explicit Spool(std::FILE* f) : f_(f) {}
  std::FILE* const f_;  // owned, never null
};

class Neo4jGraphStore final : public GraphStore {
 public:
  Neo4jGraphStore(std::unique_ptr<bolt::Pool> pool, Neo4jGraphOptions options, int io_timeout_ms)
      : pool_(std::move(pool)), options_(std::move(options)), io_timeout_ms_(io_timeout_ms) {}

  // Each schema statement in a transaction of its own (they cannot share one with writes),
  // retried on transient errors: processes opening a new database at once (a node and its
  // workers) race to create the same rules, and the loser's "already exists" is what IF NOT
  // EXISTS means.
  Status Init() {
    for (const char* cypher : kSchema) {
      Status s = pool_->InTransaction(AccessMode::kWrite, [&](Connection& c) { return c.Run(cypher).status(); });
      if (!s.ok() && bolt::Neo4jCode(s).find("AlreadyExists") == std::string::npos) return s.With("schema");
    }
    // Indexes fill in the background, and until they are online the statements that look a
    // relation up by `sha` scan. On a new or small database that takes moments, so waiting
    // spares the first merges; on a large one it may take longer than a read may (io_timeout_ms),
    // and then the store opens anyway, with a warning: MERGE is correct meanwhile, only slower.
    const int wait_s = AwaitIndexesSeconds(io_timeout_ms_);
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow(AccessMode::kRead));
    auto r = c->Run("CALL db.awaitIndexes($seconds)", Map{{"seconds", Value(static_cast<int64_t>(wait_s))}},
                    AccessMode::kRead);
    if (!r.ok()) {
      // The procedure fails when it runs out of time and when an index failed: only the
      // second (or a lost connection) fails Init.
      if (bolt::Neo4jCode(r.status()).empty()) return r.status().With("await indexes");
      auto failed = c->Run("SHOW INDEXES YIELD name, state WHERE state = 'FAILED' RETURN name", {}, AccessMode::kRead);
      if (!failed.ok()) return failed.status().With("await indexes");
      if (!failed->records.empty()) {
        return Status::Internal("index " + failed->records[0][0].AsString() + " failed: " + r.status().message());
      }
      // The server's message lists every index; the ones still populating come last.
      const std::string& why = r.status().message();
      const size_t pending = why.find("Indexes not guaranteed to be online");
      spdlog::warn("neo4j graph: indexes still populating after {} s; opening anyway (merges scan until they are "
                   "online): {}",
                   wait_s, pending == std::string::npos ? why : why.substr(pending));
    }
    return Status::Ok();
  }

  // kConflict means one thing to the worker: the fence refused the call (drop the result and
  // ack). Any other kConflict (a constraint violation at COMMIT, say: a race between merges) is
  // reported as kUnavailable, which the worker retries. Transient failures are retried here
  // until options_.merge_deadline has passed.
  Status Merge(const std::vector<GraphBatch>& batches) override {
    if (batches.empty()) return Status::Ok();
    const std::vector<Segment> segments = PlanSegments(batches);
    const auto start = std::chrono::steady_clock::now();
    Counts committed;
    bool fenced = false;      // the last attempt's fence refused the call
    bool out_of_time = false; // an attempt was due after the deadline
    int attempts = 0;
    Status s = pool_->InTransaction(
        AccessMode::kWrite,
        [&](Connection& c) -> Status {
          fenced = false;
          // A status that is not kUnavailable ends InTransaction's retries.
          if (++attempts > 1 && std::chrono::steady_clock::now() - start >= options_.merge_deadline) {
            out_of_time = true;
            return Status::Internal("out of time");
          }
          MergeTx tx(c, options_.one_row_per_statement);
          Status f = Fence(tx, batches);
          if (f.code() == Code::kConflict) fenced = true;
          KG_RETURN_IF_ERROR(f);
          for (const Segment& seg : segments) KG_RETURN_IF_ERROR(WriteSegment(tx, seg));
          if (options_.before_commit) KG_RETURN_IF_ERROR(options_.before_commit(c));
          committed = tx.counts;
          return Status::Ok();
        },
        MergeRetry(options_.merge_deadline));
    if (s.ok() && options_.counts != nullptr) {
      options_.counts->nodes_created += committed.nodes_created;
      options_.counts->nodes_deleted += committed.nodes_deleted;
      options_.counts->relationships_created += committed.relationships_created;
      options_.counts->relationships_deleted += committed.relationships_deleted;
      options_.counts->statements += committed.statements;
    }
    if (s.ok() || (s.code() == Code::kConflict && fenced)) return s;
    if (out_of_time) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      return Status::Unavailable("graph merge: transient failures for " + std::to_string(ms.count()) + " ms (" +
                                 std::to_string(attempts - 1) + " attempts); giving up for now");
    }
    if (s.code() == Code::kConflict) return Status::Unavailable("graph merge: " + s.message());
    return s.With("graph merge");
  }

  Result<GraphStats> Stats() override {
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow(AccessMode::kRead));
    // Counts by label and by relationship type come from Neo4j's count store.
    KG_ASSIGN_OR_RETURN(auto r, c->Run(
        "CALL { MATCH (d:Document) RETURN count(d) AS d } CALL { MATCH (c:Chunk) RETURN count(c) AS c } "
        "CALL { MATCH (e:Entity) RETURN count(e) AS e } CALL { MATCH ()-[r:RELATION]->() RETURN count(r) AS r } "
        "RETURN d, c, e, r",
        {}, AccessMode::kRead));
    GraphStats s;
    if (!r.records.empty() && r.records[0].size() == 4) {
      const List& row = r.records[0];
      s = GraphStats{row[0].AsInt(), row[1].AsInt(), row[2].AsInt(), row[3].AsInt()};
    }
    return s;
  }

  Result<std::vector<EntityRec>> SearchEntities(const std::string& query, int limit) override {
    // The key is already folded, so fold the query alike.
    const std::string folded = NormalizeName(query);
    // White space or format characters alone would be found in every key.
    if (folded.empty() && !query.empty()) return std::vector<EntityRec>{};
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow(AccessMode::kRead));
    // Names lower-cased by Cypher (Unicode-aware); the key's name part (not its type prefix) as
    // stored, folded. A query that is not UTF-8 is made so (Bolt strings must be).
    KG_ASSIGN_OR_RETURN(auto r, c->Run(
        std::string("MATCH (e:Entity) WHERE toLower(e.name) CONTAINS toLower($q) OR e.name_part CONTAINS $folded "
                    "WITH e, ") + kMentionCount +
            " AS n RETURN e.key, e.name, e.type, e.description, n ORDER BY n DESC, e.name LIMIT $limit",
        Map{{"q", Value(SanitizeUtf8(query))},
            {"folded", Value(folded)},
            {"limit", Value(static_cast<int64_t>(limit < 0 ? INT32_MAX : limit))}},
        AccessMode::kRead));
    std::vector<EntityRec> out;
    out.reserve(r.records.size());
    for (const List& row : r.records) out.push_back(EntityOf(row));
    return out;
  }

  Result<std::vector<std::string>> FindByName(const std::string& normalized_name) override {
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow(AccessMode::kRead));
    KG_ASSIGN_OR_RETURN(auto r, c->Run("MATCH (e:Entity {name_sha: $sha}) RETURN e.key",
                                       Map{{"sha", Value(Sha256Hex(normalized_name))}}, AccessMode::kRead));
    std::vector<std::string> out;
    for (const List& row : r.records) {
      std::string key = row[0].AsString();
      if (NamePart(key) == normalized_name) out.push_back(std::move(key));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<EntityDetail> GetEntity(const std::string& key) override {
    EntityDetail d;
    const Map params{{"sha", Value(Sha256Hex(key))}};
    // One read transaction for the entity, its neighbours and its chunks.
    Status s = pool_->InTransaction(AccessMode::kRead, [&](Connection& c) -> Status {
      d = EntityDetail{};
      KG_ASSIGN_OR_RETURN(auto e, c.Run(std::string("MATCH (e:Entity {sha: $sha}) RETURN e.key, e.name, e.type, "
                                                    "e.description, ") + kMentionCount,
                                        params, AccessMode::kRead));
      if (e.records.empty()) return Status::NotFound("entity " + key + " not found");
      d.entity = EntityOf(e.records[0]);
      KG_ASSIGN_OR_RETURN(auto n, c.Run(
          std::string("MATCH (:Entity {sha: $sha})-[r:RELATION]->(e:Entity) "
                      "RETURN 'out' AS dir, startNode(r).key AS src, e.key AS dst, r.type AS type, r.ev AS ev, "
                      "e.key AS key, e.name AS name, e.type AS etype, e.description AS description, ") +
              kMentionCount +
              " AS n UNION ALL MATCH (:Entity {sha: $sha})<-[r:RELATION]-(e:Entity) "
              "RETURN 'in' AS dir, e.key AS src, endNode(r).key AS dst, r.type AS type, r.ev AS ev, e.key AS key, "
              "e.name AS name, e.type AS etype, e.description AS description, " +
              kMentionCount + " AS n",
          params, AccessMode::kRead));
      for (const List& row : n.records) {
        Neighbour nb;
        nb.direction = row[0].AsString();
        nb.relation.src = row[1].AsString();
        nb.relation.dst = row[2].AsString();
        nb.relation.type = row[3].AsString();
        FillEvidence(row[4].AsList(), nb.relation);
        nb.entity = EntityOf(row, 5);
        d.neighbours.push_back(std::move(nb));
      }
      // Out before in; each by the other end's key, then type (bytes).
      std::stable_sort(d.neighbours.begin(), d.neighbours.end(), [](const Neighbour& a, const Neighbour& b) {
        if (a.direction != b.direction) return a.direction == "out";
        if (a.entity.key != b.entity.key) return a.entity.key < b.entity.key;
        return a.relation.type < b.relation.type;
      });
      KG_ASSIGN_OR_RETURN(auto ch, c.Run("MATCH (:Entity {sha: $sha})<-[:MENTIONS]-(c:Chunk) RETURN c.id, c.doc_id, c.idx",
                                         params, AccessMode::kRead));
      struct Mention {
        std::string doc;
        int64_t idx;
        std::string id;
      };
      std::vector<Mention> mentions;
      for (const List& row : ch.records) mentions.push_back({row[1].AsString(), row[2].AsInt(), row[0].AsString()});
      std::sort(mentions.begin(), mentions.end(), [](const Mention& a, const Mention& b) {
        return std::tie(a.doc, a.idx, a.id) < std::tie(b.doc, b.idx, b.id);
      });
      for (Mention& m : mentions) {
        d.chunks.push_back(std::move(m.id));
        if (d.documents.empty() || d.documents.back() != m.doc) d.documents.push_back(std::move(m.doc));
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return d;
  }

  Result<std::vector<ChunkRec>> GetChunks(const std::vector<std::string>& ids) override {
    KG_RETURN_IF_ERROR(CheckGetChunksCount(ids.size()));
    std::vector<ChunkRec> out;
    if (ids.empty()) return out;
    const std::set<std::string> wanted(ids.begin(), ids.end());
    List shas;
    for (const std::string& id : wanted) shas.emplace_back(Sha256Hex(id));
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow(AccessMode::kRead));
    KG_ASSIGN_OR_RETURN(auto r, c->Run("UNWIND $shas AS sha MATCH (c:Chunk {sha: sha}) "
                                       "RETURN c.id, c.doc_id, c.idx, c.text",
                                       Map{{"shas", Value(std::move(shas))}}, AccessMode::kRead));
    for (const List& row : r.records) {
      ChunkRec rec{row[0].AsString(), row[1].AsString(), static_cast<int>(row[2].AsInt()), row[3].AsString()};
      if (wanted.count(rec.id)) out.push_back(std::move(rec));  // the id itself, not only its hash
    }
    // Sorted here, by bytes, as the other stores' ORDER BY does.
    std::sort(out.begin(), out.end(), [](const ChunkRec& a, const ChunkRec& b) {
      return std::tie(a.doc_id, a.idx, a.id) < std::tie(b.doc_id, b.idx, b.id);
    });
    return out;
  }

  Result<GraphSnapshot> Export() override {
    return CollectExport([this](GraphSink& sink) { return ExportTo(sink); });
  }

  Status ExportTo(GraphSink& sink) override {
    std::unique_ptr<Spool> spool;
    Status s = pool_->InTransaction(AccessMode::kRead, [&](Connection& c) -> Status {
      spool.reset();
      KG_ASSIGN_OR_RETURN(spool, Spool::Create());  // afresh on every attempt
      return SpoolGraph(c, *spool);
    });
    if (!s.ok()) return s.With("export");
    KG_RETURN_IF_ERROR(spool->Rewind());
    char tag = 0;
    std::vector<std::string> f;
    while (true) {
      KG_ASSIGN_OR_RETURN(bool more, spool->Read(tag, f));
      if (!more) return Status::Ok();
      switch (tag) {
        case 'D':
          KG_RETURN_IF_ERROR(sink.Document({f.at(0), f.at(1), f.at(2)}));
          break;
        case 'C':
          KG_RETURN_IF_ERROR(sink.Chunk({f.at(0), f.at(1), std::stoi(f.at(2)), f.at(3)}));
          break;
        case 'E':
          KG_RETURN_IF_ERROR(sink.Entity({f.at(0), f.at(1), f.at(2), f.at(3), std::stoll(f.at(4))}));
          break;
        case 'M':
          KG_RETURN_IF_ERROR(sink.Mention(f.at(0), f.at(1)));
          break;
        case 'R': {
          RelationRec r;
          r.src = f.at(0);
          r.dst = f.at(1);
          r.type = f.at(2);
          r.weight = std::stoll(f.at(3));
          r.evidence.assign(f.begin() + 4, f.end());
          KG_RETURN_IF_ERROR(sink.Relation(r));
          break;
        }
        default:
          return Status::Internal("export: spool corrupt");
      }
    }
  }

  std::optional<PoolUsage> Connections() const override {
    bolt::Pool::Stats s = pool_->stats();
    return PoolUsage{"neo4j", s.in_use, s.open};
  }

 private:
  // Inside Merge's transaction, before anything else is written (see kFence). Refuses the
  // whole call when a batch is older than its chunk's generation, stored or written by an
  // earlier batch of the same call.
  static Status Fence(MergeTx& tx, const std::vector<GraphBatch>& batches) {
    std::map<std::string, const GraphBatch*> first_of;  // chunk sha -> the call's first batch of it
    for (const GraphBatch& b : batches) first_of.emplace(Sha256Hex(b.chunk.id), &b);
    List rows;
    std::map<std::string, std::string> id_of;
    for (const auto& [sha, b] : first_of) {
      id_of.emplace(sha, b->chunk.id);
      rows.emplace_back(Map{{"sha", Value(sha)},
                            {"id", Value(b->chunk.id)},
                            {"doc_sha", Value(Sha256Hex(b->doc.id))},
                            {"doc_id", Value(b->doc.id)},
                            {"idx", Value(b->chunk.idx)},
                            {"generation", Value(b->chunk.generation)}});
    }
    KG_ASSIGN_OR_RETURN(auto stored, tx.Rows(kFence, rows));
    std::map<std::string, int64_t> generation;  // by chunk id
    for (const List& r : stored) generation[id_of.at(r[0].AsString())] = r[1].AsInt();
    for (const GraphBatch& b : batches) {
      auto it = generation.find(b.chunk.id);
      if (it != generation.end() && it->second > b.chunk.generation) {
        return Status::Conflict("graph merge of chunk " + b.chunk.id + ": generation " +
                                std::to_string(b.chunk.generation) + " is older than the stored " +
                                std::to_string(it->second) + " (a newer lease wrote it)");
      }
      generation[b.chunk.id] = b.chunk.generation;
    }
    return Status::Ok();
  }

  // Inside Merge's transaction: drop what the segment's chunks' new contributions no longer
  // have, write the new ones, and delete what the old ones alone held up. Re-merging the same
  // batches creates and deletes nothing.
  static Status WriteSegment(MergeTx& tx, const Segment& s) {
    List chunk_rows;
    for (const auto& [sha, ch] : s.chunks) {
      chunk_rows.emplace_back(Map{{"sha", Value(sha)},
                                  {"entities", Value(Strings({ch.entities.begin(), ch.entities.end()}))}});
    }
    // Evidence the chunks' new answers no longer state.
    KG_ASSIGN_OR_RETURN(auto old_rel_rows, tx.Rows(kOldRelations, chunk_rows));
    std::vector<std::string> old_relations;
    for (const List& r : old_rel_rows) old_relations.push_back(r[0].AsString());
    std::sort(old_relations.begin(), old_relations.end());
    if (!old_relations.empty()) {
      List ids;
      for (const auto& [sha, ch] : s.chunks) ids.emplace_back(ch.id);
      List prune;
      for (const std::string& sha : old_relations) {
        auto it = s.relations.find(sha);
        List keep;
        if (it != s.relations.end()) keep = Strings({it->second.ev.begin(), it->second.ev.end()});
        prune.emplace_back(Map{{"sha", Value(sha)}, {"ids", Value(ids)}, {"keep", Value(std::move(keep))}});
      }
      KG_RETURN_IF_ERROR(tx.Rows(kPruneEvidence, prune).status());
    }
    // Mentions the chunks' new answers no longer have; their entities may go at the end.
    KG_ASSIGN_OR_RETURN(auto old_entity_rows, tx.Rows(kPruneMentions, chunk_rows));
    std::set<std::string> old_entities;
    for (const List& r : old_entity_rows) old_entities.insert(r[0].AsString());

    List rows;
    for (const auto& [sha, d] : s.docs) {
      rows.emplace_back(Map{{"sha", Value(sha)}, {"id", Value(d.id)}, {"title", Value(d.title)}, {"source", Value(d.source)}});
    }
    KG_RETURN_IF_ERROR(tx.Rows(kDocuments, rows).status());
    rows.clear();
    for (const auto& [sha, ch] : s.chunks) {
      rows.emplace_back(Map{{"sha", Value(sha)},
                            {"text", Value(ch.text)},
                            {"generation", Value(ch.generation)},
                            {"rels", Value(Strings({ch.relations.begin(), ch.relations.end()}))}});
    }
    KG_RETURN_IF_ERROR(tx.Rows(kChunks, rows).status());
    rows.clear();
    for (const auto& [sha, e] : s.entities) {
      rows.emplace_back(Map{{"sha", Value(sha)},
                            {"key", Value(e.key)},
                            {"name", Value(e.name)},
                            {"type", Value(e.type)},
                            {"description", Value(e.description)},
                            {"name_sha", Value(e.name_sha)},
                            {"name_part", Value(NamePart(e.key))}});
    }
    KG_RETURN_IF_ERROR(tx.Rows(kEntities, rows).status());
    rows.clear();
    for (const auto& [chunk, entity] : s.mentions) rows.emplace_back(Map{{"chunk", Value(chunk)}, {"entity", Value(entity)}});
    KG_RETURN_IF_ERROR(tx.Rows(kMentions, rows).status());
    rows.clear();
    for (const auto& [sha, r] : s.relations) {
      rows.emplace_back(Map{{"sha", Value(sha)},
                            {"src", Value(r.src_sha)},
                            {"dst", Value(r.dst_sha)},
                            {"type", Value(r.type)},
                            {"ev", Value(Strings({r.ev.begin(), r.ev.end()}))}});
    }
    KG_ASSIGN_OR_RETURN(auto written, tx.Rows(kRelations, rows));
    if (written.size() != s.relations.size()) {
      // A relation whose end is no entity: the batch is malformed (BuildBatch never makes one).
      std::set<std::string> done;
      for (const List& r : written) done.insert(r[0].AsString());
      for (const auto& [sha, r] : s.relations) {
        if (done.count(sha) == 0) {
          return Status::Invalid("relation " + r.src + " -[" + r.type + "]-> " + r.dst + ": an end is not an entity");
        }
      }
    }

    // Relations before entities: a relation holds its ends up.
    std::set<std::string> touched(old_relations.begin(), old_relations.end());
    for (const auto& [sha, r] : s.relations) touched.insert(sha);
    KG_RETURN_IF_ERROR(tx.Rows(kDeleteRelations, Strings(old_relations)).status());
    KG_RETURN_IF_ERROR(tx.Rows(kRefreshRelations, Strings({touched.begin(), touched.end()})).status());
    return tx.Rows(kDeleteEntities, Strings({old_entities.begin(), old_entities.end()})).status();
  }

  // Every section in the order of graph_store.h's ExportTo, pulled in batches into `spool`.
  static Status SpoolGraph(Connection& c, Spool& spool) {
    auto each = [&](char tag, const char* cypher, size_t fields) -> Status {
      auto r = c.RunEach(
          cypher, {},
          [&](const std::vector<std::string>&, const List& rec) -> Status {
            std::vector<std::string> out;
            for (size_t i = 0; i < fields && i < rec.size(); ++i) {
              out.push_back(rec[i].is_int() ? std::to_string(rec[i].AsInt()) : rec[i].AsString());
            }
            return spool.Write(tag, out);
          },
          AccessMode::kRead);
      return r.status();
    };
    KG_RETURN_IF_ERROR(each('D', "MATCH (d:Document) RETURN d.id, d.title, d.source ORDER BY d.id", 3));
    KG_RETURN_IF_ERROR(each('C', "MATCH (c:Chunk) RETURN c.id, c.doc_id, c.idx, c.text ORDER BY c.doc_id, c.idx, c.id", 4));
    KG_RETURN_IF_ERROR(each('E',
                            (std::string("MATCH (e:Entity) RETURN e.key, e.name, e.type, e.description, ") +
                             kMentionCount + " ORDER BY e.key")
                                .c_str(),
                            5));
    KG_RETURN_IF_ERROR(
        each('M', "MATCH (c:Chunk)-[:MENTIONS]->(e:Entity) RETURN c.id, e.key ORDER BY c.id, e.key", 2));
    auto r = c.RunEach(
        "MATCH (a:Entity)-[r:RELATION]->(b:Entity) RETURN a.key, b.key, r.type, r.ev ORDER BY a.key, b.key, r.type",
        {},
        [&](const std::vector<std::string>&, const List& rec) -> Status {
          RelationRec rel;
          FillEvidence(rec.at(3).AsList(), rel);
          std::vector<std::string> out{rec.at(0).AsString(), rec.at(1).AsString(), rec.at(2).AsString(),
                                       std::to_string(rel.weight)};
          out.insert(out.end(), rel.evidence.begin(), rel.evidence.end());
          return spool.Write('R', out);
        },
        AccessMode::kRead);
    return r.status();
  }

  std::unique_ptr<bolt::Pool> pool_;
  const Neo4jGraphOptions options_;
  const int io_timeout_ms_;
};

}  // namespace

Result<std::unique_ptr<GraphStore>> OpenNeo4jGraphStore(const Neo4jEndpoint& endpoint,
                                                        const Neo4jGraphOptions& options) {
  auto pool = bolt::Pool::Open(endpoint);
  if (!pool.ok()) return pool.status().With("open graph");
  auto store = std::make_unique<Neo4jGraphStore>(std::move(pool).value(), options, endpoint.io_timeout_ms);
  KG_RETURN_IF_ERROR(store->Init().With("init graph " + bolt::Describe(endpoint)));
  return std::unique_ptr<GraphStore>(std::move(store));
}

Result<std::unique_ptr<GraphStore>> OpenNeo4jGraphStore(const Neo4jEndpoint& endpoint) {
  return OpenNeo4jGraphStore(endpoint, Neo4jGraphOptions{});
}

}  // namespace kg
