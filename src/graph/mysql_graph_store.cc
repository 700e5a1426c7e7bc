// The graph in MySQL/MariaDB (graph_store.h's model and contract), for a cluster that has a
// shared database and no Neo4j.
//
// Keys are compared by hash, never by collation: every text that identifies a row (a document
// or chunk id, an entity key, a relation's (src, dst, type), a sentence id) is stored beside
// its SHA-256 as BINARY(32), and the hash is the primary or indexed key. Texts are stored as
// bytes (MEDIUMBLOB): what SQLite keeps, this keeps, byte for byte, whatever its length (a
// key of any length is indexable through its hash, with none of MariaDB's silent USING HASH or
// prefix truncation of long keys), and ORDER BY sorts them in byte order as SQLite does.
//
// Merge writes a list of batches in one transaction with a handful of multi-row statements,
// not one per row; Export streams from one consistent snapshot on a connection of its own.
#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/util.h"
#include "graph/graph_store.h"
#include "graph/keys.h"
#include "mysql/mysql.h"
#include "text/text.h"

namespace kg {
namespace {

// ---------------------------------------------------------------------------------------
// Schema (component "graph" of the shared kg_schema_migrations table).
constexpr const char* kSchemaV1[] = {
    "CREATE TABLE IF NOT EXISTS graph_documents(id_hash BINARY(32) NOT NULL PRIMARY KEY, id MEDIUMBLOB NOT NULL, "
    "title MEDIUMBLOB NOT NULL, source MEDIUMBLOB NOT NULL) ENGINE=InnoDB",
    // doc_id and idx as the first writer gave them; text and generation are the newest writer's.
    "CREATE TABLE IF NOT EXISTS graph_chunks(id_hash BINARY(32) NOT NULL PRIMARY KEY, id MEDIUMBLOB NOT NULL, "
    "doc_hash BINARY(32) NOT NULL, doc_id MEDIUMBLOB NOT NULL, idx INT NOT NULL, text MEDIUMBLOB NOT NULL, "
    "generation BIGINT NOT NULL DEFAULT 0, KEY graph_chunks_doc(doc_hash, idx)) ENGINE=InnoDB",
    // name_hash: the SHA-256 of the key's name part (after the first ':'), for FindByName.
    "CREATE TABLE IF NOT EXISTS graph_entities(key_hash BINARY(32) NOT NULL PRIMARY KEY, `key` MEDIUMBLOB NOT NULL, "
    "name_hash BINARY(32) NOT NULL, name MEDIUMBLOB NOT NULL, type MEDIUMBLOB NOT NULL, "
    "description MEDIUMBLOB NOT NULL, KEY graph_entities_name(name_hash)) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS graph_mentions(chunk_hash BINARY(32) NOT NULL, entity_hash BINARY(32) NOT NULL, "
    "PRIMARY KEY(chunk_hash, entity_hash), KEY graph_mentions_entity(entity_hash)) ENGINE=InnoDB",
    // rel_hash: RelationHash(src, dst, type).
    "CREATE TABLE IF NOT EXISTS graph_relations(rel_hash BINARY(32) NOT NULL PRIMARY KEY, "
    "src_hash BINARY(32) NOT NULL, "
    "dst_hash BINARY(32) NOT NULL, src MEDIUMBLOB NOT NULL, dst MEDIUMBLOB NOT NULL, type MEDIUMBLOB NOT NULL, "
    "KEY graph_relations_src(src_hash), KEY graph_relations_dst(dst_hash)) ENGINE=InnoDB",
    // One row per (relation, chunk, sentence); the sentence id is needed only to count distinct ones.
    "CREATE TABLE IF NOT EXISTS graph_evidence(rel_hash BINARY(32) NOT NULL, chunk_hash BINARY(32) NOT NULL, "
    "sentence_hash BINARY(32) NOT NULL, PRIMARY KEY(rel_hash, chunk_hash, sentence_hash), "
    "KEY graph_evidence_chunk(chunk_hash)) ENGINE=InnoDB",
};


// ---------------------------------------------------------------------------------------
// Hashes: raw SHA-256 bytes, the row keys.
std::string Hash(std::string_view text) {
  const std::string hex = Sha256Hex(text);
  std::string raw(hex.size() / 2, '\0');
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return raw;
}

// The identity of a relation (graph/keys.h).
std::string RelationHash(std::string_view src, std::string_view dst, std::string_view type) {
  return Hash(graph_keys::RelationIdentity(src, dst, type));
}

using graph_keys::NamePart;


// ---------------------------------------------------------------------------------------
// What one run of batches with distinct chunk ids writes, folded in C++ so that each table
// gets one multi-row statement: rows deduplicated (the first writer's name, type and title;
// an entity's first non-empty description in batch order) and sorted by key, so concurrent
// merges lock shared rows in the same order.
struct Segment {
  std::vector<std::string> chunk_hashes;  // sorted
  struct Doc {
    std::string id, title, source;
  };
  struct Chunk {
    std::string id, doc_hash, doc_id, text;
    int idx = 0;
    int64_t generation = 0;
  };
  struct Entity {
    std::string key, name_hash, name, type, description;
  };
  struct Relation {
    std::string src_hash, dst_hash, src, dst, type;
  };
  std::map<std::string, Doc> docs;                       // by id hash
  std::map<std::string, Chunk> chunks;                   // by id hash
  std::map<std::string, Entity> entities;                // by key hash
  std::set<std::pair<std::string, std::string>> mentions;  // (chunk hash, entity hash)
  std::map<std::string, Relation> relations;             // by relation hash
  std::set<std::array<std::string, 3>> evidence;         // (relation, chunk, sentence) hashes
};

// Splits `batches` into runs in which no chunk comes twice (a chunk merged twice in one call
// replaces its first contribution, so the second must see the first written).
std::vector<Segment> PlanSegments(const std::vector<GraphBatch>& batches) {
  std::vector<Segment> out;
  std::set<std::string> seen;
  for (const GraphBatch& b : batches) {
    const std::string chunk_hash = Hash(b.chunk.id);
    if (out.empty() || seen.count(chunk_hash) > 0) {
      out.emplace_back();
      seen.clear();
    }
    seen.insert(chunk_hash);
    Segment& s = out.back();
    s.chunk_hashes.push_back(chunk_hash);
    const std::string doc_hash = Hash(b.doc.id);
    s.docs.try_emplace(doc_hash, Segment::Doc{b.doc.id, b.doc.title, b.doc.source});
    s.chunks[chunk_hash] =
        Segment::Chunk{b.chunk.id, doc_hash, b.doc.id, b.chunk.text, b.chunk.idx, b.chunk.generation};
    for (const EntityRec& e : b.entities) {
      const std::string key_hash = Hash(e.key);
      auto [it, fresh] = s.entities.try_emplace(
          key_hash, Segment::Entity{e.key, Hash(NamePart(e.key)), e.name, e.type, e.description});
      if (!fresh && it->second.description.empty()) it->second.description = e.description;
      s.mentions.emplace(chunk_hash, key_hash);
    }
    for (const RelationRec& r : b.relations) {
      const std::string rel_hash = RelationHash(r.src, r.dst, r.type);
      s.relations.try_emplace(rel_hash, Segment::Relation{Hash(r.src), Hash(r.dst), r.src, r.dst, r.type});
      // No sentence known: the chunk stands for its one sentence.
      if (r.sentences.empty()) s.evidence.insert({rel_hash, chunk_hash, Hash(b.chunk.id)});
      for (const std::string& sentence : r.sentences) s.evidence.insert({rel_hash, chunk_hash, Hash(sentence)});
    }
  }
  for (Segment& s : out) std::sort(s.chunk_hashes.begin(), s.chunk_hashes.end());
  return out;
}


// ---------------------------------------------------------------------------------------
// Statement helpers.
using mysql::Params;
using mysql::Row;
using mysql::Value;

Value Bytes(std::string s) { return Value::Blob(std::move(s)); }

// "(?,?,...,?)" with n placeholders (n >= 1).
std::string Placeholders(size_t n) {
  std::string s = "(";
  for (size_t i = 0; i < n; ++i) s += i == 0 ? "?" : ",?";
  return s + ")";
}

// Hashes go into IN lists this many at a time: statements stay small, and a prepared
// statement per distinct count is cached, so counts are rounded up to a power of two (the
// last hash repeated).
constexpr size_t kInListMax = 512;

// Runs `run(sql_in_list, params)` over `hashes` in groups (the IN list of each group is
// what `sql_before + "(?,..)" + sql_after` is given).
template <typename Fn>
Status ForEachInList(const std::vector<std::string>& hashes, Fn&& run) {
  for (size_t begin = 0; begin < hashes.size(); begin += kInListMax) {
    const size_t n = std::min(kInListMax, hashes.size() - begin);
    size_t shape = 1;
    while (shape < n) shape *= 2;
    Params params;
    params.reserve(shape);
    for (size_t i = 0; i < shape; ++i) params.push_back(Bytes(hashes[begin + std::min(i, n - 1)]));
    KG_RETURN_IF_ERROR(run(Placeholders(shape), params));
  }
  return Status::Ok();
}

// Runs the multi-row statement head + rows + tail, split by bytes by mysql::BuildBatches.
Status ExecRows(mysql::Connection& c, std::string_view head, std::string_view tail, size_t columns,
                const std::vector<Params>& rows) {
  if (rows.empty()) return Status::Ok();
  KG_ASSIGN_OR_RETURN(auto batches, mysql::BuildBatches(head, tail, columns, rows));
  for (const mysql::Batch& b : batches) {
    auto done = c.Exec(b.sql, b.params);
    if (!done.ok()) return done.status();
  }
  return Status::Ok();
}

EntityRec EntityRow(const Row& r, size_t from = 0) {
  return EntityRec{r.Str(from), r.Str(from + 1), r.Str(from + 2), r.Str(from + 3), r.Int(from + 4)};
}

constexpr const char* kMentionCount = "(SELECT COUNT(*) FROM graph_mentions m WHERE m.entity_hash=e.key_hash)";

// Merges wait for each other on shared rows and deadlock now and then; both are retried
// whole, more patiently than the default (a busy cluster merges the same entities at once).
const mysql::RetryPolicy kMergeRetry{12, std::chrono::milliseconds(10), std::chrono::milliseconds(500)};

class MysqlGraphStore final : public GraphStore {
 public:
  explicit MysqlGraphStore(std::unique_ptr<mysql::Pool> pool) : pool_(std::move(pool)) {}

  Status Init() {
    std::vector<mysql::Migration> migrations(1);
    migrations[0].version = 1;
    migrations[0].rerunnable = true;  // every statement IF NOT EXISTS
    for (const char* sql : kSchemaV1) migrations[0].statements.emplace_back(sql);
    return mysql::Migrate(*pool_, "graph", migrations);
  }

  Status Merge(const std::vector<GraphBatch>& batches) override {
    if (batches.empty()) return Status::Ok();
    const std::vector<Segment> segments = PlanSegments(batches);
    return pool_->InTransaction(
        [&](mysql::Connection& c) -> Status {
          KG_RETURN_IF_ERROR(Fence(c, batches));
          for (const Segment& s : segments) KG_RETURN_IF_ERROR(WriteSegment(c, s));
          return Status::Ok();
        },
        kMergeRetry);
  }

  Result<GraphStats> Stats() override {
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow());
    KG_ASSIGN_OR_RETURN(auto row, c->QueryOne(
        "SELECT (SELECT COUNT(*) FROM graph_documents), (SELECT COUNT(*) FROM graph_chunks), "
        "(SELECT COUNT(*) FROM graph_entities), (SELECT COUNT(*) FROM graph_relations)"));
    GraphStats s;
    if (row) s = GraphStats{row->Int(0), row->Int(1), row->Int(2), row->Int(3)};
    return s;
  }

  Result<std::vector<EntityRec>> SearchEntities(const std::string& query, int limit) override {
    // The key is already folded, so fold the query alike.
    const std::string folded = NormalizeName(query);
    // White space or format characters alone would be found in every key.
    if (folded.empty() && !query.empty()) return std::vector<EntityRec>{};
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow());
    // Names compared lower-cased as utf8mb4 text, byte for byte (utf8mb4_bin); the key's name
    // part (not its type prefix) as bytes.
    KG_ASSIGN_OR_RETURN(auto rows, c->Query(
        std::string("SELECT e.`key`, e.name, e.type, e.description, ") + kMentionCount +
            " AS n FROM graph_entities e WHERE LOCATE(LOWER(CONVERT(? USING utf8mb4)) COLLATE utf8mb4_bin, "
            "LOWER(CONVERT(e.name USING utf8mb4)) COLLATE utf8mb4_bin) > 0 "
            "OR LOCATE(?, SUBSTRING(e.`key`, LOCATE(':', e.`key`) + 1)) > 0 ORDER BY n DESC, e.name LIMIT ?",
        // The query as bytes: CONVERT makes invalid UTF-8 a '?' instead of a server error.
        {Bytes(query), Bytes(folded), Value(static_cast<int64_t>(limit < 0 ? INT32_MAX : limit))}));
    std::vector<EntityRec> out;
    out.reserve(rows.size());
    for (const Row& r : rows) out.push_back(EntityRow(r));
    return out;
  }

  Result<std::vector<std::string>> FindByName(const std::string& normalized_name) override {
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow());
    KG_ASSIGN_OR_RETURN(auto rows, c->Query("SELECT `key` FROM graph_entities WHERE name_hash=? ORDER BY `key`",
                                            {Bytes(Hash(normalized_name))}));
    std::vector<std::string> out;
    for (const Row& r : rows) {
      std::string key = r.Str(0);
      if (NamePart(key) == normalized_name) out.push_back(std::move(key));
    }
    return out;
  }

  Result<EntityDetail> GetEntity(const std::string& key) override {
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow());
    const std::string key_hash = Hash(key);
    EntityDetail d;
    // One snapshot for the entity, its neighbours and their evidence.
    Status s = c->InTransaction([&](mysql::Connection& tx) -> Status {
      d = EntityDetail{};
      KG_ASSIGN_OR_RETURN(auto row, tx.QueryOne(
          std::string("SELECT e.`key`, e.name, e.type, e.description, ") + kMentionCount +
              " FROM graph_entities e WHERE e.key_hash=?",
          {Bytes(key_hash)}));
      if (!row) return Status::NotFound("entity " + key + " not found");
      d.entity = EntityRow(*row);
      // Out before in; each by the other end's key, then type.
      KG_ASSIGN_OR_RETURN(auto rows, tx.Query(
          std::string("SELECT 'out' AS dir, r.rel_hash, r.src, r.dst, r.type, e.`key`, e.name, e.type, ") +
              "e.description, " + kMentionCount +
              " FROM graph_relations r JOIN graph_entities e ON e.key_hash=r.dst_hash WHERE r.src_hash=? "
              "UNION ALL SELECT 'in', r.rel_hash, r.src, r.dst, r.type, e.`key`, e.name, e.type, e.description, " +
              kMentionCount +
              " FROM graph_relations r JOIN graph_entities e ON e.key_hash=r.src_hash WHERE r.dst_hash=? "
              "ORDER BY 1 DESC, 6, 5",
          {Bytes(key_hash), Bytes(key_hash)}));
      std::vector<std::string> rel_hashes;
      for (const Row& r : rows) {
        Neighbour n;
        n.direction = r.Str(0);
        rel_hashes.push_back(r.Str(1));
        n.relation.src = r.Str(2);
        n.relation.dst = r.Str(3);
        n.relation.type = r.Str(4);
        n.entity = EntityRow(r, 5);
        d.neighbours.push_back(std::move(n));
      }
      if (!rel_hashes.empty()) {
        std::map<std::string, std::pair<std::vector<std::string>, int64_t>> evidence;  // rel -> (chunks, weight)
        KG_RETURN_IF_ERROR(ForEachInList(rel_hashes, [&](const std::string& in, const Params& p) -> Status {
          KG_ASSIGN_OR_RETURN(auto ev, tx.Query(
              "SELECT DISTINCT v.rel_hash, c.id, NULL FROM graph_evidence v "
              "JOIN graph_chunks c ON c.id_hash=v.chunk_hash "
              "WHERE v.rel_hash IN " + in + " UNION ALL "
              "SELECT rel_hash, NULL, COUNT(DISTINCT sentence_hash) FROM graph_evidence WHERE rel_hash IN " + in +
              " GROUP BY rel_hash",
              [&] {
                Params both = p;
                both.insert(both.end(), p.begin(), p.end());
                return both;
              }()));
          for (const Row& r : ev) {
            auto& [chunks, weight] = evidence[r.Str(0)];
            if (!r.IsNull(1)) chunks.push_back(r.Str(1));
            if (!r.IsNull(2)) weight = r.Int(2);
          }
          return Status::Ok();
        }));
        for (size_t i = 0; i < d.neighbours.size(); ++i) {
          auto& [chunks, weight] = evidence[rel_hashes[i]];
          std::sort(chunks.begin(), chunks.end());
          d.neighbours[i].relation.evidence = chunks;
          d.neighbours[i].relation.weight = weight;
        }
      }
      KG_ASSIGN_OR_RETURN(auto chunks, tx.Query(
          "SELECT c.id, c.doc_id FROM graph_mentions m JOIN graph_chunks c ON c.id_hash=m.chunk_hash "
          "WHERE m.entity_hash=? ORDER BY c.doc_id, c.idx, c.id",
          {Bytes(key_hash)}));
      for (const Row& r : chunks) {
        d.chunks.push_back(r.Str(0));
        std::string doc = r.Str(1);
        if (d.documents.empty() || d.documents.back() != doc) d.documents.push_back(std::move(doc));
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return d;
  }

  Result<std::vector<ChunkRec>> GetChunks(const std::vector<std::string>& ids) override {
    KG_RETURN_IF_ERROR(CheckGetChunksCount(ids.size()));
    static_assert(kGetChunksMax <= kInListMax, "GetChunks is one round trip");
    std::vector<ChunkRec> out;
    if (ids.empty()) return out;
    const std::set<std::string> wanted(ids.begin(), ids.end());
    std::vector<std::string> hashes;
    hashes.reserve(wanted.size());
    for (const std::string& id : wanted) hashes.push_back(Hash(id));
    KG_ASSIGN_OR_RETURN(auto c, pool_->Borrow());
    KG_RETURN_IF_ERROR(ForEachInList(hashes, [&](const std::string& in, const Params& p) -> Status {
      KG_ASSIGN_OR_RETURN(auto rows, c->Query("SELECT id, doc_id, idx, text FROM graph_chunks WHERE id_hash IN " + in +
                                                  " ORDER BY doc_id, idx, id",
                                              p));
      for (const Row& r : rows) {
        ChunkRec rec{r.Str(0), r.Str(1), static_cast<int>(r.Int(2)), r.Str(3)};
        // The id itself, not only its hash, must match.
        if (wanted.count(rec.id)) out.push_back(std::move(rec));
      }
      return Status::Ok();
    }));
    return out;
  }

  Result<GraphSnapshot> Export() override {
    return CollectExport([this](GraphSink& sink) { return ExportTo(sink); });
  }

  // On a connection of its own (not the pool's: a slow reader never takes a connection from
  // Merge and the API's reads), in one read-only transaction WITH CONSISTENT SNAPSHOT; each
  // section is one query whose rows are handed to the sink as they arrive (unbuffered), so
  // memory stays bounded and the snapshot takes no lock that a writer would wait on.
  Status ExportTo(GraphSink& sink) override {
    auto opened = mysql::Connection::Open(pool_->endpoint());
    if (!opened.ok()) return opened.status().With("export");
    mysql::Connection& c = **opened;
    // Keys longer than the default sort prefix (1024 bytes) sort in full up to 16 KiB (a
    // relation's sort key is four such columns, and the sort buffer must hold a few of them;
    // keys equal in their first 16 KiB fall back to their hash). A slow sink may leave the
    // server waiting to send for long: its write timeout would end the export.
    KG_RETURN_IF_ERROR(c.Run("SET SESSION max_sort_length=16384, net_write_timeout=86400").With("export"));
    KG_RETURN_IF_ERROR(c.Run("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").With("export"));
    Status s = ExportSnapshot(c, sink);
    (void)c.Run("COMMIT");  // read only: ending the snapshot cannot lose anything
    return s;
  }

 private:

  // Inside Merge's transaction, before anything is written: locks the rows of every chunk of
  // the call (a concurrent Merge of the same chunk waits here) and refuses the whole call when
  // a batch is older than its chunk's generation, stored or written by an earlier batch of the
  // same call.
  //
  // The lock is a record lock, never a gap lock: a chunk not stored yet gets its row first
  // (the call's first batch of it as WriteSegment writes it, but with the text left to
  // WriteSegment; on a stored row the upsert changes nothing but locks it), so two first
  // merges of one chunk queue on that row whatever the isolation level, and the second reads
  // the first's generation. A refused or failed call rolls the row back with the rest.
  static Status Fence(mysql::Connection& c, const std::vector<GraphBatch>& batches) {
    std::map<std::string, const GraphBatch*> first_of;  // chunk hash -> the call's first batch of it
    for (const GraphBatch& b : batches) first_of.emplace(Hash(b.chunk.id), &b);
    std::map<std::string, std::string> id_of;  // chunk hash -> id
    std::vector<std::string> hashes;
    std::vector<Params> rows;
    for (const auto& [hash, b] : first_of) {
      id_of.emplace(hash, b->chunk.id);
      hashes.push_back(hash);
      rows.push_back({Bytes(hash), Bytes(b->chunk.id), Bytes(Hash(b->doc.id)), Bytes(b->doc.id), Value(b->chunk.idx),
                      Bytes(""), Value(b->chunk.generation)});
    }
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_chunks(id_hash,id,doc_hash,doc_id,idx,text,generation) VALUES ",
                                " ON DUPLICATE KEY UPDATE id_hash=id_hash", 7, rows));
    std::unordered_map<std::string, int64_t> generation;  // by chunk id
    KG_RETURN_IF_ERROR(ForEachInList(hashes, [&](const std::string& in, const Params& p) -> Status {
      KG_ASSIGN_OR_RETURN(auto rows, c.Query("SELECT id_hash, generation FROM graph_chunks WHERE id_hash IN " + in +
                                             " ORDER BY id_hash FOR UPDATE", p));
      for (const Row& r : rows) generation[id_of.at(r.Str(0))] = r.Int(1);
      return Status::Ok();
    }));
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

  // Inside Merge's transaction: forget the segment's chunks' previous contributions, write
  // the new ones, and delete what the old ones alone held up.
  static Status WriteSegment(mysql::Connection& c, const Segment& s) {
    std::set<std::string> old_entities, old_relations;
    KG_RETURN_IF_ERROR(ForEachInList(s.chunk_hashes, [&](const std::string& in, const Params& p) -> Status {
      KG_ASSIGN_OR_RETURN(auto m, c.Query("SELECT entity_hash FROM graph_mentions WHERE chunk_hash IN " + in +
                                          " FOR UPDATE", p));
      for (const Row& r : m) old_entities.insert(r.Str(0));
      KG_ASSIGN_OR_RETURN(auto v, c.Query("SELECT rel_hash FROM graph_evidence WHERE chunk_hash IN " + in +
                                          " FOR UPDATE", p));
      for (const Row& r : v) old_relations.insert(r.Str(0));
      if (!m.empty()) KG_RETURN_IF_ERROR(c.Exec("DELETE FROM graph_mentions WHERE chunk_hash IN " + in, p).status());
      if (!v.empty()) KG_RETURN_IF_ERROR(c.Exec("DELETE FROM graph_evidence WHERE chunk_hash IN " + in, p).status());
      return Status::Ok();
    }));

    std::vector<Params> rows;
    for (const auto& [hash, d] : s.docs) rows.push_back({Bytes(hash), Bytes(d.id), Bytes(d.title), Bytes(d.source)});
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_documents(id_hash,id,title,source) VALUES ",
                                " ON DUPLICATE KEY UPDATE id_hash=id_hash", 4, rows));
    rows.clear();
    for (const auto& [hash, ch] : s.chunks) {
      rows.push_back({Bytes(hash), Bytes(ch.id), Bytes(ch.doc_hash), Bytes(ch.doc_id), Value(ch.idx), Bytes(ch.text),
                      Value(ch.generation)});
    }
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_chunks(id_hash,id,doc_hash,doc_id,idx,text,generation) VALUES ",
                                " ON DUPLICATE KEY UPDATE generation=VALUES(generation), text=VALUES(text)", 7, rows));
    rows.clear();
    for (const auto& [hash, e] : s.entities) {
      rows.push_back(
          {Bytes(hash), Bytes(e.key), Bytes(e.name_hash), Bytes(e.name), Bytes(e.type), Bytes(e.description)});
    }
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_entities(key_hash,`key`,name_hash,name,type,description) VALUES ",
                                " ON DUPLICATE KEY UPDATE description=IF(LENGTH(description)=0, VALUES(description), "
                                "description)",
                                6, rows));
    rows.clear();
    for (const auto& [chunk, entity] : s.mentions) rows.push_back({Bytes(chunk), Bytes(entity)});
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_mentions(chunk_hash,entity_hash) VALUES ",
                                " ON DUPLICATE KEY UPDATE chunk_hash=chunk_hash", 2, rows));
    rows.clear();
    for (const auto& [hash, r] : s.relations) {
      rows.push_back({Bytes(hash), Bytes(r.src_hash), Bytes(r.dst_hash), Bytes(r.src), Bytes(r.dst), Bytes(r.type)});
    }
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_relations(rel_hash,src_hash,dst_hash,src,dst,type) VALUES ",
                                " ON DUPLICATE KEY UPDATE rel_hash=rel_hash", 6, rows));
    rows.clear();
    for (const auto& [rel, chunk, sentence] : s.evidence) rows.push_back({Bytes(rel), Bytes(chunk), Bytes(sentence)});
    KG_RETURN_IF_ERROR(ExecRows(c, "INSERT INTO graph_evidence(rel_hash,chunk_hash,sentence_hash) VALUES ",
                                " ON DUPLICATE KEY UPDATE rel_hash=rel_hash", 3, rows));

    // Relations before entities: a relation holds its ends up. The NOT EXISTS reads in a
    // DELETE are locking (current) reads, so evidence a concurrent Merge committed counts.
    const std::vector<std::string> rels(old_relations.begin(), old_relations.end());
    KG_RETURN_IF_ERROR(ForEachInList(rels, [&](const std::string& in, const Params& p) -> Status {
      return c.Exec("DELETE FROM graph_relations WHERE rel_hash IN " + in + " AND NOT EXISTS (SELECT 1 FROM "
                    "graph_evidence v WHERE v.rel_hash=graph_relations.rel_hash)", p).status();
    }));
    const std::vector<std::string> ents(old_entities.begin(), old_entities.end());
    return ForEachInList(ents, [&](const std::string& in, const Params& p) -> Status {
      return c.Exec("DELETE FROM graph_entities WHERE key_hash IN " + in + " AND NOT EXISTS (SELECT 1 FROM "
                    "graph_mentions m WHERE m.entity_hash=graph_entities.key_hash) AND NOT EXISTS (SELECT 1 FROM "
                    "graph_relations r WHERE r.src_hash=graph_entities.key_hash) AND NOT EXISTS (SELECT 1 FROM "
                    "graph_relations r WHERE r.dst_hash=graph_entities.key_hash)", p).status();
    });
  }

  // Every section in the order of graph_store.h's ExportTo; blobs sort in byte order, as in
  // SQLite. Relations come one row per (relation, chunk of its evidence), grouped here.
  static Status ExportSnapshot(mysql::Connection& c, GraphSink& sink) {
    KG_RETURN_IF_ERROR(c.QueryEach("SELECT id, title, source FROM graph_documents ORDER BY id, id_hash", {},
                                   [&](const Row& r) { return sink.Document({r.Str(0), r.Str(1), r.Str(2)}); }));
    KG_RETURN_IF_ERROR(c.QueryEach("SELECT id, doc_id, idx, text FROM graph_chunks "
                                   "ORDER BY doc_id, idx, id, id_hash",
                                   {},
                                   [&](const Row& r) {
                                     return sink.Chunk({r.Str(0), r.Str(1), static_cast<int>(r.Int(2)), r.Str(3)});
                                   }));
    KG_RETURN_IF_ERROR(c.QueryEach(std::string("SELECT e.`key`, e.name, e.type, e.description, ") + kMentionCount +
                                       " FROM graph_entities e ORDER BY e.`key`, e.key_hash",
                                   {}, [&](const Row& r) { return sink.Entity(EntityRow(r)); }));
    KG_RETURN_IF_ERROR(c.QueryEach(
        "SELECT c.id, e.`key` FROM graph_mentions m JOIN graph_chunks c ON c.id_hash=m.chunk_hash "
        "JOIN graph_entities e ON e.key_hash=m.entity_hash ORDER BY c.id, m.chunk_hash, e.`key`, m.entity_hash",
        {}, [&](const Row& r) { return sink.Mention(r.Str(0), r.Str(1)); }));
    RelationRec rel;
    std::string rel_hash;
    bool pending = false;
    KG_RETURN_IF_ERROR(c.QueryEach(
        "SELECT r.rel_hash, r.src, r.dst, r.type, w.weight, c.id FROM graph_relations r "
        "LEFT JOIN (SELECT rel_hash, COUNT(DISTINCT sentence_hash) AS weight FROM graph_evidence GROUP BY rel_hash) w "
        "ON w.rel_hash=r.rel_hash "
        "LEFT JOIN (SELECT DISTINCT rel_hash, chunk_hash FROM graph_evidence) v ON v.rel_hash=r.rel_hash "
        "LEFT JOIN graph_chunks c ON c.id_hash=v.chunk_hash ORDER BY r.src, r.dst, r.type, r.rel_hash, c.id",
        {}, [&](const Row& r) -> Status {
          if (!pending || r.Str(0) != rel_hash) {
            if (pending) KG_RETURN_IF_ERROR(sink.Relation(rel));
            rel_hash = r.Str(0);
            rel = RelationRec{};
            rel.src = r.Str(1);
            rel.dst = r.Str(2);
            rel.type = r.Str(3);
            rel.weight = r.IsNull(4) ? 0 : r.Int(4);
            pending = true;
          }
          if (!r.IsNull(5)) rel.evidence.push_back(r.Str(5));
          return Status::Ok();
        }));
    return pending ? sink.Relation(rel) : Status::Ok();
  }

  std::optional<PoolUsage> Connections() const override {
    mysql::PoolStats s = pool_->stats();
    return PoolUsage{"mysql", s.in_use, s.open};
  }

  std::unique_ptr<mysql::Pool> pool_;
};

}  // namespace

Result<std::unique_ptr<GraphStore>> OpenMysqlGraphStore(const MysqlEndpoint& endpoint) {
  auto pool = mysql::Pool::Open(endpoint);
  if (!pool.ok()) return pool.status().With("open graph");
  auto store = std::make_unique<MysqlGraphStore>(std::move(pool).value());
  KG_RETURN_IF_ERROR(store->Init().With("init graph " + mysql::Describe(endpoint)));
  return std::unique_ptr<GraphStore>(std::move(store));
}

}  // namespace kg
