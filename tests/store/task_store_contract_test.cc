// The TaskStore contract; every backend runs it unchanged.
#include <gtest/gtest.h>

#include <thread>

#include "common/util.h"
#include "mysql/mysql.h"
#include "store/task_store.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<TaskStore>(const std::string& dir)> open;
};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }


class TaskStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { s_ = GetParam().open(dir_.path()); }
  TaskRecord Task(const std::string& id, int total) {
    TaskRecord t;
    t.id = id;
    t.title = "Title " + id;
    t.provider = "builtin";
    t.doc_id = "d-" + id;
    t.chunks_total = total;
    return t;
  }
  testing::TempDir dir_;
  std::unique_ptr<TaskStore> s_;
};

// Verifies create/get round-trips and an unknown id is kNotFound.
TEST_P(TaskStoreContract, CreateGet) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  auto t = s_->Get("a");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->title, "Title a");
  EXPECT_EQ(t->status, "queued");
  EXPECT_EQ(t->chunks_total, 3);
  EXPECT_EQ(s_->Get("nope").status().code(), Code::kNotFound);
  EXPECT_FALSE(s_->Create(Task("a", 1)).ok()) << "ids are unique";
}

// Verifies the status derives from chunk counts, and cancelled sticks until reopened.
TEST_P(TaskStoreContract, ProgressDerivesStatus) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 1, 1, 1, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "running");
  EXPECT_EQ(s_->Get("a")->chunks_done, 1);
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 0, 0, 3, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "done");
  ASSERT_TRUE(s_->Create(Task("b", 2)).ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {2, 0, 0, 1, 1, 0}, "chunk b:1: boom").ok());
  EXPECT_EQ(s_->Get("b")->status, "failed");
  EXPECT_EQ(s_->Get("b")->error, "chunk b:1: boom");
  ASSERT_TRUE(s_->MarkCancelled("b").ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {2, 0, 0, 2, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "cancelled");
  ASSERT_TRUE(s_->Reopen("b").ok());
  EXPECT_EQ(s_->Get("b")->status, "queued");
  EXPECT_EQ(s_->MarkCancelled("nope").code(), Code::kNotFound);
}

// Verifies a task's state is monotonic: progress written from an older read of the queue
// (two executors finishing a task's last chunks, the slower writer last) never moves the
// stored counts or status backwards; only Reopen leaves done or failed.
TEST_P(TaskStoreContract, ProgressNeverGoesBackwards) {
  ASSERT_TRUE(s_->Create(Task("a", 2)).ok());
  // TaskCounts: total, ready, leased, done, dead, cancelled.
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 2, 0, 0}, "").ok());  // the writer that saw both done
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 1, 1, 0, 0}, "").ok());  // the one that read first, writes last
  auto a = s_->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->status, "done");
  EXPECT_EQ(a->chunks_done, 2);
  EXPECT_EQ(s_->List("running", 10)->size(), 0u);

  ASSERT_TRUE(s_->Create(Task("b", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 2, 1, 0, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "running");
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 3, 0, 0, 0, 0}, "").ok());  // its lease was given back
  EXPECT_EQ(s_->Get("b")->status, "running");
  // Stale reads interleaved with the final one, in either order, end failed.
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 0, 2, 1, 0}, "chunk b:2: boom").ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 1, 2, 0, 0}, "").ok());
  auto b = s_->Get("b");
  EXPECT_EQ(b->status, "failed");
  EXPECT_EQ(b->chunks_done, 2);
  EXPECT_EQ(b->chunks_failed, 1);
  EXPECT_EQ(b->error, "chunk b:2: boom");
  ASSERT_TRUE(s_->Reopen("b").ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 1, 2, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "running");
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 0, 3, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "done");
}

// Verifies progress that changes nothing writes nothing (updated_at stays), and that a task
// whose chunks are all finished with some cancelled ends cancelled even if its row was never
// marked (a cancel that failed between the queue and the store).
TEST_P(TaskStoreContract, UnchangedProgressIsNotWrittenAndCancelledChunksEndTheTask) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 2, 1, 0, 0, 0}, "").ok());
  int64_t stamp = s_->Get("a")->updated_at_ms;
  ASSERT_TRUE(testing::WaitFor([&] { return NowMs() > stamp + 2; }, std::chrono::seconds(1)));
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 2, 1, 0, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->updated_at_ms, stamp) << "an update with nothing new rewrote the row";
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 1, 1, 1, 0, 0}, "").ok());
  EXPECT_GT(s_->Get("a")->updated_at_ms, stamp);
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 0, 0, 1, 0, 2}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "cancelled");
}

// Verifies progress read before a retry cannot land after it: Reopen bumps the epoch, and an
// update carrying the old epoch changes nothing (it would mark the retried task failed again).
TEST_P(TaskStoreContract, ProgressFromBeforeARetryIsIgnored) {
  ASSERT_TRUE(s_->Create(Task("a", 2)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 1, 1, 0}, "chunk a:1: boom").ok());
  auto failed = s_->Get("a");
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->status, "failed");
  int64_t before = failed->epoch;
  ASSERT_TRUE(s_->Reopen("a").ok());
  EXPECT_GT(s_->Get("a")->epoch, before);
  // A writer that read the counts before the retry writes now, with the epoch it saw.
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 1, 1, 0}, "chunk a:1: boom", before).ok());
  EXPECT_EQ(s_->Get("a")->status, "queued") << "a stale write undid the retry";
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 2, 0, 0}, "", s_->Get("a")->epoch).ok());
  EXPECT_EQ(s_->Get("a")->status, "done");
}

// Verifies listing filters by status and honours the limit.
TEST_P(TaskStoreContract, ListFilters) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s_->Create(Task("t" + std::to_string(i), 1)).ok());
  ASSERT_TRUE(s_->UpdateProgress("t1", {1, 0, 0, 1, 0, 0}, "").ok());
  auto all = s_->List("", 10);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
  EXPECT_EQ(s_->List("", 2)->size(), 2u);
  auto done = s_->List("done", 10);
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].id, "t1");
}

// Verifies settings are last-writer-wins and deletable, and nodes list by heartbeat age.
TEST_P(TaskStoreContract, SettingsAndNodes) {
  EXPECT_FALSE(s_->GetSetting("k")->has_value());
  ASSERT_TRUE(s_->PutSetting("k", "1").ok());
  ASSERT_TRUE(s_->PutSetting("k", "2").ok());
  EXPECT_EQ(**s_->GetSetting("k"), "2");
  ASSERT_TRUE(s_->DeleteSetting("k").ok());
  EXPECT_FALSE(s_->GetSetting("k")->has_value());
  EXPECT_TRUE(s_->DeleteSetting("k").ok()) << "deleting what is not there is no error";
  int64_t now = NowMs();
  ASSERT_TRUE(*s_->PutNodeIf({"n1", "all", "h", 1, now, "[]", 1000}, std::nullopt));
  ASSERT_TRUE(*s_->PutNodeIf({"n2", "worker", "h", 2, now - 60000, "[]"}, std::nullopt));
  auto nodes = s_->ListNodes(now - 30000);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].name, "n1");
  EXPECT_EQ((*nodes)[0].heartbeat_ms, 1000);
  ASSERT_TRUE(s_->RemoveNode("n1", "h", 1).ok());
  EXPECT_TRUE(s_->ListNodes(now - 30000)->empty());
  EXPECT_FALSE(s_->GetNode("n1")->has_value());
}

// Verifies a node record is a compare-and-set: a name is inserted only when absent, replaced only while the
// stored record is still the expected one (host, pid and, when given, heartbeat), and removed only by its owner.
TEST_P(TaskStoreContract, NodeRecordsAreCompareAndSet) {
  int64_t now = NowMs();
  NodeRecord a{"dup", "web", "h1", 10, now, "[]", 5000};
  NodeRecord b{"dup", "web", "h1", 20, now + 1, "[]", 5000};
  ASSERT_TRUE(*s_->PutNodeIf(a, std::nullopt));
  EXPECT_FALSE(*s_->PutNodeIf(b, std::nullopt)) << "a second insert of the name loses";
  EXPECT_EQ((*s_->GetNode("dup"))->pid, 10);
  NodeRecord other = b;
  other.heartbeat_at_ms = 0;
  EXPECT_FALSE(*s_->PutNodeIf(b, other)) << "b is not the holder";
  NodeRecord old = a;
  old.heartbeat_at_ms = now - 1;
  EXPECT_FALSE(*s_->PutNodeIf(b, old)) << "the holder beat since it was read";
  ASSERT_TRUE(*s_->PutNodeIf(b, a)) << "a takeover of the record as read";
  EXPECT_EQ((*s_->GetNode("dup"))->pid, 20);
  NodeRecord beat = b;
  beat.heartbeat_at_ms = now + 2;
  beat.processes_json = R"([{"pid":7}])";
  NodeRecord ours{"", "", "h1", 20, 0, "", 0};
  ASSERT_TRUE(*s_->PutNodeIf(beat, ours)) << "a beat of the holder";
  EXPECT_EQ((*s_->GetNode("dup"))->processes_json, R"([{"pid":7}])");
  ASSERT_TRUE(s_->RemoveNode("dup", "h1", 10).ok());
  EXPECT_TRUE(s_->GetNode("dup")->has_value()) << "a's stop does not remove b's record";
  ASSERT_TRUE(s_->RemoveNode("dup", "h1", 20).ok());
  EXPECT_FALSE(s_->GetNode("dup")->has_value());
}

INSTANTIATE_TEST_SUITE_P(Backends, TaskStoreContract,
                         ::testing::Values(Backend{"sqlite",
                                                   [](const std::string& dir) {
                                                     auto s = OpenSqliteTaskStore(dir + "/tasks.db");
                                                     EXPECT_TRUE(s.ok()) << s.status().message();
                                                     return std::move(s).value();
                                                   }},
                                           Backend{"mysql",
                                                   [](const std::string&) {
                                                     auto s = OpenMysqlTaskStore(
                                                         testing::MysqlAt(testing::SharedMariaDb(), testing::UniqueName("ts")));
                                                     EXPECT_TRUE(s.ok()) << s.status().message();
                                                     return s.ok() ? std::move(s).value() : nullptr;
                                                   }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace kg
