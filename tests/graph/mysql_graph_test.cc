// The MySQL graph beyond the shared contract: concurrent merges (deadlocks retried), keys the
// database must not fold or truncate, and batch writes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "graph/graph_store.h"
#include "mysql/mysql.h"
#include "testing/servers.h"
#include "graph/overlapping_batches.h"
#include "testing/testing.h"
#include "text/text.h"

namespace kg {
namespace {

MysqlEndpoint Endpoint(const testing::ServerProcess& server) {
  return testing::MysqlAt(server, testing::UniqueName("graph"));
}

std::unique_ptr<GraphStore> OpenMysql(const MysqlEndpoint& e) {
  auto g = OpenMysqlGraphStore(e);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(g).value() : nullptr;
}

std::unique_ptr<GraphStore> OpenSqlite(const testing::TempDir& dir) {
  auto g = OpenSqliteGraphStore(dir.File("graph.db"));
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(g).value() : nullptr;
}

// The whole graph as text; equal text, equal graph (every field, every order).
std::string Json(GraphStore& g) {
  auto snap = g.Export();
  EXPECT_TRUE(snap.ok()) << snap.status().message();
  return snap.ok() ? ExportJson(*snap) : "<" + snap.status().message() + ">";
}

// testing::Overlapping with this test's pools: 23 people, 5 organisations.
GraphBatch Overlapping(int c, int64_t gen) { return testing::Overlapping(c, gen, 23, 5); }
using testing::Org;
using testing::Person;

// Verifies four threads merging overlapping batches at once (shared entities, relations and
// sentences; deadlocks and lock waits retried inside Merge) end with exactly the graph the
// sequential merge of the same batches gives in SQLite; with re-extractions at a newer
// generation replacing contributions, and stale writes refused under the same load.
TEST(MysqlGraph, ConcurrentOverlappingMergesEqualTheSequentialMerge) {
  const MysqlEndpoint e = Endpoint(testing::SharedMariaDb());
  auto mysql = OpenMysql(e);
  ASSERT_TRUE(mysql);
  constexpr int kThreads = 4, kChunksPerThread = 60, kPerMerge = 6;
  // Thread t owns chunks t, t + 4, t + 8, ...: its batches interleave in documents and keys
  // with every other thread's.
  std::atomic<int> failures{0}, refused{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int> mine;
      for (int i = 0; i < kChunksPerThread; ++i) mine.push_back(t + i * kThreads);
      auto merge = [&](std::vector<GraphBatch>& batches) {
        if (batches.empty()) return;
        Status s = mysql->Merge(batches);
        if (!s.ok()) {
          ++failures;
          errors[t] = s.message();
        }
        batches.clear();
      };
      auto run = [&](int64_t gen, bool every) {
        std::vector<GraphBatch> batches;
        for (int c : mine) {
          if (!every && c % 3 != 0) continue;  // generation 2 re-extracts a third of the chunks
          batches.push_back(Overlapping(c, gen));
          if (batches.size() == kPerMerge) merge(batches);
        }
        merge(batches);
      };
      run(1, true);
      run(2, false);
      // A worker that lost its lease writes generation 1 again: refused, changes nothing.
      for (int c : mine) {
        if (c % 3 != 0) continue;
        Status s = mysql->Merge({Overlapping(c, 1)});
        if (s.code() == Code::kConflict) ++refused;
        else ++failures;
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

  auto stats = mysql->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, chunks);
  EXPECT_GT(stats->relations, 50);
  EXPECT_EQ(Json(*mysql), Json(*sqlite));
}

// Verifies keys are compared exactly, never by a collation or an index prefix: a Chinese key,
// keys longer than 1000 bytes that differ only after their first 1000 bytes, supplementary-
// plane characters a general_ci collation would take as equal, and traditional against
// simplified Chinese, each its own entity, found by its key, its name and a search; the
// export is byte for byte the SQLite one (so long keys also sort in full).
TEST(MysqlGraph, ChineseAndLongKeysAreExact) {
  auto mysql = OpenMysql(Endpoint(testing::SharedMariaDb()));
  ASSERT_TRUE(mysql);
  const std::string long_a = std::string(1200, 'x') + " alpha";
  const std::string long_b = std::string(1200, 'x') + " beta";
  const std::vector<std::pair<std::string, std::string>> names = {
      {"华为技术有限公司", "Organization"}, {"華為", "Organization"}, {"华为", "Organization"},
      {"\U00020000", "Person"},            {"\U00020001", "Person"}, {long_a, "Person"},
      {long_b, "Person"}};
  GraphBatch b;
  b.doc = {"d中文", "标题", "来源.txt"};
  b.chunk = {"d中文:0", "d中文", 0, "华为技术有限公司总部设在深圳。", 1};
  for (const auto& [name, type] : names) b.entities.push_back({EntityKey(name, type), name, type, "", 0});
  ASSERT_GT(b.entities[5].key.size(), 1000u);
  b.relations.push_back({b.entities[5].key, b.entities[0].key, "WORKS_AT", {"d中文@0"}, 0});
  b.relations.push_back({b.entities[6].key, b.entities[0].key, "WORKS_AT", {"d中文@0"}, 0});
  ASSERT_TRUE(mysql->Merge({b}).ok());

  auto stats = mysql->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entities, static_cast<int64_t>(names.size()));
  EXPECT_EQ(stats->relations, 2);
  for (const EntityRec& e : b.entities) {
    auto got = mysql->GetEntity(e.key);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(got->entity.name, e.name);
    auto by_name = mysql->FindByName(NormalizeName(e.name));
    ASSERT_TRUE(by_name.ok());
    EXPECT_EQ(*by_name, std::vector<std::string>{e.key});
  }
  auto hw = mysql->GetEntity(b.entities[0].key);
  ASSERT_TRUE(hw.ok());
  ASSERT_EQ(hw->neighbours.size(), 2u);
  EXPECT_EQ(hw->neighbours[0].relation.evidence, std::vector<std::string>{"d中文:0"});
  EXPECT_EQ(hw->documents, std::vector<std::string>{"d中文"});
  auto found = mysql->SearchEntities("华为", 10);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->size(), 2u);  // 华为技术有限公司 and 华为, not 華為
  auto beta = mysql->SearchEntities("X BETA", 10);
  ASSERT_TRUE(beta.ok());
  ASSERT_EQ(beta->size(), 1u);
  EXPECT_EQ((*beta)[0].name, long_b);
  EXPECT_EQ(mysql->GetEntity(EntityKey(std::string(1200, 'x'), "Person")).status().code(), Code::kNotFound);

  testing::TempDir dir;
  auto sqlite = OpenSqlite(dir);
  ASSERT_TRUE(sqlite);
  ASSERT_TRUE(sqlite->Merge({b}).ok());
  EXPECT_EQ(Json(*mysql), Json(*sqlite));
}

// Two threads merge every chunk of `kChunks`, one at generation `older` and one at `newer`,
// starting each chunk's merges together. Returns how many older merges were refused; every
// other outcome but success is a test failure, and so is any chunk or entity not the newer
// generation's at the end.
int RaceGenerations(GraphStore& g, int64_t older, int64_t newer) {
  constexpr int kChunks = 150;
  auto batch = [](int c, int64_t gen) {
    GraphBatch b;
    b.doc = {"d", "Doc", "d.txt"};
    b.chunk = {"d:" + std::to_string(c), "d", c, "generation " + std::to_string(gen), gen};
    std::string name = "Gen" + std::to_string(gen) + " Person " + std::to_string(c);
    b.entities = {{EntityKey(name, "Person"), name, "Person", "", 0}};
    return b;
  };
  std::atomic<int> unexpected{0}, refused{0};
  std::barrier start(2);  // both merges of a chunk start together
  auto racer = [&](int64_t gen) {
    for (int c = 0; c < kChunks; ++c) {
      start.arrive_and_wait();
      Status s = g.Merge({batch(c, gen)});
      if (s.code() == Code::kConflict && gen == older) ++refused;
      else if (!s.ok()) ++unexpected;
    }
  };
  std::thread a(racer, older), b(racer, newer);
  a.join();
  b.join();
  EXPECT_EQ(unexpected.load(), 0);
  auto snap = g.Export();
  EXPECT_TRUE(snap.ok());
  if (!snap.ok()) return -1;
  const std::string text = "generation " + std::to_string(newer);
  const std::string prefix = "Gen" + std::to_string(newer) + " ";
  EXPECT_EQ(snap->chunks.size(), static_cast<size_t>(kChunks));
  for (const ChunkRec& c : snap->chunks) EXPECT_EQ(c.text, text) << c.id;
  EXPECT_EQ(snap->entities.size(), static_cast<size_t>(kChunks));
  for (const EntityRec& e : snap->entities) EXPECT_EQ(e.name.rfind(prefix, 0), 0u) << e.name;
  std::printf("generation %lld refused for %d of %d chunks (the rest were written first and replaced)\n",
              static_cast<long long>(older), refused.load(), kChunks);
  return refused.load();
}

// Verifies the fence holds between merges of the same chunk at once: two threads write every
// chunk, one at generation 4 and one at generation 5, starting each chunk's merges together;
// whichever commits first, each chunk ends with generation 5's contribution (the older one
// refused, or replaced).
TEST(MysqlGraph, RacingGenerationsOfOneChunkLeaveTheNewest) {
  auto mysql = OpenMysql(Endpoint(testing::SharedMariaDb()));
  ASSERT_TRUE(mysql);
  RaceGenerations(*mysql, 4, 5);
}

// Verifies the fence does not depend on the server's default isolation: on a server whose
// default is READ COMMITTED (no gap locks; what a DBA may set), first merges of new chunks at
// generations 1 and 2 race and generation 2 always ends up stored.
TEST(MysqlGraph, RacingGenerationsLeaveTheNewestOnAReadCommittedServer) {
  testing::TempDir dir;
  testing::ScopedServer own{testing::StartServer("mariadb", dir.File("mariadb"), 0,
                                                  {{"KG_TEST_MARIADB_ARGS", "--transaction-isolation=READ-COMMITTED"}})};
  const testing::ServerProcess& server = own.server;
  ASSERT_GT(server.port, 0);
  {
    const MysqlEndpoint e = Endpoint(server);
    auto probe = mysql::Connection::Open(e);
    ASSERT_TRUE(probe.ok()) << probe.status().message();
    auto global = (*probe)->QueryOne("SELECT @@GLOBAL.tx_isolation");
    ASSERT_TRUE(global.ok() && *global);
    EXPECT_EQ((*global)->Str(0), "READ-COMMITTED") << "the server under test is not READ COMMITTED";
    auto mysql = OpenMysql(e);
    ASSERT_TRUE(mysql);
    RaceGenerations(*mysql, 1, 2);
  }
}

// Verifies one Merge bigger than the server's max_allowed_packet (16 MiB) is written whole:
// its multi-row statements are split by bytes, and every row arrives intact.
TEST(MysqlGraph, MergeLargerThanAPacketIsSplitByBytes) {
  auto mysql = OpenMysql(Endpoint(testing::SharedMariaDb()));
  ASSERT_TRUE(mysql);
  std::vector<GraphBatch> batches;
  size_t bytes = 0;
  for (int c = 0; c < 70; ++c) {
    GraphBatch b;
    b.doc = {"big", "Big", "big.txt"};
    b.chunk = {"big:" + std::to_string(c), "big", c, std::string(300 * 1024, static_cast<char>('a' + c % 26)), 1};
    b.entities = {{"person:p" + std::to_string(c), "P" + std::to_string(c), "Person", "", 0}};
    bytes += b.chunk.text.size();
    batches.push_back(std::move(b));
  }
  ASSERT_GT(bytes, size_t{20} << 20);
  Status s = mysql->Merge(batches);
  ASSERT_TRUE(s.ok()) << s.message();
  auto snap = mysql->Export();
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  ASSERT_EQ(snap->chunks.size(), batches.size());
  for (const ChunkRec& c : snap->chunks) EXPECT_EQ(c.text, batches[c.idx].chunk.text) << c.id;
}

// Counts what a streamed export hands over.
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

// Verifies ExportTo streams rows instead of holding a section: exporting 1,500 chunks of
// 32 KiB (48 MiB of text) raises this process's peak resident memory by a few MiB at most.
TEST(MysqlGraph, ExportToHoldsNoSectionInMemory) {
  auto mysql = OpenMysql(Endpoint(testing::SharedMariaDb()));
  ASSERT_TRUE(mysql);
  constexpr int kChunks = 1500;
  constexpr size_t kText = 32 * 1024;
  std::vector<GraphBatch> batches;
  for (int c = 0; c < kChunks; ++c) {
    GraphBatch b;
    b.doc = {"d" + std::to_string(c / 100), "Doc", "d.txt"};
    b.chunk = {b.doc.id + ":" + std::to_string(c % 100), b.doc.id, c % 100, std::string(kText, 'a' + c % 26), 1};
    b.entities = {{"person:p" + std::to_string(c), "P" + std::to_string(c), "Person", "", 0}};
    batches.push_back(std::move(b));
    if (batches.size() == 100) {
      ASSERT_TRUE(mysql->Merge(batches).ok());
      batches.clear();
    }
  }
  batches.shrink_to_fit();
  const pid_t self = getpid();
  {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";  // the peak (VmHWM) starts again from the current RSS
  }
  const long before = testing::StatusKb(self, "VmRSS");
  CountingSink sink;
  Status s = mysql->ExportTo(sink);
  ASSERT_TRUE(s.ok()) << s.message();
  const long peak = testing::StatusKb(self, "VmHWM");
  EXPECT_EQ(sink.chunks, static_cast<size_t>(kChunks));
  EXPECT_EQ(sink.text_bytes, kChunks * kText);
  std::printf("export of %zu MiB of chunk text: peak RSS +%ld KiB\n", sink.text_bytes >> 20, peak - before);
  EXPECT_LT(peak - before, 8 * 1024) << "KiB over the RSS before the export";
}

// Prepared statements the server has executed (all sessions).
int64_t StatementsExecuted(const MysqlEndpoint& e) {
  auto c = mysql::Connection::Open(e);
  if (!c.ok()) return -1;
  auto row = (*c)->QueryOne("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE "
                            "VARIABLE_NAME='COM_STMT_EXECUTE'");
  return row.ok() && *row ? (**row).Int(0) : -1;
}

// Verifies a Merge writes with a handful of multi-row statements, not one per row: 32 batches
// of 24 entities and 12 relations each (some 1,200 rows) take at most 21 statements (the
// fence's two included), on a
// server of this test's own (nothing else executes statements on it meanwhile).
TEST(MysqlGraph, MergeWritesAFewStatementsNotOnePerRow) {
  testing::TempDir dir;
  testing::ServerProcess server = testing::StartServer("mariadb", dir.File("mariadb"));
  ASSERT_GT(server.port, 0);
  const MysqlEndpoint e = Endpoint(server);
  {
    auto mysql = OpenMysql(e);
    ASSERT_TRUE(mysql);
    std::vector<GraphBatch> batches;
    size_t rows = 0;
    for (int c = 0; c < 32; ++c) {
      GraphBatch b;
      b.doc = {"d", "Doc", "d.txt"};
      b.chunk = {"d:" + std::to_string(c), "d", c, "text", 1};
      for (int k = 0; k < 12; ++k) {
        EntityRec p = Person(c * 12 + k, true), o = Org(k);
        b.entities.push_back(p);
        b.entities.push_back(o);
        b.relations.push_back({p.key, o.key, "WORKS_AT", {"d@" + std::to_string(c)}, 0});
      }
      rows += 2 * b.entities.size() + 2 * b.relations.size();
      batches.push_back(std::move(b));
    }
    const int64_t before = StatementsExecuted(e);
    ASSERT_GE(before, 0);
    ASSERT_TRUE(mysql->Merge(batches).ok());
    const int64_t statements = StatementsExecuted(e) - before - 1;  // less the count's own query
    EXPECT_LE(statements, 21) << "for " << rows << " rows";
    std::printf("%lld statements for %zu rows\n", static_cast<long long>(statements), rows);
    EXPECT_GT(statements, 0);
    // Merging the same batches again (a replacement of every chunk) is no dearer.
    const int64_t again = StatementsExecuted(e);
    ASSERT_TRUE(mysql->Merge(batches).ok());
    EXPECT_LE(StatementsExecuted(e) - again - 1, 21);
    EXPECT_EQ(mysql->Stats()->relations, 32 * 12);
  }
  testing::StopServer(server);
}

}  // namespace
}  // namespace kg
