// The Neo4j graph beyond the shared contract, against the run's real Neo4j 5 (one database:
// every test starts by emptying it): hostile text changes nothing but its own data, re-merging
// creates nothing (the server's own counters), the export's order is byte order, the real
// pipeline gives the same graph as the embedded store, and concurrent merges from several
// stores never surface a deadlock.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bolt/bolt.h"
#include "common/util.h"
#include "graph/graph_store.h"
#include "graph/neo4j_graph_store.h"
#include "pipeline/document.h"
#include "provider/provider.h"
#include "testing/neo4j.h"
#include "testing/servers.h"
#include "graph/overlapping_batches.h"
#include "testing/testing.h"
#include "text/text.h"

namespace kg {
namespace {

std::unique_ptr<GraphStore> OpenNeo4j(const Neo4jGraphOptions& options = {}) {
  auto g = OpenNeo4jGraphStore(testing::Neo4jAt(testing::SharedNeo4j()), options);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(g).value() : nullptr;
}

std::unique_ptr<GraphStore> OpenSqlite(const testing::TempDir& dir) {
  auto g = OpenSqliteGraphStore(dir.File("graph.db"));
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(g).value() : nullptr;
}

// A direct session with the shared server, for what the store does not show.
std::unique_ptr<bolt::Connection> Direct() {
  auto c = bolt::Connection::Open(testing::Neo4jAt(testing::SharedNeo4j()));
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(c).value() : nullptr;
}

// The single value the query returns.
bolt::Value One(bolt::Connection& c, const std::string& cypher) {
  auto r = c.Run(cypher, {}, bolt::AccessMode::kRead);
  EXPECT_TRUE(r.ok()) << cypher << ": " << r.status().message();
  if (!r.ok() || r->records.empty() || r->records[0].empty()) return {};
  return r->records[0][0];
}

std::set<std::string> Strings(const bolt::Value& list) {
  std::set<std::string> out;
  for (const bolt::Value& v : list.AsList()) out.insert(v.AsString());
  return out;
}

// The whole graph as text, and every entity's mention count (ExportJson leaves them out):
// equal text, equal graph.
std::string Dump(GraphStore& g) {
  auto snap = g.Export();
  EXPECT_TRUE(snap.ok()) << snap.status().message();
  if (!snap.ok()) return "<" + snap.status().message() + ">";
  std::string out = ExportJson(*snap);
  for (const EntityRec& e : snap->entities) out += "\n" + e.key + " mentioned " + std::to_string(e.mentions);
  return out;
}

// Compares two dumps line by line and reports the first lines that differ, shortened (a
// 20,000-character name would drown the report).
void ExpectSameDump(const std::string& got, const std::string& want) {
  if (got == want) return;
  auto lines = [](const std::string& s) {
    std::vector<std::string> out;
    size_t from = 0;
    for (size_t nl; (nl = s.find('\n', from)) != std::string::npos; from = nl + 1) out.push_back(s.substr(from, nl - from));
    out.push_back(s.substr(from));
    return out;
  };
  auto a = lines(got), b = lines(want);
  int reported = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) && reported < 5; ++i) {
    std::string x = i < a.size() ? a[i] : "<none>", y = i < b.size() ? b[i] : "<none>";
    if (x == y) continue;
    ++reported;
    ADD_FAILURE() << "line " << i << " differs:\n  got:  " << x.substr(0, 300) << "\n  want: " << y.substr(0, 300);
  }
  EXPECT_EQ(a.size(), b.size());
}

// The batches the worker would write for the sample documents: planned, extracted by the
// builtin provider and built exactly as a worker does it.
std::vector<GraphBatch> SampleBatches() {
  std::vector<GraphBatch> out;
  for (const char* name : {"helix-dynamics.txt", "aurora-observatory.txt", "linden-institute.txt", "xinghe-tech.txt"}) {
    const std::string text = testing::ReadFile(testing::SamplesDir() + "/" + name);
    EXPECT_FALSE(text.empty()) << name;
    TaskPlan plan = PlanTask(std::string("t-") + name, "builtin", "", name, name, text, ChunkOptions{400, 80});
    for (const ChunkItem& item : plan.items) {
      auto payload = DecodePayload(item.payload);
      EXPECT_TRUE(payload.ok()) << payload.status().message();
      if (!payload.ok()) continue;
      GraphBatch b = BuildBatch(*payload, BuiltinExtract(payload->text));
      b.chunk.generation = 1;
      out.push_back(std::move(b));
    }
  }
  return out;
}

Status MergeIn(GraphStore& g, const std::vector<GraphBatch>& batches, size_t per_merge) {
  for (size_t i = 0; i < batches.size(); i += per_merge) {
    std::vector<GraphBatch> group(batches.begin() + i, batches.begin() + std::min(batches.size(), i + per_merge));
    KG_RETURN_IF_ERROR(g.Merge(group));
  }
  return Status::Ok();
}

// Verifies entity names, types and relation types full of Cypher syntax (quotes, backticks,
// braces, `}) DETACH DELETE n //`, parameters), control characters, emoji, Chinese and a name
// longer than Neo4j's index key limit are stored and read back exactly (the same graph as the
// embedded store's), and that nothing else in the database changed: a sentinel node survives,
// the node count grows by exactly the merged nodes, and no label or relationship type appears
// but the model's.
TEST(Neo4jGraph, HostileTextChangesOnlyItsOwnData) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto direct = Direct();
  ASSERT_TRUE(direct);
  ASSERT_TRUE(direct->Run("CREATE (:Sentinel {v: 'keep'})-[:GUARDS]->(:Sentinel {v: 'keep too'})").ok());
  auto g = OpenNeo4j();
  ASSERT_TRUE(g);

  const std::vector<std::string> names = {
      "O'Brien \"the\" `tick` {brace}",
      "x'}) DETACH DELETE n //",
      "}) MATCH (n) DETACH DELETE n RETURN 1 //",
      "$x $rows {rows} ${q}",
      "line one\nline two\r\n\ttabbed",
      "emoji \U0001F600\U0001F680 and \u200d joiner",
      "华为技术有限公司",
      "back\\slash \\' \\\" \\u0027",
      std::string(20000, 'w') + " very long",
  };
  const std::vector<std::string> types = {"Org`) DETACH DELETE n //", "Person", "类型 \U0001F600", "a\nb", "$type"};
  const std::vector<std::string> rel_types = {
      "WORKS_AT`]->() DETACH DELETE n //", "}) MATCH (n) DETACH DELETE n //", "关系", "\U0001F600", "", "a'b\"c`d",
      "$rel", "x\ny", std::string(9000, 'R')};
  GraphBatch b;
  b.doc = {"doc'}) DETACH DELETE n // `{$x}\"\U0001F600", "Title `with` {braces} }) DETACH DELETE n //",
           "source\n\"quoted\".txt"};
  b.chunk = {b.doc.id + ":0", b.doc.id, 0, "text with 'quotes' and }) DETACH DELETE n //", 1};
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& type = types[i % types.size()];
    b.entities.push_back({EntityKey(names[i], type), names[i], type, "desc " + names[(i + 1) % names.size()], 0});
  }
  for (size_t i = 0; i < rel_types.size(); ++i) {
    b.relations.push_back({b.entities[i % b.entities.size()].key, b.entities[(i + 1) % b.entities.size()].key,
                           rel_types[i], {}, 0, {"s'}) //" + std::to_string(i)}});
  }
  ASSERT_GT(b.entities.back().key.size(), 8192u) << "longer than Neo4j's index key limit";

  const int64_t nodes_before = One(*direct, "MATCH (n) RETURN count(n)").AsInt();
  const int64_t rels_before = One(*direct, "MATCH ()-[r]->() RETURN count(r)").AsInt();
  ASSERT_EQ(nodes_before, 2);
  ASSERT_EQ(rels_before, 1);
  Status merged = g->Merge({b});
  ASSERT_TRUE(merged.ok()) << merged.message();

  // Read back exactly, by every read the store has.
  for (const EntityRec& e : b.entities) {
    auto got = g->GetEntity(e.key);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(got->entity.name, e.name);
    EXPECT_EQ(got->entity.type, e.type);
    EXPECT_EQ(got->entity.description, e.description);
    EXPECT_EQ(got->chunks, std::vector<std::string>{b.chunk.id});
    EXPECT_EQ(got->documents, std::vector<std::string>{b.doc.id});
    auto by_name = g->FindByName(NormalizeName(e.name));
    ASSERT_TRUE(by_name.ok()) << by_name.status().message();
    EXPECT_EQ(*by_name, std::vector<std::string>{e.key});
  }
  auto found = g->SearchEntities("}) DETACH DELETE N //", 10);
  ASSERT_TRUE(found.ok()) << found.status().message();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].name, names[1]);
  auto stats = g->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->documents, 1);
  EXPECT_EQ(stats->chunks, 1);
  EXPECT_EQ(stats->entities, static_cast<int64_t>(names.size()));
  EXPECT_EQ(stats->relations, static_cast<int64_t>(rel_types.size()));
  testing::TempDir dir;
  auto sqlite = OpenSqlite(dir);
  ASSERT_TRUE(sqlite);
  ASSERT_TRUE(sqlite->Merge({b}).ok());
  ExpectSameDump(Dump(*g), Dump(*sqlite));  // every name, type, relation type and text as the embedded graph has it

  // Nothing else changed.
  EXPECT_EQ(One(*direct, "MATCH (n) RETURN count(n)").AsInt(), nodes_before + 2 + static_cast<int64_t>(names.size()));
  EXPECT_EQ(One(*direct, "MATCH ()-[r]->() RETURN count(r)").AsInt(),
            rels_before + 1 + static_cast<int64_t>(names.size() + rel_types.size()));
  EXPECT_EQ(One(*direct, "MATCH (s:Sentinel)-[:GUARDS]->(t:Sentinel) RETURN s.v + '/' + t.v").AsString(), "keep/keep too");
  EXPECT_EQ(Strings(One(*direct, "MATCH (n) UNWIND labels(n) AS l RETURN collect(DISTINCT l)")),
            (std::set<std::string>{"Sentinel", "Document", "Chunk", "Entity"}));
  EXPECT_EQ(Strings(One(*direct, "MATCH ()-[r]->() RETURN collect(DISTINCT type(r))")),
            (std::set<std::string>{"GUARDS", "HAS_CHUNK", "MENTIONS", "RELATION"}));
}

// Verifies that merging the same batches again, and a newer generation with the same answer,
// creates and deletes nothing: the server's own counters (nodes and relationships created and
// deleted, from every statement's summary) stay 0, and the graph is unchanged.
TEST(Neo4jGraph, ReMergingCreatesNothing) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  Neo4jWriteCounts counts;
  auto g = OpenNeo4j(Neo4jGraphOptions{&counts, false});
  ASSERT_TRUE(g);
  std::vector<GraphBatch> batches = SampleBatches();
  ASSERT_GT(batches.size(), 8u);
  ASSERT_TRUE(MergeIn(*g, batches, 8).ok());
  EXPECT_GT(counts.nodes_created.load(), static_cast<int64_t>(batches.size()));
  EXPECT_GT(counts.relationships_created.load(), static_cast<int64_t>(batches.size()));
  const std::string before = Dump(*g);

  counts.nodes_created = counts.relationships_created = counts.nodes_deleted = counts.relationships_deleted = 0;
  ASSERT_TRUE(MergeIn(*g, batches, 8).ok());
  for (GraphBatch& b : batches) b.chunk.generation = 2;
  ASSERT_TRUE(MergeIn(*g, batches, 5).ok());
  EXPECT_EQ(counts.nodes_created.load(), 0);
  EXPECT_EQ(counts.relationships_created.load(), 0);
  EXPECT_EQ(counts.nodes_deleted.load(), 0);
  EXPECT_EQ(counts.relationships_deleted.load(), 0);
  ExpectSameDump(Dump(*g), before);
}

// Verifies each export section is in the byte order of the UTF-8 keys graph_store.h asks for
// (what SQLite gives), where UTF-16 order would differ: a supplementary-plane character (4 bytes,
// a surrogate pair in UTF-16) sorts after U+E000 and U+FF5A, not before them.
TEST(Neo4jGraph, ExportOrderIsByteOrder) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto g = OpenNeo4j();
  ASSERT_TRUE(g);
  const std::vector<std::string> names = {"z", "\u00e9", "\u4e2d", "\ue000", "\uff5a", "\U0001F600", "\U00020000",
                                          "A", "a b", "ab"};
  GraphBatch b;
  b.doc = {"d", "D", "d.txt"};
  b.chunk = {"d:0", "d", 0, "t", 1};
  for (const std::string& n : names) b.entities.push_back({"k:" + n, n, "T", "", 0});
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    b.relations.push_back({b.entities[i].key, b.entities[i + 1].key, names[names.size() - 1 - i], {}, 0});
    b.relations.push_back({b.entities[i].key, b.entities[0].key, names[i], {}, 0});
  }
  ASSERT_TRUE(g->Merge({b}).ok());
  auto snap = g->Export();
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  std::vector<std::string> keys;
  for (const EntityRec& e : snap->entities) keys.push_back(e.key);
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(keys, sorted);
  ASSERT_EQ(keys.size(), names.size());
  std::vector<std::array<std::string, 3>> rels, rels_sorted;
  for (const RelationRec& r : snap->relations) rels.push_back({r.src, r.dst, r.type});
  rels_sorted = rels;
  std::sort(rels_sorted.begin(), rels_sorted.end());
  EXPECT_EQ(rels, rels_sorted);
  testing::TempDir dir;
  auto sqlite = OpenSqlite(dir);
  ASSERT_TRUE(sqlite);
  ASSERT_TRUE(sqlite->Merge({b}).ok());
  ExpectSameDump(Dump(*g), Dump(*sqlite));
}

// Verifies the sample documents run through the real pipeline (planning, the builtin
// extractor, BuildBatch) give the same graph in Neo4j as in the embedded SQLite graph: the same
// documents, chunks, entities with their mention counts, mentions, relations, evidence and
// weights; and the same answers to GetEntity for every entity.
TEST(Neo4jGraph, PipelineGivesTheSameGraphAsSqlite) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto g = OpenNeo4j();
  ASSERT_TRUE(g);
  testing::TempDir dir;
  auto sqlite = OpenSqlite(dir);
  ASSERT_TRUE(sqlite);
  const std::vector<GraphBatch> batches = SampleBatches();
  ASSERT_TRUE(MergeIn(*g, batches, 8).ok());
  ASSERT_TRUE(MergeIn(*sqlite, batches, 8).ok());
  auto a = g->Stats(), b = sqlite->Stats();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->documents, 4);
  EXPECT_EQ(a->chunks, b->chunks);
  EXPECT_EQ(a->entities, b->entities);
  EXPECT_EQ(a->relations, b->relations);
  EXPECT_GT(a->relations, 10);
  ExpectSameDump(Dump(*g), Dump(*sqlite));
  auto snap = sqlite->Export();
  ASSERT_TRUE(snap.ok());
  for (const EntityRec& e : snap->entities) {
    auto x = g->GetEntity(e.key), y = sqlite->GetEntity(e.key);
    ASSERT_TRUE(x.ok() && y.ok()) << e.key;
    EXPECT_EQ(x->entity.mentions, y->entity.mentions) << e.key;
    EXPECT_EQ(x->chunks, y->chunks) << e.key;
    EXPECT_EQ(x->documents, y->documents) << e.key;
    ASSERT_EQ(x->neighbours.size(), y->neighbours.size()) << e.key;
    for (size_t i = 0; i < x->neighbours.size(); ++i) {
      EXPECT_EQ(x->neighbours[i].direction, y->neighbours[i].direction);
      EXPECT_EQ(x->neighbours[i].entity.key, y->neighbours[i].entity.key);
      EXPECT_EQ(x->neighbours[i].relation.type, y->neighbours[i].relation.type);
      EXPECT_EQ(x->neighbours[i].relation.evidence, y->neighbours[i].relation.evidence);
      EXPECT_EQ(x->neighbours[i].relation.weight, y->neighbours[i].relation.weight);
    }
  }
}

// Verifies the fence holds when two writers of one chunk race: for each of 20 stored chunks
// (generation 3), two stores merge generation 5 and generation 4 at the same moment; whichever
// runs first, the graph ends with generation 5's contribution and generation 4 is refused or
// replaced, never left in place (the chunk node is locked before its generation is read).
TEST(Neo4jGraph, RacingWritersOfOneChunkKeepTheNewestGeneration) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto a = OpenNeo4j(), b = OpenNeo4j();
  ASSERT_TRUE(a && b);
  constexpr int kRounds = 20;
  auto batch = [](int round, int64_t gen) {
    GraphBatch g;
    g.doc = {"race", "Race", "race.txt"};
    g.chunk = {"race:" + std::to_string(round), "race", round, "gen " + std::to_string(gen), gen};
    const std::string name = "Writer " + std::to_string(round) + " gen " + std::to_string(gen);
    g.entities = {{EntityKey(name, "Person"), name, "Person", "", 0}};
    return g;
  };
  std::vector<GraphBatch> stored;
  for (int r = 0; r < kRounds; ++r) stored.push_back(batch(r, 3));
  ASSERT_TRUE(a->Merge(stored).ok());
  for (int r = 0; r < kRounds; ++r) {
    std::barrier start(2);
    Status newer, older;
    std::thread t1([&] {
      start.arrive_and_wait();
      newer = a->Merge({batch(r, 5)});
    });
    std::thread t2([&] {
      start.arrive_and_wait();
      older = b->Merge({batch(r, 4)});
    });
    t1.join();
    t2.join();
    EXPECT_TRUE(newer.ok()) << newer.message();
    EXPECT_TRUE(older.ok() || older.code() == Code::kConflict) << older.message();
  }
  auto snap = a->Export();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->entities.size(), static_cast<size_t>(kRounds));
  for (const EntityRec& e : snap->entities) EXPECT_NE(e.name.find(" gen 5"), std::string::npos) << e.name;
  for (const ChunkRec& c : snap->chunks) EXPECT_EQ(c.text, "gen 5") << c.id;
}

// testing::Overlapping with this test's pools: 13 people, 4 organisations.
GraphBatch Overlapping(int c, int64_t gen) { return testing::Overlapping(c, gen, 13, 4); }
using testing::Org;
using testing::Person;

// Verifies four threads, each with a store (and a connection pool) of its own, merging batches
// that share entities and relations in opposite orders at once, then re-extracting a third of
// their chunks at a newer generation and replaying stale ones: every merge succeeds (deadlocks
// Neo4j detects are retried inside Merge, none surfaces), every stale one is refused, and the
// graph is exactly what the sequential merge of the same batches gives in SQLite.
TEST(Neo4jGraph, ConcurrentMergesFromSeveralStoresNeverSurfaceADeadlock) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  constexpr int kThreads = 4, kChunksPerThread = 24, kPerMerge = 4;
  std::vector<std::unique_ptr<GraphStore>> stores;
  for (int t = 0; t < kThreads; ++t) {
    stores.push_back(OpenNeo4j());
    ASSERT_TRUE(stores.back());
  }
  std::atomic<int> failures{0}, refused{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      GraphStore& g = *stores[t];
      std::vector<int> mine;
      for (int i = 0; i < kChunksPerThread; ++i) mine.push_back(t + i * kThreads);
      if (t % 2 == 1) std::reverse(mine.begin(), mine.end());  // the same entities, the other way round
      auto merge = [&](std::vector<GraphBatch>& batches) {
        if (batches.empty()) return;
        Status s = g.Merge(batches);
        if (!s.ok()) {
          ++failures;
          if (errors[t].empty()) errors[t] = s.message();  // the first: later ones may follow from it
        }
        batches.clear();
      };
      auto run = [&](int64_t gen, bool every) {
        std::vector<GraphBatch> batches;
        for (int c : mine) {
          if (!every && c % 3 != 0) continue;
          batches.push_back(Overlapping(c, gen));
          if (batches.size() == kPerMerge) merge(batches);
        }
        merge(batches);
      };
      run(1, true);
      run(2, false);
      for (int c : mine) {
        if (c % 3 != 0) continue;
        Status s = g.Merge({Overlapping(c, 1)});
        if (s.code() == Code::kConflict) {
          ++refused;
        } else {
          ++failures;
          if (errors[t].empty()) errors[t] = "stale write: " + (s.ok() ? "accepted" : s.message());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& err : errors) EXPECT_EQ(err, "");
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(refused.load(), kThreads * kChunksPerThread / 3);

  testing::TempDir dir;
  auto sqlite = OpenSqlite(dir);
  ASSERT_TRUE(sqlite);
  const int chunks = kThreads * kChunksPerThread;
  std::vector<GraphBatch> all;
  for (int c = 0; c < chunks; ++c) all.push_back(Overlapping(c, 1));
  ASSERT_TRUE(sqlite->Merge(all).ok());
  all.clear();
  for (int c = 0; c < chunks; c += 3) all.push_back(Overlapping(c, 2));
  ASSERT_TRUE(sqlite->Merge(all).ok());
  auto stats = stores[0]->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, chunks);
  ExpectSameDump(Dump(*stores[0]), Dump(*sqlite));
}

// Verifies a Merge writes with a handful of statements whatever its size: 32 batches (384
// entity and relation rows, and their mentions and chunks) in at most 13 statements (the fence, then one run of distinct
// chunks: 12 at most), where sending each row alone takes more statements than there are rows.
TEST(Neo4jGraph, MergeWritesAFewStatementsNotOnePerRow) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  std::vector<GraphBatch> batches;
  for (int c = 0; c < 32; ++c) batches.push_back(Overlapping(c, 1));
  size_t rows = 0;
  for (const GraphBatch& b : batches) rows += b.entities.size() + b.relations.size();  // and mentions, chunks...
  Neo4jWriteCounts batched, one_row;
  auto g = OpenNeo4j(Neo4jGraphOptions{&batched, false});
  ASSERT_TRUE(g);
  ASSERT_TRUE(g->Merge(batches).ok());
  EXPECT_LE(batched.statements.load(), 13);
  const std::string graph = Dump(*g);
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto slow = OpenNeo4j(Neo4jGraphOptions{&one_row, true});
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->Merge(batches).ok());
  EXPECT_GT(one_row.statements.load(), static_cast<int64_t>(rows));
  ExpectSameDump(Dump(*slow), graph);
}

// Verifies a batch whose relation names an end that is no entity (BuildBatch never makes one)
// is refused with kInvalidArgument naming the relation, and writes nothing.
TEST(Neo4jGraph, RelationToAMissingEntityIsRefused) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto g = OpenNeo4j();
  ASSERT_TRUE(g);
  GraphBatch b = Overlapping(0, 1);
  b.relations.push_back({b.entities[0].key, "person:nobody", "KNOWS", {}, 0});
  Status s = g->Merge({b});
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.message();
  EXPECT_NE(s.message().find("person:nobody"), std::string::npos) << s.message();
  auto stats = g->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks + stats->documents + stats->entities + stats->relations, 0);
}

class CountingSink final : public GraphSink {
 public:
  Status Document(const DocumentRec&) override { return Status::Ok(); }
  Status Chunk(const ChunkRec& c) override {
    ++chunks;
    text_bytes += c.text.size();
    return Status::Ok();
  }
  Status Entity(const EntityRec&) override { return Status::Ok(); }
  Status Mention(const std::string&, const std::string&) override { return Status::Ok(); }
  Status Relation(const RelationRec&) override { return Status::Ok(); }
  size_t chunks = 0, text_bytes = 0;
};

// Verifies ExportTo holds no section in memory: exporting 1,500 chunks of 32 KiB (48 MiB of
// text; pulled in small batches, spooled to a temporary file, read back record by record)
// raises this process's peak resident memory by a few MiB at most.
TEST(Neo4jGraph, ExportToHoldsNoSectionInMemory) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps freed blocks resident (256 MB by default): RSS would measure it.
  GTEST_SKIP() << "peak RSS is not the program's under AddressSanitizer; the release run checks it";
#endif
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto g = OpenNeo4j();
  ASSERT_TRUE(g);
  constexpr int kChunks = 1500;
  constexpr size_t kText = 32 * 1024;
  {
    std::vector<GraphBatch> batches;
    for (int c = 0; c < kChunks; ++c) {
      GraphBatch b;
      b.doc = {"d" + std::to_string(c / 100), "Doc", "d.txt"};
      b.chunk = {b.doc.id + ":" + std::to_string(c % 100), b.doc.id, c % 100, std::string(kText, 'a' + c % 26), 1};
      b.entities = {{"person:p" + std::to_string(c), "P" + std::to_string(c), "Person", "", 0}};
      batches.push_back(std::move(b));
      if (batches.size() == 100) {
        ASSERT_TRUE(g->Merge(batches).ok());
        batches.clear();
      }
    }
  }
  const pid_t self = getpid();
  {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";  // the peak (VmHWM) starts again from the current RSS
  }
  const long before = testing::StatusKb(self, "VmRSS");
  CountingSink sink;
  Status s = g->ExportTo(sink);
  ASSERT_TRUE(s.ok()) << s.message();
  const long peak = testing::StatusKb(self, "VmHWM");
  EXPECT_EQ(sink.chunks, static_cast<size_t>(kChunks));
  EXPECT_EQ(sink.text_bytes, kChunks * kText);
  std::printf("export of %zu MiB of chunk text: peak RSS +%ld KiB\n", sink.text_bytes >> 20, peak - before);
  EXPECT_LT(peak - before, 8 * 1024) << "KiB over the RSS before the export";
}

// Verifies stores opened at once on a new server (as a node and its workers start together)
// all open: the race to create the same constraints and indexes is no error; the schema is
// there once, and a Merge through each works.
TEST(Neo4jGraph, StoresOpenedAtOnceOnANewServerAllOpen) {
  testing::TempDir dir;
  testing::ScopedServer server{testing::StartServer("neo4j", dir.File("neo4j"))};
  ASSERT_GT(server.server.port, 0);
  constexpr int kStores = 6;
  std::vector<std::unique_ptr<GraphStore>> stores(kStores);
  std::vector<std::string> errors(kStores);
  {
    std::barrier start(kStores);
    std::vector<std::thread> threads;
    for (int i = 0; i < kStores; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        auto g = OpenNeo4jGraphStore(testing::Neo4jAt(server.server));
        if (g.ok()) stores[i] = std::move(g).value();
        else errors[i] = g.status().message();
      });
    }
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < kStores; ++i) {
    EXPECT_EQ(errors[i], "");
    if (!stores[i]) continue;
    EXPECT_TRUE(stores[i]->Merge({Overlapping(i, 1)}).ok());
  }
  auto c = bolt::Connection::Open(testing::Neo4jAt(server.server));
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto rules = (*c)->Run("SHOW CONSTRAINTS YIELD name RETURN count(*)", {}, bolt::AccessMode::kRead);
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  EXPECT_EQ(rules->records.at(0).at(0).AsInt(), 3);
  auto stats = stores[0] ? stores[0]->Stats() : Result<GraphStats>(Status::Internal("no store"));
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->chunks, kStores);
}

// Verifies Merge answers kConflict only when the fence refused it: a constraint violation the
// real server reports in the transaction after the fence passed (as a COMMIT racing another
// merge may) comes back as kUnavailable, which the worker retries instead of dropping the
// result; a batch older than the stored generation is still kConflict.
TEST(Neo4jGraph, OnlyTheFenceAnswersConflict) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  std::atomic<bool> inject{false};
  Status injected;
  Neo4jGraphOptions options;
  options.before_commit = [&](bolt::Connection& c) -> Status {
    if (!inject) return Status::Ok();
    // The document this merge just wrote, created again: refused by its uniqueness constraint.
    injected = c.Run("CREATE (:Document {sha: $sha})", bolt::Map{{"sha", bolt::Value(Sha256Hex("doc0"))}},
                     bolt::AccessMode::kWrite)
                   .status();
    return injected;
  };
  auto g = OpenNeo4j(options);
  ASSERT_TRUE(g);
  inject = true;
  Status s = g->Merge({Overlapping(0, 2)});
  EXPECT_EQ(injected.code(), Code::kConflict) << injected.message();  // the server's own refusal
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  auto stats = g->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->chunks, 0);  // rolled back
  inject = false;
  ASSERT_TRUE(g->Merge({Overlapping(0, 2)}).ok());
  s = g->Merge({Overlapping(0, 1)});
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
}

// Verifies Merge stops retrying transient failures once its deadline has passed: with every
// attempt failing transiently and a 1 s deadline it gives up with kUnavailable after a few
// attempts and well before its 16 attempts (at least 4.6 s of backoff) would end, and
// writes nothing.
TEST(Neo4jGraph, MergeStopsRetryingAtItsDeadline) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  std::atomic<int> attempts{0};
  Neo4jGraphOptions options;
  options.merge_deadline = std::chrono::milliseconds(1000);
  options.before_commit = [&](bolt::Connection&) -> Status {
    ++attempts;
    return Status::Unavailable("injected transient failure");
  };
  auto g = OpenNeo4j(options);
  ASSERT_TRUE(g);
  Status s = g->Merge({Overlapping(0, 1)});
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_GE(attempts.load(), 2);
  // Fewer attempts than the policy allows: the deadline, not the count, ended the retries.
  EXPECT_LT(attempts.load(), 16);
  auto stats = g->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->chunks, 0);
}

// The file descriptors of this process open on a deleted file under `dir`.
int DeletedFilesOpenIn(const std::string& dir) {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    char target[4096];
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t len = ::readlink(link.c_str(), target, sizeof target - 1);
    if (len <= 0) continue;
    const std::string t(target, static_cast<size_t>(len));
    if (t.rfind(dir + "/", 0) == 0 && t.find(" (deleted)") != std::string::npos) ++n;
  }
  return n;
}

// Sets an environment variable for a scope, and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Records, while the export feeds it, how many deleted files under `dir` this process holds.
class SpoolWatchingSink : public GraphSink {
 public:
  explicit SpoolWatchingSink(std::string dir) : dir_(std::move(dir)) {}
  Status Document(const DocumentRec&) override {
    seen_ = DeletedFilesOpenIn(dir_);
    return Status::Ok();
  }
  Status Chunk(const ChunkRec&) override { return Status::Ok(); }
  Status Entity(const EntityRec&) override { return Status::Ok(); }
  Status Mention(const std::string&, const std::string&) override { return Status::Ok(); }
  Status Relation(const RelationRec&) override { return Status::Ok(); }
  int seen() const { return seen_; }

 private:
  std::string dir_;
  int seen_ = -1;
};

// Verifies the export spools to a file in $TMPDIR (not always /tmp, as std::tmpfile does),
// unlinked at once and closed at the end; and that a $TMPDIR where no file can be made fails
// the export with a message naming it.
TEST(Neo4jGraph, ExportSpoolsInTmpdir) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto g = OpenNeo4j();
  ASSERT_TRUE(g);
  ASSERT_TRUE(g->Merge({Overlapping(0, 1)}).ok());
  testing::TempDir tmp;
  {
    ScopedEnv env("TMPDIR", tmp.path());
    SpoolWatchingSink sink(tmp.path());
    Status s = g->ExportTo(sink);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(sink.seen(), 1);  // the spool, already unlinked
    EXPECT_EQ(DeletedFilesOpenIn(tmp.path()), 0);
    std::error_code ec;
    EXPECT_TRUE(std::filesystem::is_empty(tmp.path(), ec)) << ec.message();
  }
  {
    const std::string missing = tmp.File("missing");
    ScopedEnv env("TMPDIR", missing);
    auto snap = g->Export();
    ASSERT_FALSE(snap.ok());
    EXPECT_NE(snap.status().message().find(missing), std::string::npos) << snap.status().message();
  }
}

// Verifies a store opens while an index of its database is still populating (as on a large
// database): with io_timeout_ms 6 s, opening waits 1 s for the indexes and then opens with a
// warning instead of failing (db.awaitIndexes(300) outlived the read and failed every open),
// and a Merge through it works. The index is on 1,000,000 nodes of a label of the test's own,
// asserted still populating when the store has opened.
TEST(Neo4jGraph, OpensWhileAnIndexIsStillPopulating) {
  testing::ClearNeo4j(testing::SharedNeo4j());
  auto c = Direct();
  ASSERT_TRUE(c);
  auto run = [&](const std::string& cypher) {
    auto r = c->Run(cypher, {}, bolt::AccessMode::kWrite);
    EXPECT_TRUE(r.ok()) << cypher << ": " << r.status().message();
    return r.ok();
  };
  ASSERT_TRUE(run("DROP INDEX kg_test_slow IF EXISTS"));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(run("UNWIND range(1, 100000) AS i CREATE (:KgTestSlow {v: 'value number ' + toString(i) + ' " +
                    std::to_string(i) + "'})"));
  }
  struct Cleanup {
    std::function<void()> f;
    ~Cleanup() { f(); }
  } cleanup{[&] {
    (void)run("DROP INDEX kg_test_slow IF EXISTS");
    testing::ClearNeo4j(testing::SharedNeo4j());
  }};
  ASSERT_TRUE(run("CREATE INDEX kg_test_slow FOR (n:KgTestSlow) ON (n.v)"));
  Neo4jEndpoint e = testing::Neo4jAt(testing::SharedNeo4j());
  e.io_timeout_ms = 6000;
  auto g = OpenNeo4jGraphStore(e, Neo4jGraphOptions{});
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(One(*c, "SHOW INDEXES YIELD name, state WHERE name = 'kg_test_slow' RETURN state").AsString(), "POPULATING")
      << "the index came online within the wait: make it bigger";
  EXPECT_TRUE((*g)->Merge({Overlapping(0, 1)}).ok());
}

}  // namespace
}  // namespace kg
