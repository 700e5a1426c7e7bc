#include <array>
#include <filesystem>
#include <map>
#include <string>

#include "config/config.h"
#include "graph/graph_store.h"
#include "sqlite/db.h"
#include "text/text.h"

namespace kg {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS documents(id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(id TEXT PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id),
  idx INTEGER NOT NULL, text TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entities(key TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
  description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mentions(chunk_id TEXT NOT NULL REFERENCES chunks(id),
  entity_key TEXT NOT NULL REFERENCES entities(key), PRIMARY KEY(chunk_id, entity_key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mentions_entity ON mentions(entity_key);
CREATE TABLE IF NOT EXISTS relations(src TEXT NOT NULL REFERENCES entities(key),
  dst TEXT NOT NULL REFERENCES entities(key), type TEXT NOT NULL, PRIMARY KEY(src, dst, type)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relations_dst ON relations(dst);
CREATE VIEW IF NOT EXISTS evidence AS SELECT src, dst, type, chunk_id, sentence FROM relation_evidence;
-- One row per migration run (a new database's creation included), for operators and tests.
CREATE TABLE IF NOT EXISTS schema_migrations(from_version INTEGER NOT NULL, to_version INTEGER NOT NULL,
  at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
)sql";

// Evidence lives in relation_evidence; `evidence` is a read-only view of it. A kgflow from
// before schema versions opens a graph with `CREATE INDEX IF NOT EXISTS evidence_chunk ON
// evidence(...)` and writes `INSERT INTO evidence(...)` with old-style keys: on a view both
// fail loudly ("views may not be indexed", "cannot modify evidence because it is a view")
// instead of dropping rows or writing keys this build cannot find. So no index here may be
// named evidence_chunk.
constexpr const char* kEvidenceSchema = R"sql(
CREATE TABLE IF NOT EXISTS relation_evidence(src TEXT NOT NULL, dst TEXT NOT NULL, type TEXT NOT NULL,
  chunk_id TEXT NOT NULL, sentence TEXT NOT NULL, PRIMARY KEY(src, dst, type, chunk_id, sentence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relation_evidence_chunk ON relation_evidence(chunk_id);
CREATE INDEX IF NOT EXISTS relation_evidence_dst ON relation_evidence(dst);
)sql";

// The graph database's schema version, kept in PRAGMA user_version:
//   0  entity keys folded by hand (ASCII and Latin-1 case, full-width ASCII, white space)
//   1  entity keys folded by NormalizeName (ICU NFKC_Casefold, text/text.h)
//   2  evidence per (relation, chunk, sentence); older rows get their chunk id as sentence
//   3  evidence moves to relation_evidence (indexed by dst too); `evidence` becomes a read-only
//      view, so a kgflow older than version 1 (which never read the version) fails rather
//      than writing into the graph (kEvidenceSchema)
constexpr int kSchemaVersion = 3;


class SqliteGraphStore final : public GraphStore {
 public:
  explicit SqliteGraphStore(std::unique_ptr<sqlite::Db> db) : db_(std::move(db)) {}
  // Reads the version first: a graph already at kSchemaVersion (every open but the first
  // after an upgrade) is opened without the write lock, so opening never waits on a writer.
  Status Init() {
    KG_ASSIGN_OR_RETURN(const int64_t version, SchemaVersion());
    if (version == kSchemaVersion) return Status::Ok();
    KG_RETURN_IF_ERROR(RefuseNewer(version));
    // Databases made before fencing existed gain the generation column first (the schema's
    // indexes do not need it).
    KG_RETURN_IF_ERROR(db_->AddColumnIfMissing("chunks", "generation", "INTEGER NOT NULL DEFAULT 0"));
    return Migrate();
  }

  Result<int64_t> SchemaVersion() {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("PRAGMA user_version"));
    int64_t version = q->Step() ? q->Int(0) : 0;
    KG_RETURN_IF_ERROR(q->status());
    return version;
  }

  static Status RefuseNewer(int64_t version) {
    if (version <= kSchemaVersion) return Status::Ok();
    return Status::Invalid("graph schema version " + std::to_string(version) + " is newer than this kgflow's (" +
                           std::to_string(kSchemaVersion) + "); upgrade kgflow");
  }

  // Brings a database written by an older kgflow up to kSchemaVersion, in one write
  // transaction: processes opening it together (a node and its workers) queue on the write
  // lock, and the later ones find the work done (the version is read again under the lock).
  // A newer database than this build knows is refused rather than written in a shape it does
  // not understand.
  Status Migrate() {
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    KG_ASSIGN_OR_RETURN(const int64_t version, SchemaVersion());
    if (version == kSchemaVersion) return tx.Commit();  // another process migrated it meanwhile
    KG_RETURN_IF_ERROR(RefuseNewer(version));
    // Evidence moves first: its new table has the indexes the re-key's moves look rows up by.
    if (version < 3) KG_RETURN_IF_ERROR(MoveEvidence().With("move evidence"));
    if (version < 1) KG_RETURN_IF_ERROR(RekeyEntities().With("re-key entities"));
    KG_RETURN_IF_ERROR(db_->Exec(kEvidenceSchema));
    KG_RETURN_IF_ERROR(db_->Exec(kSchema));
    KG_RETURN_IF_ERROR(db_->Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion)));  // our constant
    {
      KG_ASSIGN_OR_RETURN(auto log, db_->Prepare("INSERT INTO schema_migrations(from_version, to_version) VALUES(?,?)"));
      KG_RETURN_IF_ERROR(log->Bind(1, version).Bind(2, kSchemaVersion).Run());
    }
    return tx.Commit();
  }

  // Inside Migrate's transaction: an `evidence` table (versions 0 to 2) becomes
  // relation_evidence, and kSchema then puts the view in its place. Before version 2 a chunk
  // stood for its one sentence, so an old row's sentence is its chunk id: weights are unchanged.
  Status MoveEvidence() {
    bool table = false, has_sentence = false;
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='evidence'), "
          "EXISTS(SELECT 1 FROM pragma_table_info('evidence') WHERE name='sentence')"));
      if (q->Step()) {
        table = q->Int(0) != 0;
        has_sentence = q->Int(1) != 0;
      }
      KG_RETURN_IF_ERROR(q->status());
    }
    if (!table) return Status::Ok();  // a new database: kSchema makes the view
    KG_RETURN_IF_ERROR(db_->Exec(kEvidenceSchema));
    KG_RETURN_IF_ERROR(db_->Exec(
        has_sentence ? "INSERT INTO relation_evidence(src, dst, type, chunk_id, sentence) "
                       "SELECT src, dst, type, chunk_id, sentence FROM evidence"
                     : "INSERT INTO relation_evidence(src, dst, type, chunk_id, sentence) "
                       "SELECT src, dst, type, chunk_id, chunk_id FROM evidence"));
    return db_->Exec("DROP TABLE evidence");
  }

  // Inside Migrate's transaction: recomputes every entity's key the way BuildBatch makes keys
  // now. Entities whose new keys collide become one: the first (oldest) row's name and type,
  // the first non-empty description; their mentions and relations move to the new key, and
  // relations (with their evidence) that become duplicates merge. A relation between two
  // entities that became one is dropped: BuildBatch never writes a self-relation.
  Status RekeyEntities() {
    {
      KG_ASSIGN_OR_RETURN(auto t, db_->Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='entities'"));
      bool exists = t->Step();
      KG_RETURN_IF_ERROR(t->status());
      if (!exists) return Status::Ok();  // a new database
    }
    struct Row {
      std::string key, name, type, description;
    };
    std::map<std::string, std::vector<Row>> groups;  // new key -> rows, oldest first
    bool changed = false;
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT key, name, type, description FROM entities ORDER BY rowid"));
      while (q->Step()) {
        Row r{q->Text(0), q->Text(1), q->Text(2), q->Text(3)};
        // A name of format characters alone folds to nothing now; it keeps its old key.
        std::string key = NormalizeName(r.name).empty() ? r.key : EntityKey(r.name, r.type);
        changed = changed || key != r.key;
        groups[key].push_back(std::move(r));
      }
      KG_RETURN_IF_ERROR(q->status());
    }
    if (!changed) return Status::Ok();
    // Rows move one key at a time; the references are whole again by the commit. Every move
    // finds its rows through an index (MoveEvidence made relation_evidence's), and each
    // statement is prepared once: a full scan per moved key held the write lock for minutes
    // on a large graph.
    KG_RETURN_IF_ERROR(db_->Exec("PRAGMA defer_foreign_keys=ON"));
    static constexpr const char* kMoves[] = {
        "UPDATE OR IGNORE mentions SET entity_key=?1 WHERE entity_key=?2", "DELETE FROM mentions WHERE entity_key=?2",
        "UPDATE OR IGNORE relations SET src=?1 WHERE src=?2", "DELETE FROM relations WHERE src=?2",
        "UPDATE OR IGNORE relations SET dst=?1 WHERE dst=?2", "DELETE FROM relations WHERE dst=?2",
        "UPDATE OR IGNORE relation_evidence SET src=?1 WHERE src=?2", "DELETE FROM relation_evidence WHERE src=?2",
        "UPDATE OR IGNORE relation_evidence SET dst=?1 WHERE dst=?2", "DELETE FROM relation_evidence WHERE dst=?2"};
    std::vector<std::unique_ptr<sqlite::Stmt>> moves;
    for (const char* sql : kMoves) {
      KG_ASSIGN_OR_RETURN(auto move, db_->Prepare(sql));
      moves.push_back(std::move(move));
    }
    KG_ASSIGN_OR_RETURN(auto del, db_->Prepare("DELETE FROM entities WHERE key=?"));
    KG_ASSIGN_OR_RETURN(auto ins, db_->Prepare("INSERT INTO entities(key,name,type,description) VALUES(?,?,?,?)"));
    for (const auto& [key, rows] : groups) {
      if (rows.size() == 1 && rows[0].key == key) continue;
      std::string description;
      for (const Row& r : rows) {
        if (description.empty()) description = r.description;
        KG_RETURN_IF_ERROR(del->Bind(1, r.key).Run());
      }
      KG_RETURN_IF_ERROR(ins->Bind(1, key).Bind(2, rows[0].name).Bind(3, rows[0].type).Bind(4, description).Run());
      for (const Row& r : rows) {
        if (r.key == key) continue;
        for (auto& move : moves) {
          KG_RETURN_IF_ERROR(move->Bind(1, key).Bind(2, r.key).Run().With(r.key + " -> " + key));
        }
      }
    }
    moves.clear();
    del.reset();
    ins.reset();
    for (const char* sql : {"DELETE FROM relation_evidence WHERE src=dst", "DELETE FROM relations WHERE src=dst"}) {
      KG_RETURN_IF_ERROR(db_->Exec(sql));
    }
    return Status::Ok();
  }

  Status Merge(const std::vector<GraphBatch>& batches) override {
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    for (const auto& b : batches) KG_RETURN_IF_ERROR(MergeOne(b));
    return tx.Commit();
  }

  Result<GraphStats> Stats() override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks), (SELECT COUNT(*) FROM entities), "
        "(SELECT COUNT(*) FROM relations)"));
    GraphStats s;
    if (q->Step()) {
      s.documents = q->Int(0);
      s.chunks = q->Int(1);
      s.entities = q->Int(2);
      s.relations = q->Int(3);
    }
    KG_RETURN_IF_ERROR(q->status());
    return s;
  }

  Result<std::vector<EntityRec>> SearchEntities(const std::string& query, int limit) override {
    // SQLite's lower() folds ASCII only; the key is already folded, so fold the query alike.
    const std::string folded = NormalizeName(query);
    // White space or format characters alone would be found in every key (instr(key, '')).
    if (folded.empty() && !query.empty()) return std::vector<EntityRec>{};
    // Only the key's name part: its type prefix would make "person" find every person.
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT e.key, e.name, e.type, e.description, (SELECT COUNT(*) FROM mentions m WHERE m.entity_key=e.key) AS n "
        "FROM entities e WHERE instr(lower(e.name), lower(?))>0 OR instr(substr(e.key, instr(e.key, ':') + 1), ?)>0 "
        "ORDER BY n DESC, e.name LIMIT ?"));
    q->Bind(1, query).Bind(2, folded).Bind(3, limit);
    std::vector<EntityRec> out;
    while (q->Step()) out.push_back(EntityRow(*q));
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

  // A scan of the keys: names are looked up by hand, one request at a time.
  Result<std::vector<std::string>> FindByName(const std::string& normalized_name) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT key FROM entities WHERE substr(key, instr(key, ':') + 1)=? ORDER BY key"));
    q->Bind(1, normalized_name);
    std::vector<std::string> out;
    while (q->Step()) out.push_back(q->Text(0));
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

  Result<EntityDetail> GetEntity(const std::string& key) override {
    EntityDetail d;
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "SELECT e.key, e.name, e.type, e.description, (SELECT COUNT(*) FROM mentions m WHERE m.entity_key=e.key) "
          "FROM entities e WHERE e.key=?"));
      q->Bind(1, key);
      if (!q->Step()) {
        KG_RETURN_IF_ERROR(q->status());
        return Status::NotFound("entity " + key + " not found");
      }
      d.entity = EntityRow(*q);
    }
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT 'out', r.src, r.dst, r.type, e.key, e.name, e.type, e.description, "
        "(SELECT COUNT(*) FROM mentions m WHERE m.entity_key=e.key) FROM relations r "
        "JOIN entities e ON e.key=r.dst WHERE r.src=?1 UNION ALL "
        "SELECT 'in', r.src, r.dst, r.type, e.key, e.name, e.type, e.description, "
        "(SELECT COUNT(*) FROM mentions m WHERE m.entity_key=e.key) FROM relations r "
        "JOIN entities e ON e.key=r.src WHERE r.dst=?1"));
    q->Bind(1, key);
    while (q->Step()) {
      Neighbour n;
      n.direction = q->Text(0);
      n.relation.src = q->Text(1);
      n.relation.dst = q->Text(2);
      n.relation.type = q->Text(3);
      n.entity.key = q->Text(4);
      n.entity.name = q->Text(5);
      n.entity.type = q->Text(6);
      n.entity.description = q->Text(7);
      n.entity.mentions = q->Int(8);
      d.neighbours.push_back(std::move(n));
    }
    KG_RETURN_IF_ERROR(q->status());
    for (auto& n : d.neighbours) {
      KG_RETURN_IF_ERROR(LoadEvidence(n.relation));
    }
    KG_ASSIGN_OR_RETURN(auto c, db_->Prepare(
        "SELECT m.chunk_id, c.doc_id FROM mentions m JOIN chunks c ON c.id=m.chunk_id WHERE m.entity_key=? "
        "ORDER BY c.doc_id, c.idx"));
    c->Bind(1, key);
    while (c->Step()) {
      d.chunks.push_back(c->Text(0));
      if (d.documents.empty() || d.documents.back() != c->Text(1)) d.documents.push_back(c->Text(1));
    }
    KG_RETURN_IF_ERROR(c->status());
    return d;
  }

  Result<std::vector<ChunkRec>> GetChunks(const std::vector<std::string>& ids) override {
    KG_RETURN_IF_ERROR(CheckGetChunksCount(ids.size()));
    std::vector<ChunkRec> out;
    if (ids.empty()) return out;
    std::string in = "?";
    for (size_t i = 1; i < ids.size(); ++i) in += ",?";
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT id, doc_id, idx, text FROM chunks WHERE id IN (" + in +
                                             ") ORDER BY doc_id, idx, id"));
    for (size_t i = 0; i < ids.size(); ++i) q->Bind(static_cast<int>(i + 1), ids[i]);
    while (q->Step()) out.push_back({q->Text(0), q->Text(1), static_cast<int>(q->Int(2)), q->Text(3)});
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

  // The streamed export, collected in memory (on this store's own connection).
  Result<GraphSnapshot> Export() override {
    return CollectExport([&](GraphSink& sink) { return ExportSnapshot(*db_, sink); });
  }

 private:
  static EntityRec EntityRow(sqlite::Stmt& q) {
    EntityRec e;
    e.key = q.Text(0);
    e.name = q.Text(1);
    e.type = q.Text(2);
    e.description = q.Text(3);
    e.mentions = q.Int(4);
    return e;
  }

  // Inside Merge's transaction: fence, forget the chunk's previous contribution, write the
  // new one, and delete what the old one alone held up.
  Status MergeOne(const GraphBatch& b) {
    const std::string& chunk_id = b.chunk.id;
    {
      KG_ASSIGN_OR_RETURN(auto g, db_->Prepare("SELECT generation FROM chunks WHERE id=?"));
      g->Bind(1, chunk_id);
      if (g->Step() && g->Int(0) > b.chunk.generation) {
        return Status::Conflict("graph merge of chunk " + chunk_id + ": generation " +
                                std::to_string(b.chunk.generation) + " is older than the stored " +
                                std::to_string(g->Int(0)) + " (a newer lease wrote it)");
      }
      KG_RETURN_IF_ERROR(g->status());
    }
    // What the chunk contributed so far: candidates for deletion once replaced.
    std::vector<std::string> old_keys;
    std::vector<std::array<std::string, 3>> old_relations;
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT entity_key FROM mentions WHERE chunk_id=?"));
      q->Bind(1, chunk_id);
      while (q->Step()) old_keys.push_back(q->Text(0));
      KG_RETURN_IF_ERROR(q->status());
    }
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT DISTINCT src, dst, type FROM relation_evidence WHERE chunk_id=?"));
      q->Bind(1, chunk_id);
      while (q->Step()) old_relations.push_back({q->Text(0), q->Text(1), q->Text(2)});
      KG_RETURN_IF_ERROR(q->status());
    }
    for (const char* sql : {"DELETE FROM mentions WHERE chunk_id=?", "DELETE FROM relation_evidence WHERE chunk_id=?"}) {
      KG_ASSIGN_OR_RETURN(auto del, db_->Prepare(sql));
      KG_RETURN_IF_ERROR(del->Bind(1, chunk_id).Run());
    }

    KG_ASSIGN_OR_RETURN(auto doc, db_->Prepare("INSERT OR IGNORE INTO documents(id,title,source) VALUES(?,?,?)"));
    KG_RETURN_IF_ERROR(doc->Bind(1, b.doc.id).Bind(2, b.doc.title).Bind(3, b.doc.source).Run());
    doc.reset();
    KG_ASSIGN_OR_RETURN(auto chunk, db_->Prepare(
        "INSERT INTO chunks(id,doc_id,idx,text,generation) VALUES(?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "generation=excluded.generation, text=excluded.text"));
    KG_RETURN_IF_ERROR(chunk->Bind(1, chunk_id).Bind(2, b.doc.id).Bind(3, b.chunk.idx).Bind(4, b.chunk.text)
                           .Bind(5, b.chunk.generation).Run());
    chunk.reset();
    {
      KG_ASSIGN_OR_RETURN(auto ent, db_->Prepare(
          "INSERT INTO entities(key,name,type,description) VALUES(?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
          "description=CASE WHEN entities.description='' THEN excluded.description ELSE entities.description END"));
      KG_ASSIGN_OR_RETURN(auto men, db_->Prepare("INSERT OR IGNORE INTO mentions(chunk_id,entity_key) VALUES(?,?)"));
      for (const auto& e : b.entities) {
        KG_RETURN_IF_ERROR(ent->Bind(1, e.key).Bind(2, e.name).Bind(3, e.type).Bind(4, e.description).Run());
        KG_RETURN_IF_ERROR(men->Bind(1, chunk_id).Bind(2, e.key).Run());
      }
    }
    {
      KG_ASSIGN_OR_RETURN(auto rel, db_->Prepare("INSERT OR IGNORE INTO relations(src,dst,type) VALUES(?,?,?)"));
      KG_ASSIGN_OR_RETURN(auto ev, db_->Prepare(
          "INSERT OR IGNORE INTO relation_evidence(src,dst,type,chunk_id,sentence) VALUES(?,?,?,?,?)"));
      for (const auto& r : b.relations) {
        KG_RETURN_IF_ERROR(rel->Bind(1, r.src).Bind(2, r.dst).Bind(3, r.type).Run().With("relation " + r.src + "->" + r.dst));
        // No sentence known: the chunk stands for its one sentence.
        for (const std::string& sentence : r.sentences.empty() ? std::vector<std::string>{chunk_id} : r.sentences) {
          KG_RETURN_IF_ERROR(ev->Bind(1, r.src).Bind(2, r.dst).Bind(3, r.type).Bind(4, chunk_id).Bind(5, sentence).Run());
        }
      }
    }
    // Relations before entities: a relation's ends are entities (foreign keys).
    if (!old_relations.empty()) {
      KG_ASSIGN_OR_RETURN(auto gone, db_->Prepare(
          "DELETE FROM relations WHERE src=?1 AND dst=?2 AND type=?3 AND NOT EXISTS "
          "(SELECT 1 FROM relation_evidence v WHERE v.src=?1 AND v.dst=?2 AND v.type=?3)"));
      for (const auto& [src, dst, type] : old_relations) {
        KG_RETURN_IF_ERROR(gone->Bind(1, src).Bind(2, dst).Bind(3, type).Run());
      }
    }
    if (!old_keys.empty()) {
      KG_ASSIGN_OR_RETURN(auto gone, db_->Prepare(
          "DELETE FROM entities WHERE key=?1 AND NOT EXISTS (SELECT 1 FROM mentions m WHERE m.entity_key=?1) "
          "AND NOT EXISTS (SELECT 1 FROM relations r WHERE r.src=?1 OR r.dst=?1)"));
      for (const auto& key : old_keys) KG_RETURN_IF_ERROR(gone->Bind(1, key).Run());
    }
    return Status::Ok();
  }

  Status LoadEvidence(RelationRec& r) {
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "SELECT DISTINCT chunk_id FROM relation_evidence WHERE src=? AND dst=? AND type=? ORDER BY chunk_id"));
      q->Bind(1, r.src).Bind(2, r.dst).Bind(3, r.type);
      while (q->Step()) r.evidence.push_back(q->Text(0));
      KG_RETURN_IF_ERROR(q->status());
    }
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT COUNT(DISTINCT sentence) FROM relation_evidence WHERE src=? AND dst=? AND type=?"));
    q->Bind(1, r.src).Bind(2, r.dst).Bind(3, r.type);
    if (q->Step()) r.weight = q->Int(0);
    return q->status();
  }

  std::unique_ptr<sqlite::Db> db_;

 public:
  // A dedicated read connection per export: its one read transaction is a consistent
  // snapshot (in WAL mode readers do not block the writer), and a slow sink holds only
  // this connection's mutex, never the one shared with Merge and the API's other reads.
  // Rows are handed over as they are stepped, so memory does not grow with the graph.
  Status ExportTo(GraphSink& sink) override {
    auto opened = sqlite::Db::Open(db_->path());
    if (!opened.ok()) return opened.status().With("export");
    sqlite::Db& rd = **opened;
    KG_RETURN_IF_ERROR(rd.Exec("BEGIN").With("export"));
    Status s = ExportSnapshot(rd, sink);
    (void)rd.Exec("COMMIT");  // read only: ending the snapshot cannot lose anything
    return s;
  }

 private:
  static Status ExportSnapshot(sqlite::Db& rd, GraphSink& sink) {
    {
      KG_ASSIGN_OR_RETURN(auto q, rd.Prepare("SELECT id,title,source FROM documents ORDER BY id"));
      while (q->Step()) KG_RETURN_IF_ERROR(sink.Document({q->Text(0), q->Text(1), q->Text(2)}));
      KG_RETURN_IF_ERROR(q->status());
    }
    {
      KG_ASSIGN_OR_RETURN(auto q, rd.Prepare("SELECT id,doc_id,idx,text FROM chunks ORDER BY doc_id, idx"));
      while (q->Step()) KG_RETURN_IF_ERROR(sink.Chunk({q->Text(0), q->Text(1), static_cast<int>(q->Int(2)), q->Text(3)}));
      KG_RETURN_IF_ERROR(q->status());
    }
    {
      KG_ASSIGN_OR_RETURN(auto q, rd.Prepare(
          "SELECT e.key, e.name, e.type, e.description, (SELECT COUNT(*) FROM mentions m WHERE m.entity_key=e.key) "
          "FROM entities e ORDER BY e.key"));
      while (q->Step()) KG_RETURN_IF_ERROR(sink.Entity(EntityRow(*q)));
      KG_RETURN_IF_ERROR(q->status());
    }
    {
      KG_ASSIGN_OR_RETURN(auto q, rd.Prepare("SELECT chunk_id, entity_key FROM mentions ORDER BY chunk_id, entity_key"));
      while (q->Step()) KG_RETURN_IF_ERROR(sink.Mention(q->Text(0), q->Text(1)));
      KG_RETURN_IF_ERROR(q->status());
    }
    KG_ASSIGN_OR_RETURN(auto q, rd.Prepare(
        // Each chunk id as "<byte length>:<id>": an id may hold any character, a space included.
        "SELECT r.src, r.dst, r.type, (SELECT group_concat(length(CAST(chunk_id AS BLOB)) || ':' || chunk_id, '') "
        "FROM (SELECT DISTINCT chunk_id FROM "
        "relation_evidence v WHERE v.src=r.src AND v.dst=r.dst AND v.type=r.type ORDER BY chunk_id)), (SELECT COUNT(DISTINCT "
        "sentence) FROM relation_evidence v WHERE v.src=r.src AND v.dst=r.dst AND v.type=r.type) FROM relations r "
        "ORDER BY r.src, r.dst, r.type"));
    while (q->Step()) {
      RelationRec rel;
      rel.src = q->Text(0);
      rel.dst = q->Text(1);
      rel.type = q->Text(2);
      const std::string ev = q->Text(3);
      for (size_t pos = 0; pos < ev.size();) {
        const size_t colon = ev.find(':', pos);
        if (colon == std::string::npos) return Status::Internal("export: malformed evidence of " + rel.src);
        const size_t len = std::stoul(ev.substr(pos, colon - pos));
        rel.evidence.push_back(ev.substr(colon + 1, len));
        pos = colon + 1 + len;
      }
      rel.weight = q->Int(4);
      KG_RETURN_IF_ERROR(sink.Relation(rel));
    }
    return q->status();
  }
};

}  // namespace

Result<std::unique_ptr<GraphStore>> OpenSqliteGraphStore(const std::string& path) {
  auto db = sqlite::Db::Open(path);
  if (!db.ok()) return db.status();
  auto s = std::make_unique<SqliteGraphStore>(std::move(db).value());
  KG_RETURN_IF_ERROR(s->Init().With("init graph " + path));
  return std::unique_ptr<GraphStore>(std::move(s));
}

}  // namespace kg
