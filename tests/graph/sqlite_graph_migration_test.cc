// The SQLite graph store brings a database written by an older kgflow up to date when it
// opens it: entity keys folded by hand become NormalizeName's (ICU) keys, and evidence per
// chunk becomes evidence per (chunk, sentence).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>

#include "graph/graph_store.h"
#include "sqlite/db.h"
#include "testing/testing.h"
#include "text/text.h"

namespace kg {
namespace {

// The graph schema before versions were kept (PRAGMA user_version 0).
constexpr const char* kOldSchema = R"sql(
CREATE TABLE documents(id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE chunks(id TEXT PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id),
  idx INTEGER NOT NULL, text TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE entities(key TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
  description TEXT NOT NULL);
CREATE TABLE mentions(chunk_id TEXT NOT NULL REFERENCES chunks(id),
  entity_key TEXT NOT NULL REFERENCES entities(key), PRIMARY KEY(chunk_id, entity_key)) WITHOUT ROWID;
CREATE INDEX mentions_entity ON mentions(entity_key);
CREATE TABLE relations(src TEXT NOT NULL REFERENCES entities(key),
  dst TEXT NOT NULL REFERENCES entities(key), type TEXT NOT NULL, PRIMARY KEY(src, dst, type)) WITHOUT ROWID;
CREATE INDEX relations_dst ON relations(dst);
CREATE TABLE evidence(src TEXT NOT NULL, dst TEXT NOT NULL, type TEXT NOT NULL,
  chunk_id TEXT NOT NULL, PRIMARY KEY(src, dst, type, chunk_id)) WITHOUT ROWID;
CREATE INDEX evidence_chunk ON evidence(chunk_id);
)sql";

// Old keys, as the hand-written folding made them: "Zoë" typed composed and decomposed (char(776)
// is U+0308, the combining diaeresis), and Greek capitals, were different entities. Rows in the
// order they were written.
constexpr const char* kOldRows = R"sql(
INSERT INTO documents VALUES('d1','Doc','');
INSERT INTO chunks VALUES('d1:0','d1',0,'Zoë Lund works at ΣΊΣΥΦΟΣ Labs.',0);
INSERT INTO chunks VALUES('d1:1','d1',1,'Zoë Lund works at σίσυφος labs. Mara Voss founded Helix.',0);
INSERT INTO entities VALUES('person:zoë lund','Zoë Lund','Person','');
INSERT INTO entities VALUES('organization:ΣΊΣΥΦΟΣ labs','ΣΊΣΥΦΟΣ Labs','Organization','');
INSERT INTO entities VALUES('person:zoe'||char(776)||' lund','Zoe'||char(776)||' Lund','Person','a researcher');
INSERT INTO entities VALUES('organization:σίσυφος labs','σίσυφος labs','Organization','a Greek lab');
INSERT INTO entities VALUES('person:mara voss','Mara Voss','Person','founder');
INSERT INTO entities VALUES('organization:helix','Helix','Organization','');
INSERT INTO mentions VALUES('d1:0','person:zoë lund');
INSERT INTO mentions VALUES('d1:0','organization:ΣΊΣΥΦΟΣ labs');
INSERT INTO mentions VALUES('d1:1','person:zoe'||char(776)||' lund');
INSERT INTO mentions VALUES('d1:1','organization:σίσυφος labs');
INSERT INTO mentions VALUES('d1:1','person:mara voss');
INSERT INTO mentions VALUES('d1:1','organization:helix');
INSERT INTO relations VALUES('person:zoë lund','organization:ΣΊΣΥΦΟΣ labs','WORKS_AT');
INSERT INTO evidence VALUES('person:zoë lund','organization:ΣΊΣΥΦΟΣ labs','WORKS_AT','d1:0');
INSERT INTO relations VALUES('person:zoe'||char(776)||' lund','organization:σίσυφος labs','WORKS_AT');
INSERT INTO evidence VALUES('person:zoe'||char(776)||' lund','organization:σίσυφος labs','WORKS_AT','d1:1');
INSERT INTO relations VALUES('person:zoë lund','person:zoe'||char(776)||' lund','SAME_AS');
INSERT INTO evidence VALUES('person:zoë lund','person:zoe'||char(776)||' lund','SAME_AS','d1:1');
INSERT INTO relations VALUES('person:mara voss','organization:helix','FOUNDED');
INSERT INTO evidence VALUES('person:mara voss','organization:helix','FOUNDED','d1:1');
)sql";

std::string WriteOldGraph(const std::string& dir) {
  std::string path = dir + "/graph.db";
  auto db = sqlite::Db::Open(path);
  EXPECT_TRUE(db.ok());
  EXPECT_TRUE((*db)->Exec(kOldSchema).ok());
  Status rows = (*db)->Exec(kOldRows);
  EXPECT_TRUE(rows.ok()) << rows.message();
  return path;
}

int64_t UserVersion(const std::string& path) {
  auto db = sqlite::Db::Open(path);
  auto q = (*db)->Prepare("PRAGMA user_version");
  EXPECT_TRUE(q.ok());
  return (*q)->Step() ? (*q)->Int(0) : -1;
}

// Everything a query can see, for comparing two databases.
std::string Dump(GraphStore& g) {
  auto s = g.Export();
  EXPECT_TRUE(s.ok());
  return ExportJson(*s);
}

void ExpectRekeyed(GraphStore& g) {
  const std::string zoe = EntityKey("Zoë Lund", "Person"), lab = EntityKey("σίσυφος labs", "Organization");
  EXPECT_EQ(lab, "organization:σίσυφοσ labs");
  auto stats = g.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entities, 4);  // zoë lund, σίσυφοσ labs, mara voss, helix
  EXPECT_EQ(stats->relations, 2);  // WORKS_AT merged, SAME_AS (now a self-relation) gone
  auto z = g.GetEntity(zoe);
  ASSERT_TRUE(z.ok()) << z.status().message();
  EXPECT_EQ(z->entity.name, "Zoë Lund");                // the first row's name
  EXPECT_EQ(z->entity.description, "a researcher");     // the first non-empty description
  EXPECT_EQ(z->entity.mentions, 2);
  EXPECT_EQ(z->chunks, (std::vector<std::string>{"d1:0", "d1:1"}));
  ASSERT_EQ(z->neighbours.size(), 1u);
  EXPECT_EQ(z->neighbours[0].entity.key, lab);
  EXPECT_EQ(z->neighbours[0].relation.type, "WORKS_AT");
  EXPECT_EQ(z->neighbours[0].relation.evidence, (std::vector<std::string>{"d1:0", "d1:1"}));
  EXPECT_EQ(z->neighbours[0].relation.weight, 2);  // old rows: each chunk stands for one sentence
  auto l = g.GetEntity(lab);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->entity.name, "ΣΊΣΥΦΟΣ Labs");
  EXPECT_EQ(l->entity.description, "a Greek lab");
  EXPECT_EQ(l->entity.mentions, 2);
  for (const char* old : {"person:zoe\u0308 lund", "organization:ΣΊΣΥΦΟΣ labs", "organization:σίσυφος labs"}) {
    EXPECT_EQ(g.GetEntity(old).status().code(), Code::kNotFound) << old;
  }
  auto m = g.GetEntity("person:mara voss");  // untouched
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->neighbours.size(), 1u);
  EXPECT_EQ(m->neighbours[0].relation.evidence, std::vector<std::string>{"d1:1"});
}

// Verifies opening a graph with old keys re-keys it once: colliding entities merge with their mentions,
// relations and evidence, the version is recorded, a second open changes nothing, and a new batch with
// the other spelling lands on the merged entity.
TEST(SqliteGraphMigration, RekeysOldKeysOnce) {
  testing::TempDir dir;
  std::string path = WriteOldGraph(dir.path());
  std::string first;
  {
    auto g = OpenSqliteGraphStore(path);
    ASSERT_TRUE(g.ok()) << g.status().message();
    ExpectRekeyed(**g);
    first = Dump(**g);
  }
  EXPECT_EQ(UserVersion(path), 3);
  {
    // Evidence rows written before sentences existed take their chunk id as the sentence.
    auto db = sqlite::Db::Open(path);
    auto q = (*db)->Prepare("SELECT COUNT(*), SUM(sentence=chunk_id) FROM evidence");
    ASSERT_TRUE(q.ok()) << q.status().message();
    ASSERT_TRUE((*q)->Step());
    EXPECT_EQ((*q)->Int(0), 3);
    EXPECT_EQ((*q)->Int(1), 3);
  }
  auto g = OpenSqliteGraphStore(path);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(Dump(**g), first);
  GraphBatch b;
  b.doc = {"d2", "Other", ""};
  b.chunk = {"d2:0", "d2", 0, "ΣΊΣΥΦΟΣ LABS hired Zoë Lund."};
  b.entities = {{EntityKey("ΣΊΣΥΦΟΣ LABS", "Organization"), "ΣΊΣΥΦΟΣ LABS", "Organization", "", 0}};
  ASSERT_TRUE((*g)->Merge({b}).ok());
  auto stats = (*g)->Stats();
  EXPECT_EQ(stats->entities, 4);
  EXPECT_EQ((*g)->GetEntity("organization:σίσυφοσ labs")->entity.mentions, 3);
}

// Verifies two stores opening the same old graph at once (a node and its worker) both succeed and the
// result is the same as one opening it alone: the migration runs once (its log has one run), in one
// write transaction, and the later opener finds it done.
TEST(SqliteGraphMigration, ConcurrentOpensMigrateOnce) {
  testing::TempDir dir;
  std::string path = WriteOldGraph(dir.path());
  for (int round = 0; round < 5; ++round) {
    if (round > 0) {
      std::filesystem::remove(path);
      std::filesystem::remove(path + "-wal");
      std::filesystem::remove(path + "-shm");
      WriteOldGraph(dir.path());
    }
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    auto open = [&] {
      start.wait();
      return OpenSqliteGraphStore(path);
    };
    auto a = std::async(std::launch::async, open), b = std::async(std::launch::async, open);
    go.set_value();
    auto ga = a.get(), gb = b.get();
    ASSERT_TRUE(ga.ok()) << ga.status().message();
    ASSERT_TRUE(gb.ok()) << gb.status().message();
    ExpectRekeyed(**ga);
    ExpectRekeyed(**gb);
    // Each migration run logs itself: one run, from version 0, whichever opener did it.
    auto db = sqlite::Db::Open(path);
    auto q = (*db)->Prepare("SELECT COUNT(*), MIN(from_version) FROM schema_migrations");
    ASSERT_TRUE(q.ok()) << q.status().message();
    ASSERT_TRUE((*q)->Step());
    EXPECT_EQ((*q)->Int(0), 1) << "round " << round;
    EXPECT_EQ((*q)->Int(1), 0) << "round " << round;
  }
}

// A version-0 graph of `entities` people with Cyrillic names (the hand-written folding left
// Cyrillic capitals alone, so every key changes), each KNOWS the next, mentioned once, and
// `evidence_rows` evidence rows spread over those relations (one per relation and chunk).
std::string WriteLargeOldGraph(const std::string& dir, int entities, int evidence_rows) {
  std::string path = dir + "/graph.db";
  auto db = sqlite::Db::Open(path);
  EXPECT_TRUE(db.ok());
  EXPECT_TRUE((*db)->Exec(kOldSchema).ok());
  int chunks = (evidence_rows + entities - 1) / entities;
  auto run = [&](const char* sql, int n) {
    auto q = (*db)->Prepare(sql);
    ASSERT_TRUE(q.ok()) << q.status().message();
    Status s = (*q)->Bind(1, n).Bind(2, entities).Bind(3, chunks).Run();
    ASSERT_TRUE(s.ok()) << s.message();
  };
  EXPECT_TRUE((*db)->Exec("BEGIN; INSERT INTO documents VALUES('d','Doc','')").ok());
  run("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i+1<?1) "
      "INSERT INTO chunks SELECT 'd:'||i, 'd', i, '', 0 FROM n", chunks);
  run("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i+1<?1) "
      "INSERT INTO entities SELECT 'person:Иван Петров '||i, 'Иван Петров '||i, 'Person', '' FROM n", entities);
  run("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i+1<?1) "
      "INSERT INTO mentions SELECT 'd:'||(i%?3), 'person:Иван Петров '||i FROM n", entities);
  run("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i+1<?1) "
      "INSERT INTO relations SELECT 'person:Иван Петров '||i, 'person:Иван Петров '||((i+1)%?2), 'KNOWS' FROM n",
      entities);
  run("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i+1<?1) "
      "INSERT INTO evidence SELECT 'person:Иван Петров '||(i%?2), 'person:Иван Петров '||((i%?2+1)%?2), 'KNOWS', "
      "'d:'||(i/?2) FROM n",
      evidence_rows);
  EXPECT_TRUE((*db)->Exec("COMMIT").ok());
  return path;
}

// Verifies re-keying a version-0 graph where every key changes keeps every mention, relation and
// evidence row on the new keys. Sized to take a few seconds if each moved key scanned the evidence
// table (no index on its dst); KG_REKEY_SHAPE="entities,evidence" re-runs it at another size (the
// review's 2000 entities and 200000 rows, say) to time the migration.
TEST(SqliteGraphMigration, RekeysALargeGraph) {
  int entities = 500, evidence_rows = 50000;
  if (const char* shape = std::getenv("KG_REKEY_SHAPE")) {
    ASSERT_EQ(std::sscanf(shape, "%d,%d", &entities, &evidence_rows), 2) << shape;
  }
  testing::TempDir dir;
  std::string path = WriteLargeOldGraph(dir.path(), entities, evidence_rows);
  auto g = OpenSqliteGraphStore(path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto stats = (*g)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entities, entities);
  EXPECT_EQ(stats->relations, entities);
  int per_relation = evidence_rows / entities;  // rows of the relations the remainder does not reach
  for (int i : {0, entities / 2, entities - 1}) {
    std::string name = "Иван Петров " + std::to_string(i);
    const std::string key = EntityKey(name, "Person");
    EXPECT_EQ(key, "person:иван петров " + std::to_string(i));
    auto e = (*g)->GetEntity(key);
    ASSERT_TRUE(e.ok()) << key << ": " << e.status().message();
    EXPECT_EQ(e->entity.name, name);
    EXPECT_EQ(e->entity.mentions, 1);
    ASSERT_EQ(e->neighbours.size(), 2u) << key;  // KNOWS the next, known by the previous
    for (const Neighbour& n : e->neighbours) EXPECT_GE(n.relation.weight, per_relation) << key;
  }
  auto db = sqlite::Db::Open(path);
  auto q = (*db)->Prepare(
      "SELECT (SELECT COUNT(*) FROM evidence), (SELECT COUNT(*) FROM evidence v JOIN entities a ON a.key=v.src "
      "JOIN entities b ON b.key=v.dst JOIN relations r ON r.src=v.src AND r.dst=v.dst AND r.type=v.type), "
      "(SELECT COUNT(*) FROM mentions m JOIN entities e ON e.key=m.entity_key)");
  ASSERT_TRUE(q.ok()) << q.status().message();
  ASSERT_TRUE((*q)->Step());
  EXPECT_EQ((*q)->Int(0), evidence_rows);
  EXPECT_EQ((*q)->Int(1), evidence_rows);  // every row on a relation between two re-keyed entities
  EXPECT_EQ((*q)->Int(2), entities);
  // What each moved key looked up, and queries by a relation's end, go through an index.
  auto plan = (*db)->Prepare("EXPLAIN QUERY PLAN SELECT chunk_id FROM evidence WHERE dst=?");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  std::string steps;
  while ((*plan)->Step()) steps += (*plan)->Text(3) + "; ";
  EXPECT_NE(steps.find("SEARCH"), std::string::npos) << steps;
  EXPECT_NE(steps.find("(dst=?)"), std::string::npos) << steps;
}

// Verifies a kgflow from before schema versions cannot write into a migrated graph: its open
// (which indexes `evidence`) and its evidence INSERT (no sentence, old-style keys) fail with an
// error instead of being ignored, and the evidence stays as it was, readable under the old name.
TEST(SqliteGraphMigration, OldWritersFailLoudly) {
  testing::TempDir dir;
  std::string path = WriteOldGraph(dir.path());
  ASSERT_TRUE(OpenSqliteGraphStore(path).ok());
  auto db = sqlite::Db::Open(path);
  ASSERT_TRUE(db.ok());
  // The version-0 binary's schema statements for evidence, run on every open.
  Status open = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS evidence(src TEXT NOT NULL, dst TEXT NOT NULL, type TEXT NOT NULL, "
      "chunk_id TEXT NOT NULL, PRIMARY KEY(src, dst, type, chunk_id)) WITHOUT ROWID;"
      "CREATE INDEX IF NOT EXISTS evidence_chunk ON evidence(chunk_id);");
  EXPECT_FALSE(open.ok());
  EXPECT_NE(open.message().find("view"), std::string::npos) << open.message();
  // Its Merge's evidence write.
  Status insert = (*db)->Exec(
      "INSERT OR IGNORE INTO evidence(src,dst,type,chunk_id) VALUES('person:mara voss','organization:helix',"
      "'FOUNDED','d9:0')");
  EXPECT_FALSE(insert.ok());
  EXPECT_NE(insert.message().find("view"), std::string::npos) << insert.message();
  auto q = (*db)->Prepare("SELECT COUNT(*) FROM evidence");
  ASSERT_TRUE(q.ok()) << q.status().message();
  ASSERT_TRUE((*q)->Step());
  EXPECT_EQ((*q)->Int(0), 3);
}

// Verifies opening a graph already at the current version needs no write lock: it opens while another
// connection holds a write transaction (before, the open waited the busy timeout and failed).
TEST(SqliteGraphMigration, CurrentVersionOpensWithoutTheWriteLock) {
  testing::TempDir dir;
  std::string path = dir.path() + "/graph.db";
  ASSERT_TRUE(OpenSqliteGraphStore(path).ok());
  auto writer = sqlite::Db::Open(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Exec("BEGIN IMMEDIATE").ok());
  auto g = OpenSqliteGraphStore(path);
  EXPECT_TRUE(g.ok()) << g.status().message();
  ASSERT_TRUE((*writer)->Exec("COMMIT").ok());
}

// Verifies a version-2 graph (evidence per sentence in the `evidence` table) keeps its sentences when
// evidence moves to relation_evidence: a relation read in two sentences of one chunk still weighs 2.
TEST(SqliteGraphMigration, VersionTwoKeepsSentences) {
  testing::TempDir dir;
  std::string path = dir.path() + "/graph.db";
  {
    auto db = sqlite::Db::Open(path);
    ASSERT_TRUE(db.ok());
    Status s = (*db)->Exec(
        "CREATE TABLE documents(id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL);"
        "CREATE TABLE chunks(id TEXT PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id), idx INTEGER NOT NULL, "
        "text TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE entities(key TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, description TEXT NOT NULL);"
        "CREATE TABLE mentions(chunk_id TEXT NOT NULL REFERENCES chunks(id), entity_key TEXT NOT NULL REFERENCES "
        "entities(key), PRIMARY KEY(chunk_id, entity_key)) WITHOUT ROWID;"
        "CREATE TABLE relations(src TEXT NOT NULL REFERENCES entities(key), dst TEXT NOT NULL REFERENCES entities(key), "
        "type TEXT NOT NULL, PRIMARY KEY(src, dst, type)) WITHOUT ROWID;"
        "CREATE TABLE evidence(src TEXT NOT NULL, dst TEXT NOT NULL, type TEXT NOT NULL, chunk_id TEXT NOT NULL, "
        "sentence TEXT NOT NULL, PRIMARY KEY(src, dst, type, chunk_id, sentence)) WITHOUT ROWID;"
        "CREATE INDEX evidence_chunk ON evidence(chunk_id);"
        "INSERT INTO documents VALUES('d1','Doc','');"
        "INSERT INTO chunks VALUES('d1:0','d1',0,'Mara Voss founded Helix. Helix was founded by Mara Voss.',0);"
        "INSERT INTO entities VALUES('person:mara voss','Mara Voss','Person','');"
        "INSERT INTO entities VALUES('organization:helix','Helix','Organization','');"
        "INSERT INTO relations VALUES('person:mara voss','organization:helix','FOUNDED');"
        "INSERT INTO evidence VALUES('person:mara voss','organization:helix','FOUNDED','d1:0','d1@0');"
        "INSERT INTO evidence VALUES('person:mara voss','organization:helix','FOUNDED','d1:0','d1@25');"
        "PRAGMA user_version=2;");
    ASSERT_TRUE(s.ok()) << s.message();
  }
  auto g = OpenSqliteGraphStore(path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto m = (*g)->GetEntity("person:mara voss");
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->neighbours.size(), 1u);
  EXPECT_EQ(m->neighbours[0].relation.weight, 2);
  EXPECT_EQ(m->neighbours[0].relation.evidence, std::vector<std::string>{"d1:0"});
  EXPECT_EQ(UserVersion(path), 3);
}

// Verifies a database from a newer kgflow is refused with the reason, not written.
TEST(SqliteGraphMigration, NewerSchemaIsRefused) {
  testing::TempDir dir;
  std::string path = dir.path() + "/graph.db";
  {
    auto db = sqlite::Db::Open(path);
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version=99").ok());
  }
  auto g = OpenSqliteGraphStore(path);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("newer"), std::string::npos) << g.status().message();
  EXPECT_EQ(UserVersion(path), 99);
}

// Verifies the export gives a relation's evidence chunk ids whole whatever they hold: a
// document id with spaces and a colon (clients choose it) makes chunk ids the export used to
// split at each space; Export() and GetEntity agree.
TEST(SqliteGraph, ExportKeepsEvidenceChunkIdsWithSpaces) {
  testing::TempDir dir;
  auto g = OpenSqliteGraphStore(dir.File("graph.db"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::vector<GraphBatch> batches;
  for (int i = 0; i < 2; ++i) {
    GraphBatch b;
    b.doc = {"my doc: 2 3", "T", "s"};
    b.chunk = {b.doc.id + ":" + std::to_string(i), b.doc.id, i, "Mara Voss founded Helix.", 1};
    b.entities = {{"person:mara voss", "Mara Voss", "Person", "", 0}, {"organization:helix", "Helix", "Organization", "", 0}};
    b.relations = {{"person:mara voss", "organization:helix", "FOUNDED", {}, 0}};
    batches.push_back(b);
  }
  ASSERT_TRUE((*g)->Merge(batches).ok());
  auto snap = (*g)->Export();
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  ASSERT_EQ(snap->relations.size(), 1u);
  const std::vector<std::string> want = {"my doc: 2 3:0", "my doc: 2 3:1"};
  EXPECT_EQ(snap->relations[0].evidence, want);
  auto e = (*g)->GetEntity("person:mara voss");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->neighbours.at(0).relation.evidence, want);
}

}  // namespace
}  // namespace kg
