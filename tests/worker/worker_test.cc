// Worker processes as a user runs them (real `kgflow start` nodes): lease renewal under a
// slow provider and task state written concurrently by several executors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "queue/queue.h"
#include "store/task_store.h"
#include "testing/testing.h"

namespace kg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::Node;
using testing::TempDir;
using testing::WaitFor;

std::string Submit(Node& n, const std::string& text) {
  json body = {{"text", text}, {"title", "t"}};
  auto r = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
  if (!r || r->status != 202) return "";
  return json::parse(r->body)["id"];
}

// Verifies the renewal keeps a lease alive through a provider call three times longer than
// the lease while a second, idle worker would take the chunk the moment the lease lapsed:
// the chunk runs exactly once. (Without the renewer the idle worker re-leases it after 3 s.)
TEST(Worker, BusyWorkerKeepsItsLease) {
  TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 9000\n");
  Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}, {"KG_LEASE_SECONDS", "3"}, {"KG_WORKERS_PER_PROVIDER", "2"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.Workers().size() == 2; }, 10s));
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.");
  ASSERT_FALSE(id.empty());
  std::string status;
  ASSERT_TRUE(WaitFor([&] {
    status = n.Get("/api/v1/tasks/" + id).value("status", "");
    return status == "done" || status == "failed";
  }, 60s)) << n.proc().Stderr();
  EXPECT_EQ(status, "done");
  auto q = OpenSqliteQueue(dir.path() + "/data/queue.db", QueueOptions{});
  ASSERT_TRUE(q.ok());
  auto info = (*q)->Get(id + ":0");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->attempts, 1) << "the lease lapsed and the chunk ran again";
  EXPECT_EQ(n.proc().Stderr().find("lease of"), std::string::npos) << "no lost lease";
}

// Verifies no task stays listed `running` once all its chunks are done, with two-chunk
// documents finished by concurrent executors (the slower writer of a task's progress used
// to overwrite `done` with its older reading). Reads the stored rows, which `kgflow tasks`
// and `GET /api/v1/tasks?status=` list.
TEST(Worker, ConcurrentExecutorsLeaveNoTaskRunning) {
  TempDir dir;
  Node n(dir, {{"KG_CONCURRENCY_PER_PROCESS", "4"}, {"KG_WORKERS_PER_PROVIDER", "2"}, {"KG_CHUNK_SIZE", "60"},
               {"KG_CHUNK_OVERLAP", "0"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  const int kTasks = 300;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    std::string text = "Mara Voss founded Helix Dynamics in " + std::to_string(1900 + i) +
                       ".\n\nJonas Berg joined Orbital Labs in " + std::to_string(1900 + i) + ".";
    ids.push_back(Submit(n, text));
    ASSERT_FALSE(ids.back().empty()) << i;
  }
  auto q = OpenSqliteQueue(dir.path() + "/data/queue.db", QueueOptions{});
  ASSERT_TRUE(q.ok());
  auto c = (*q)->Counts(ids[0]);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->total, 2) << "each document is two chunks";
  ASSERT_TRUE(WaitFor([&] {
    auto d = (*q)->Depths();
    return d.ok() && (*d)["builtin"].done == 2 * kTasks;
  }, 60s)) << n.proc().Stderr();
  auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
  ASSERT_TRUE(store.ok());
  // The last writer of each task finishes right after its ack; give it a moment, then every
  // stored row must say done.
  bool settled = WaitFor([&] {
    auto done = (*store)->List("done", 1000);
    return done.ok() && static_cast<int>(done->size()) == kTasks;
  }, 10s);
  auto all = (*store)->List("", 1000);
  ASSERT_TRUE(all.ok()) << all.status().message();
  std::string stuck;
  int running = 0;
  for (const auto& t : *all) {
    if (t.status != "done") stuck += t.id + " " + t.status + " (" + std::to_string(t.chunks_done) + "/2) ";
    running += t.status == "running";
  }
  EXPECT_TRUE(settled) << "not done: " << stuck << "\n" << n.proc().Stderr();
  EXPECT_EQ(running, 0) << stuck;
}

// Verifies a worker whose graph write is refused because a newer lease already wrote the same
// graph chunk (here: many tasks of the same text, racing) finishes its queue chunk instead of
// leaving the lease to expire and the chunk to run again: every task done, every chunk one attempt.
TEST(Worker, SupersededGraphWriteIsDoneNotRedelivered) {
  TempDir dir;
  Node n(dir, {{"KG_CONCURRENCY_PER_PROCESS", "4"}, {"KG_WORKERS_PER_PROVIDER", "2"}, {"KG_CHUNK_SIZE", "60"},
               {"KG_CHUNK_OVERLAP", "0"}, {"KG_LEASE_SECONDS", "60"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  const std::string text = "Mara Voss founded Helix Dynamics in 1999.\n\nJonas Berg joined Orbital Labs in 2001.";
  const int kTasks = 120;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    ids.push_back(Submit(n, text));
    ASSERT_FALSE(ids.back().empty()) << i;
  }
  auto q = OpenSqliteQueue(dir.path() + "/data/queue.db", QueueOptions{});
  ASSERT_TRUE(q.ok());
  // Well inside the 60 s lease: a chunk left to expire cannot finish in time.
  bool all_done = WaitFor([&] {
    auto d = (*q)->Depths();
    return d.ok() && (*d)["builtin"].done == 2 * kTasks;
  }, 30s);
  EXPECT_TRUE(all_done) << n.proc().Stderr();
  int multi = 0;
  for (const auto& id : ids) {
    auto chunks = (*q)->ListChunks(id);
    ASSERT_TRUE(chunks.ok());
    for (const auto& c : *chunks) multi += c.attempts != 1;
  }
  EXPECT_EQ(multi, 0) << "chunks delivered more than once\n" << n.proc().Stderr();
  // The race this test is about did happen (120 tasks of one text make it all but certain).
  EXPECT_NE(n.proc().Stderr().find("was written by a newer lease"), std::string::npos)
      << "no superseded write this run: the test proved nothing";
  auto stats = n.Get("/api/v1/graph/stats");
  EXPECT_EQ(stats["chunks"], 2) << "one document, two graph chunks";
}

}  // namespace
}  // namespace kg
