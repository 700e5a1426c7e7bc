// The SQLite task store brings a database written by an older kgflow up to date when it opens it.
#include <gtest/gtest.h>

#include "sqlite/db.h"
#include "store/sqlite_task_query.h"
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

// SQLite's plan for one ListFiltered page (the details of EXPLAIN QUERY PLAN, one per line).
std::string PlanOf(sqlite::Db& db, const TaskFilter& f) {
  const SqliteTaskListQuery q = BuildSqliteTaskListQuery(f);
  auto st = db.Prepare("EXPLAIN QUERY PLAN " + q.page_sql);
  if (!st.ok()) return "<prepare failed: " + st.status().message() + ">";
  int i = 1;
  for (const auto& a : q.args) (*st)->Bind(i++, a);
  (*st)->Bind(i, f.limit).Bind(i + 1, f.offset);
  std::string plan;
  while ((*st)->Step()) plan += (*st)->Text(3) + "\n";
  return plan;
}

// Verifies the task list's page query lets SQLite use an index: a status filter searches the
// status index (a `(?='' OR status=?)` test would scan the table), and the unfiltered list, newest
// first, walks the created_at index instead of sorting every row; the filtered page still answers.
TEST(SqliteTaskStore, TaskListPageUsesTheIndexes) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/tasks.db";
  auto opened = OpenSqliteTaskStore(path);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  for (int i = 0; i < 50; ++i) {
    TaskRecord t;
    t.id = "t" + std::to_string(i);
    t.title = "Doc";
    t.provider = i % 2 ? "a" : "b";
    t.chunks_total = 1;
    t.created_at_ms = 1000 + i;
    ASSERT_TRUE((*opened)->Create(t).ok());
  }
  auto db = sqlite::Db::Open(path);
  ASSERT_TRUE(db.ok());
  TaskFilter by_status;
  by_status.status = "queued";
  const std::string status_plan = PlanOf(**db, by_status);
  EXPECT_NE(status_plan.find("USING INDEX tasks_status"), std::string::npos) << status_plan;
  TaskFilter all;
  const std::string all_plan = PlanOf(**db, all);
  EXPECT_NE(all_plan.find("tasks_created"), std::string::npos) << all_plan;
  EXPECT_EQ(all_plan.find("TEMP B-TREE FOR ORDER BY"), std::string::npos) << all_plan;
  TaskFilter both = by_status;
  both.provider = "a";
  both.text = "doc";
  both.limit = 5;
  auto page = (*opened)->ListFiltered(both);
  ASSERT_TRUE(page.ok()) << page.status().message();
  EXPECT_EQ(page->total, 25);
  ASSERT_EQ(page->tasks.size(), 5u);
  EXPECT_EQ(page->tasks[0].id, "t49");
}

}  // namespace
}  // namespace kg
