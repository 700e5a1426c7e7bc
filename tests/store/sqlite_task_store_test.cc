// The SQLite task store brings a database written by an older kgflow up to date when it opens it.
#include <gtest/gtest.h>

#include "sqlite/db.h"
#include "store/task_store.h"
#include "testing/testing.h"

namespace kg {
namespace {

// The task store's schema before the token budget, the response cache and the ledger.
constexpr const char* kOldSchema = R"sql(
CREATE TABLE tasks(
  id TEXT PRIMARY KEY, title TEXT NOT NULL, provider TEXT NOT NULL, doc_id TEXT NOT NULL,
  source TEXT NOT NULL, status TEXT NOT NULL, chunks_total INTEGER NOT NULL, chunks_done INTEGER NOT NULL,
  chunks_failed INTEGER NOT NULL, error TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  epoch INTEGER NOT NULL DEFAULT 0);
CREATE INDEX tasks_status ON tasks(status, created_at);
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes(
  name TEXT PRIMARY KEY, role TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL, processes TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL DEFAULT 5000);
INSERT INTO tasks VALUES('old','Old task','openai','d-old','a.txt','running',4,1,0,'',1000,2000,3);
INSERT INTO nodes VALUES('old-node','all','h',7,1000,'[]',5000);
)sql";

// Verifies a database made before the token budget and the ledger opens: its tasks read with
// no budget (0) and their fields intact, and the new tables and column work at once (a new
// task's budget round-trips, usage adds up, the cache answers, a task can be stopped).
TEST(SqliteTaskStore, OpensAndUpgradesADatabaseFromBeforeTheLedger) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/tasks.db";
  {
    auto db = sqlite::Db::Open(path);
    ASSERT_TRUE(db.ok());
    Status old = (*db)->Exec(kOldSchema);
    ASSERT_TRUE(old.ok()) << old.message();
  }
  auto opened = OpenSqliteTaskStore(path);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  TaskStore& s = **opened;
  auto old = s.Get("old");
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_EQ(old->title, "Old task");
  EXPECT_EQ(old->status, "running");
  EXPECT_EQ(old->chunks_done, 1);
  EXPECT_EQ(old->epoch, 3);
  EXPECT_EQ(old->token_budget, 0);
  auto node = s.GetNode("old-node");
  ASSERT_TRUE(node.ok() && node->has_value());
  EXPECT_EQ((**node).info_json, "{}") << "a record from before the node info reads as nothing known";

  TaskRecord t;
  t.id = "new";
  t.title = "New";
  t.provider = "openai";
  t.doc_id = "d-new";
  t.chunks_total = 1;
  t.token_budget = 500;
  ASSERT_TRUE(s.Create(t).ok());
  EXPECT_EQ(s.Get("new")->token_budget, 500);
  UsageTotals u;
  u.prompt_tokens = 10;
  u.completion_tokens = 5;
  u.requests = 1;
  ASSERT_TRUE(s.AddUsage("old", "old:0", "openai", u).ok());
  ASSERT_TRUE(s.AddUsage("old", "old:0", "openai", u).ok());
  EXPECT_EQ(s.TaskUsage("old")->tokens(), 30);
  ASSERT_TRUE(s.PutCachedResponse("k", "v").ok());
  EXPECT_EQ(s.GetCachedResponse("k")->value_or(""), "v");
  ASSERT_TRUE(s.MarkStopped("old", "token budget reached").ok());
  EXPECT_EQ(s.Get("old")->status, "cancelled");

  // Opening the upgraded database again changes nothing.
  opened->reset();
  auto again = OpenSqliteTaskStore(path);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->Get("new")->token_budget, 500);
  EXPECT_EQ((*again)->TaskUsage("old")->tokens(), 30);
}

}  // namespace
}  // namespace kg
