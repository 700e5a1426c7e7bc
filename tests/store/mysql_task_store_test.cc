// What the MySQL task store must do beyond the contract suite: several processes' stores on
// one database at once (migrations, node name claims) and a server that goes away.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/util.h"
#include "mysql/mysql.h"
#include "store/task_store.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

using namespace std::chrono_literals;

MysqlEndpoint EndpointOf(int port, const std::string& db) {
  testing::ServerProcess server;
  server.port = port;
  MysqlEndpoint e = testing::MysqlAt(server, db);
  e.connect_timeout_ms = 1000;
  e.io_timeout_s = 5;
  return e;
}

// Verifies stores opened at once on a new database (nodes starting together) all open, and
// each schema migration ran once.
TEST(MysqlTaskStore, ConcurrentOpensMigrateOnce) {
  MysqlEndpoint e = EndpointOf(testing::SharedMariaDb().port, testing::UniqueName("mts"));
  std::vector<Status> results(4);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back([&, i] { results[i] = OpenMysqlTaskStore(e).status(); });
  for (auto& t : ts) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.message();
  auto c = mysql::Connection::Open(e);
  ASSERT_TRUE(c.ok());
  auto rows = (*c)->Query("SELECT version, dirty FROM kg_schema_migrations WHERE component=? ORDER BY version",
                          {"tasks"});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 4u);
  for (size_t i = 0; i < rows->size(); ++i) {
    EXPECT_EQ((*rows)[i].Int(0), static_cast<int64_t>(i + 1));
    EXPECT_EQ((*rows)[i].Int(1), 0);
  }
}

// Verifies a database of an older kgflow (only migration 1 of "tasks" applied, a task in it)
// opens: migrations 2 to 4 run, the old task reads with no budget (0) and its fields intact, an old
// node record with no info ("{}"),
// and the ledger, the cache and the budget work at once.
TEST(MysqlTaskStore, UpgradesADatabaseFromBeforeTheLedger) {
  MysqlEndpoint e = EndpointOf(testing::SharedMariaDb().port, testing::UniqueName("mts"));
  {
    auto pool = mysql::Pool::Open(e);
    ASSERT_TRUE(pool.ok()) << pool.status().message();
    // Migration 1 as the older kgflow shipped it.
    Status m = mysql::Migrate(
        **pool, "tasks",
        {{1,
          {"CREATE TABLE IF NOT EXISTS tasks("
           "id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
           "title MEDIUMTEXT NOT NULL, provider VARCHAR(255) NOT NULL, doc_id VARCHAR(255) NOT NULL, "
           "source MEDIUMTEXT NOT NULL, status VARCHAR(16) NOT NULL, "
           "chunks_total INT NOT NULL, chunks_done INT NOT NULL, chunks_failed INT NOT NULL, "
           "error MEDIUMTEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, "
           "epoch BIGINT NOT NULL DEFAULT 0, "
           "KEY tasks_status(status, created_at), KEY tasks_created(created_at)) "
           "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
           "CREATE TABLE IF NOT EXISTS settings("
           "name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
           "value MEDIUMTEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
           "CREATE TABLE IF NOT EXISTS nodes("
           "name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
           "role VARCHAR(32) NOT NULL, host VARCHAR(255) NOT NULL, pid BIGINT NOT NULL, "
           "heartbeat_at BIGINT NOT NULL, processes MEDIUMTEXT NOT NULL, heartbeat_ms BIGINT NOT NULL DEFAULT 5000, "
           "writes BIGINT NOT NULL DEFAULT 0, KEY nodes_heartbeat(heartbeat_at)) "
           "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"},
          true}});
    ASSERT_TRUE(m.ok()) << m.message();
    auto c = (*pool)->Borrow();
    ASSERT_TRUE(c.ok());
    auto ins = (*c)->Exec("INSERT INTO tasks VALUES('old','Old task','openai','d-old','a.txt','running',4,1,0,'',"
                          "1000,2000,3)");
    ASSERT_TRUE(ins.ok()) << ins.status().message();
    ins = (*c)->Exec("INSERT INTO nodes(name,role,host,pid,heartbeat_at,processes) "
                     "VALUES('old-node','all','h',7,1000,'[]')");
    ASSERT_TRUE(ins.ok()) << ins.status().message();
  }
  auto opened = OpenMysqlTaskStore(e);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  TaskStore& s = **opened;
  auto old = s.Get("old");
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_EQ(old->title, "Old task");
  EXPECT_EQ(old->chunks_done, 1);
  EXPECT_EQ(old->epoch, 3);
  EXPECT_EQ(old->token_budget, 0);
  auto node = s.GetNode("old-node");
  ASSERT_TRUE(node.ok() && node->has_value()) << node.status().message();
  EXPECT_EQ((**node).info_json, "{}") << "a record from before migration 4 reads as nothing known";
  TaskRecord t;
  t.id = "new";
  t.chunks_total = 1;
  t.token_budget = 500;
  ASSERT_TRUE(s.Create(t).ok());
  EXPECT_EQ(s.Get("new")->token_budget, 500);
  UsageTotals u;
  u.prompt_tokens = 10;
  u.completion_tokens = 5;
  ASSERT_TRUE(s.AddUsage("old", "old:0", "openai", u).ok());
  ASSERT_TRUE(s.AddUsage("old", "old:0", "openai", u).ok());
  EXPECT_EQ(s.TaskUsage("old")->tokens(), 30);
  ASSERT_TRUE(s.PutCachedResponse("k", "v").ok());
  EXPECT_EQ(s.GetCachedResponse("k")->value_or(""), "v");
  auto c = mysql::Connection::Open(e);
  ASSERT_TRUE(c.ok());
  auto rows = (*c)->Query("SELECT version FROM kg_schema_migrations WHERE component=? AND dirty=0", {"tasks"});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 4u);
}

// Verifies Create is idempotent for the same task (what InTransaction's replay does after a
// COMMIT whose answer was lost: the second INSERT meets the first's row): the same record
// again succeeds and changes nothing, even after the task's progress moved on; a different
// task under the id is kConflict and the stored one is untouched.
TEST(MysqlTaskStore, CreateOfTheSameTaskAgainSucceedsAndADifferentOneConflicts) {
  MysqlEndpoint e = EndpointOf(testing::SharedMariaDb().port, testing::UniqueName("mts"));
  auto opened = OpenMysqlTaskStore(e);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  TaskStore& store = **opened;
  TaskRecord t;
  t.id = "t-once";
  t.title = "Title";
  t.provider = "builtin";
  t.doc_id = "doc-1";
  t.source = "a.txt";
  t.chunks_total = 3;
  ASSERT_TRUE(store.Create(t).ok());
  Status again = store.Create(t);
  EXPECT_TRUE(again.ok()) << again.message();
  ASSERT_TRUE(store.UpdateProgress(t.id, TaskCounts{3, 1, 1, 1, 0, 0}, "").ok());
  auto before = store.Get(t.id);
  ASSERT_TRUE(before.ok());
  again = store.Create(t);
  EXPECT_TRUE(again.ok()) << again.message();
  auto after = store.Get(t.id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, before->status);
  EXPECT_EQ(after->chunks_done, 1);
  EXPECT_EQ(after->updated_at_ms, before->updated_at_ms) << "a repeated Create wrote the row";

  TaskRecord other = t;
  other.doc_id = "doc-2";
  Status taken = store.Create(other);
  EXPECT_EQ(taken.code(), Code::kConflict) << taken.message();
  EXPECT_NE(taken.message().find("taken by a different task"), std::string::npos) << taken.message();
  other = t;
  other.chunks_total = 4;
  EXPECT_EQ(store.Create(other).code(), Code::kConflict);
  other = t;
  other.created_at_ms = before->created_at_ms + 1;
  EXPECT_EQ(store.Create(other).code(), Code::kConflict) << "a given created_at is part of the task";
  auto still = store.Get(t.id);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->doc_id, "doc-1");
  EXPECT_EQ(still->chunks_total, 3);
}

// Verifies two nodes claiming one name at the same moment cannot both win: 8 stores (8
// pools, as 8 processes would have) insert the same name at once, round after round, and
// exactly one claim per name succeeds, the one whose record is stored.
TEST(MysqlTaskStore, OneOfManySimultaneousNameClaimsWins) {
  MysqlEndpoint e = EndpointOf(testing::SharedMariaDb().port, testing::UniqueName("mts"));
  constexpr int kNodes = 8, kRounds = 25;
  std::vector<std::unique_ptr<TaskStore>> stores;
  for (int i = 0; i < kNodes; ++i) {
    auto s = OpenMysqlTaskStore(e);
    ASSERT_TRUE(s.ok()) << s.status().message();
    stores.push_back(std::move(s).value());
  }
  std::atomic<int> round{-1}, arrived{0};
  std::vector<std::atomic<int>> wins(kRounds);
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kNodes; ++i) {
    ts.emplace_back([&, i] {
      for (int r = 0; r < kRounds; ++r) {
        // All threads start a round together.
        ++arrived;
        while (round.load() < r) std::this_thread::yield();
        NodeRecord n{"name-" + std::to_string(r), "worker", "host-" + std::to_string(i), 1000 + i, NowMs(), "[]",
                     5000};
        auto got = stores[i]->PutNodeIf(n, std::nullopt);
        if (!got.ok()) ++errors;
        else if (*got) ++wins[r];
      }
    });
  }
  for (int r = 0; r < kRounds; ++r) {
    ASSERT_TRUE(testing::WaitFor([&] { return arrived.load() >= (r + 1) * kNodes; }, 30s));
    round = r;
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int r = 0; r < kRounds; ++r) {
    EXPECT_EQ(wins[r].load(), 1) << "round " << r;
    auto rec = stores[0]->GetNode("name-" + std::to_string(r));
    ASSERT_TRUE(rec.ok() && rec->has_value());
  }
}

// Verifies a holder's write that changes no value (the same beat twice within a millisecond)
// still counts as written: MySQL reports changed rows, not matched ones.
TEST(MysqlTaskStore, AnIdenticalWriteOfTheHolderSucceeds) {
  auto s = OpenMysqlTaskStore(EndpointOf(testing::SharedMariaDb().port, testing::UniqueName("mts")));
  ASSERT_TRUE(s.ok()) << s.status().message();
  NodeRecord n{"same", "all", "h", 7, NowMs(), "[]", 5000};
  ASSERT_TRUE(*(*s)->PutNodeIf(n, std::nullopt));
  EXPECT_TRUE(*(*s)->PutNodeIf(n, n));
  EXPECT_TRUE(*(*s)->PutNodeIf(n, n)) << "the same values again";
  EXPECT_TRUE((*s)->MarkCancelled("nope").code() == Code::kNotFound);
  TaskRecord t;
  t.id = "c";
  ASSERT_TRUE((*s)->Create(t).ok());
  ASSERT_TRUE((*s)->MarkCancelled("c").ok());
  EXPECT_TRUE((*s)->MarkCancelled("c").ok()) << "cancelling twice (maybe within a millisecond) finds the task";
}

// Verifies each count only grows even when an update carries news in another count: a
// stale read with more done chunks but fewer failed ones keeps the failed count.
TEST(MysqlTaskStore, EachCountOnlyGrows) {
  auto s = OpenMysqlTaskStore(EndpointOf(testing::SharedMariaDb().port, testing::UniqueName("mts")));
  ASSERT_TRUE(s.ok()) << s.status().message();
  TaskRecord t;
  t.id = "g";
  t.chunks_total = 6;
  ASSERT_TRUE((*s)->Create(t).ok());
  // TaskCounts: total, ready, leased, done, dead, cancelled.
  ASSERT_TRUE((*s)->UpdateProgress("g", {6, 2, 0, 2, 1, 0}, "").ok());
  ASSERT_TRUE((*s)->UpdateProgress("g", {6, 2, 0, 1, 2, 0}, "").ok());  // fewer done, more failed
  auto g = (*s)->Get("g");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->chunks_done, 2);
  EXPECT_EQ(g->chunks_failed, 2);
  ASSERT_TRUE((*s)->UpdateProgress("g", {6, 1, 0, 3, 1, 0}, "").ok());  // more done, fewer failed
  g = (*s)->Get("g");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->chunks_done, 3);
  EXPECT_EQ(g->chunks_failed, 2);
  EXPECT_EQ(g->status, "running");
}

// Verifies the store reports a stopped server as kUnavailable within a deadline (not a hang),
// and works again, with its data, once the server is back on the same port.
TEST(MysqlTaskStore, SurvivesAServerRestart) {
  testing::TempDir dir;
  testing::ServerProcess server = testing::StartServer("mariadb", dir.path() + "/m");
  ASSERT_GT(server.port, 0);
  auto opened = OpenMysqlTaskStore(EndpointOf(server.port, "restart"));
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  TaskStore& s = **opened;
  TaskRecord t;
  t.id = "kept";
  t.title = "知识 😀";
  t.chunks_total = 2;
  ASSERT_TRUE(s.Create(t).ok());

  testing::StopServer(server);
  auto t0 = MonoMs();
  auto down = s.Get("kept");
  EXPECT_EQ(down.status().code(), Code::kUnavailable) << down.status().message();
  EXPECT_LT(MonoMs() - t0, 10000);
  EXPECT_EQ(s.PutSetting("k", "v").code(), Code::kUnavailable);

  testing::ServerProcess again = testing::StartServer("mariadb", dir.path() + "/m", server.port);
  ASSERT_EQ(again.port, server.port);
  EXPECT_TRUE(testing::WaitFor([&] { return s.Get("kept").ok(); }, 20s));
  auto back = s.Get("kept");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->title, "知识 😀");
  EXPECT_TRUE(s.UpdateProgress("kept", {2, 0, 0, 2, 0, 0}, "").ok());
  EXPECT_EQ(s.Get("kept")->status, "done");
  testing::StopServer(again);
}

// Verifies a bad endpoint fails to open with the right code: a bad database name is
// kInvalidArgument, a port nothing listens on kUnavailable (quickly).
TEST(MysqlTaskStore, BadEndpointsFailToOpen) {
  EXPECT_EQ(OpenMysqlTaskStore(EndpointOf(testing::SharedMariaDb().port, "no-dashes")).status().code(),
            Code::kInvalidArgument);
  auto t0 = MonoMs();
  auto none = OpenMysqlTaskStore(EndpointOf(testing::FreePort(), "x"));
  EXPECT_EQ(none.status().code(), Code::kUnavailable) << none.status().message();
  EXPECT_LT(MonoMs() - t0, 5000);
}

}  // namespace
}  // namespace kg
