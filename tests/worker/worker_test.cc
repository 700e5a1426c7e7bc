// Worker processes as a user runs them (real `kgflow start` nodes): lease renewal under a
// slow provider and task state written concurrently by several executors; and one worker
// process run as its supervisor runs it, its status pipe read by the test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "pipeline/document.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/spawner.h"
#include "worker/exit_codes.h"
#include "telemetry/worker_stats.h"
#include "testing/fake_llm.h"
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

// The lines a worker writes on its status pipe, read as they come (the read end is non-blocking).
class StatusPipe {
 public:
  explicit StatusPipe(int fd) : fd_(fd) {}
  // Reads what is there, waiting up to `wait` for something; false once the pipe is closed.
  bool Read(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return !eof_;
    char buf[4096];
    while (true) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n == 0) eof_ = true;
      if (n <= 0) break;
      partial_.append(buf, static_cast<size_t>(n));
    }
    for (size_t nl; (nl = partial_.find('\n')) != std::string::npos;) {
      lines_.push_back(partial_.substr(0, nl));
      partial_.erase(0, nl + 1);
    }
    return !eof_;
  }
  const std::vector<std::string>& lines() const { return lines_; }
  // The "stats" lines so far, parsed (a line that does not parse fails the test).
  std::vector<telemetry::WorkerStats> Stats() const {
    std::vector<telemetry::WorkerStats> out;
    for (const auto& l : lines_) {
      if (l.rfind("stats ", 0) != 0) continue;
      auto s = telemetry::WorkerStats::FromJson(std::string_view(l).substr(6));
      EXPECT_TRUE(s.ok()) << l << ": " << s.status().message();
      if (s.ok()) out.push_back(*s);
    }
    return out;
  }

 private:
  int fd_;
  bool eof_ = false;
  std::string partial_;
  std::vector<std::string> lines_;
};

// Sets environment variables (which the spawned worker inherits) for a test's duration.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& vars) {
    for (const auto& [k, v] : vars) {
      ::setenv(k.c_str(), v.c_str(), 1);
      names_.push_back(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& k : names_) ::unsetenv(k.c_str());
  }

 private:
  std::vector<std::string> names_;
};

// One `kgflow __worker` of `provider`, spawned as its supervisor spawns it (status pipe at fd 3,
// this process its parent); killed (SIGKILL) and reaped if the test ends before it exits.
class WorkerProcess {
 public:
  explicit WorkerProcess(const std::string& provider) {
    auto spawned = SpawnWithStatusPipe(
        testing::KgflowBinary(),
        {testing::KgflowBinary(), "__worker", "--provider", provider, "--owner",
         "test/" + std::to_string(::getpid()) + "/1", "--parent-pid", std::to_string(::getpid()),
         "--status-fd", "3"});
    EXPECT_TRUE(spawned.ok()) << spawned.status().message();
    if (!spawned.ok()) return;
    pid_ = spawned->pid;
    fd_ = std::move(spawned->status);
    pipe_ = std::make_unique<StatusPipe>(fd_.get());
  }
  ~WorkerProcess() {
    if (pid_ <= 0 || reaped_) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool ok() const { return pipe_ != nullptr; }
  pid_t pid() const { return pid_; }
  StatusPipe& pipe() { return *pipe_; }

  // Waits (up to `timeout`) for a "stats" line for which `done` holds; returns it.
  std::optional<telemetry::WorkerStats> WaitForStats(const std::function<bool(const telemetry::WorkerStats&)>& done,
                                                     std::chrono::milliseconds timeout) {
    std::optional<telemetry::WorkerStats> last;
    WaitFor([&] {
      pipe_->Read(100ms);
      auto stats = pipe_->Stats();
      if (stats.empty() || !done(stats.back())) return false;
      last = stats.back();
      return true;
    }, timeout);
    return last;
  }

  // SIGTERM, then WaitExit.
  int Stop() {
    ::kill(pid_, SIGTERM);
    return WaitExit();
  }

  // Reads the pipe until it closes and reaps the process: its exit status, or -1 when it did not
  // exit within the deadline.
  int WaitExit() {
    bool closed = WaitFor([&] { return !pipe_->Read(100ms); }, 15s);
    EXPECT_TRUE(closed) << "the status pipe never closed";
    int status = 0;
    if (!WaitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10s)) return -1;
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd fd_;
  std::unique_ptr<StatusPipe> pipe_;
};

// Sends this process's stderr to `path` while it lives, so that a child spawned meanwhile (which
// inherits fd 2) logs there for the test to read.
class StderrTo {
 public:
  explicit StderrTo(const std::string& path) : saved_(::dup(2)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << path;
    if (fd >= 0) {
      ::dup2(fd, 2);
      ::close(fd);
    }
  }
  ~StderrTo() {
    ::dup2(saved_, 2);
    ::close(saved_);
  }

 private:
  int saved_;
};

int64_t Counted(const std::map<std::string, int64_t>& m, std::string_view key) {
  auto it = m.find(std::string(key));
  return it == m.end() ? 0 : it->second;
}

// Creates task `id` of `provider` and enqueues its chunks (`chunk_size` code points each).
void Enqueue(Queue& q, TaskStore& store, const std::string& id, const std::string& provider,
             const std::string& text, int chunk_size = 1200) {
  TaskPlan plan = PlanTask(id, provider, "", id, "test", text, ChunkOptions{.size = chunk_size, .overlap = 0});
  TaskRecord t;  // as the API creates it
  t.id = id;
  t.provider = provider;
  t.title = id;
  t.doc_id = plan.doc_id;
  t.chunks_total = static_cast<int>(plan.items.size());
  ASSERT_TRUE(store.Create(t).ok());
  ASSERT_TRUE(q.Enqueue(plan.items).ok());
}

// Verifies the "stats" lines a worker writes on its status pipe, as the supervisor reads them:
// every line parses (WorkerStats::FromJson); the chunk counts are what was queued (17 good
// chunks done, one undecodable chunk dead-lettered at once) with a duration observed for each,
// and the tasks finished by their last chunk are counted once each (nine done, one failed); no
// line goes out while nothing changes; and after a stop signal a final line comes before the pipe
// closes on exit 0.
TEST(Worker, StatusPipeCarriesStats) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  ASSERT_EQ(::mkdir(data.c_str(), 0700), 0);
  ScopedEnv env({{"KG_DATA_DIR", data}});  // the worker reads its configuration from the environment
  {
    auto q = OpenSqliteQueue(data + "/queue.db", QueueOptions{});
    ASSERT_TRUE(q.ok()) << q.status().message();
    auto store = OpenSqliteTaskStore(data + "/tasks.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    // Tasks a0..a7: two chunks each, which concurrent executors settle (a task must be counted
    // once); task b: one chunk; task c: one chunk whose payload cannot be decoded.
    for (int i = 0; i < 8; ++i) {
      const std::string id = "a" + std::to_string(i);
      Enqueue(**q, **store, id, "builtin",
              "Mara Voss founded Helix Dynamics in 19" + std::to_string(10 + i) +
                  ". Jonas Berg joined Orbital Labs in 2001.",
              45);
      auto counts = (*q)->Counts(id);
      ASSERT_TRUE(counts.ok());
      ASSERT_EQ(counts->total, 2) << "task " << id << " is two chunks";
    }
    Enqueue(**q, **store, "b", "builtin", "Lena Ortiz met Tomas Reyes at Quantum Corp.");
    TaskRecord bad;
    bad.id = "c";
    bad.provider = "builtin";
    bad.chunks_total = 1;
    ASSERT_TRUE((*store)->Create(bad).ok());
    ASSERT_TRUE((*q)->Enqueue({ChunkItem{"c:0", "c", "builtin", 0, "not a payload"}}).ok());
  }

  WorkerProcess w("builtin");
  ASSERT_TRUE(w.ok());
  auto last = w.WaitForStats(
      [](const telemetry::WorkerStats& s) {
        return Counted(s.chunks, telemetry::kChunkDone) == 17 && Counted(s.chunks, telemetry::kChunkDeadLettered) == 1;
      },
      30s);
  ASSERT_TRUE(last.has_value()) << "lines: " << ::testing::PrintToString(w.pipe().lines());
  EXPECT_EQ(last->chunks.size(), 2u) << last->ToJson() << ": no outcome but done and dead_lettered";
  EXPECT_EQ(last->ChunksObserved(), 18) << last->ToJson();
  EXPECT_EQ(last->tasks_finished, (std::map<std::string, int64_t>{{"done", 9}, {"failed", 1}}))
      << last->ToJson();
  EXPECT_TRUE(last->llm_requests.empty()) << "the builtin extractor sends no request";
  EXPECT_TRUE(last->connections_open.empty()) << "SQLite has no pool";

  // Idle: nothing changes, so nothing is written (over three report intervals).
  const size_t before = w.pipe().lines().size();
  auto quiet_until = std::chrono::steady_clock::now() + 3500ms;
  while (std::chrono::steady_clock::now() < quiet_until) w.pipe().Read(100ms);
  std::vector<std::string> while_idle(w.pipe().lines().begin() + static_cast<long>(before),
                                      w.pipe().lines().end());
  EXPECT_TRUE(while_idle.empty()) << "written while idle: " << ::testing::PrintToString(while_idle);

  // A stop: the final snapshot comes before the pipe closes, and the worker exits cleanly.
  const size_t stats_before_stop = w.pipe().Stats().size();
  int status = w.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto stats = w.pipe().Stats();
  ASSERT_EQ(stats.size(), stats_before_stop + 1)
      << "one final line after the stop: " << ::testing::PrintToString(w.pipe().lines());
  EXPECT_EQ(w.pipe().lines().back().rfind("stats ", 0), 0u) << "the final snapshot is the last line";
  EXPECT_EQ(stats.back(), *last) << stats.back().ToJson() << " vs " << last->ToJson();
}

// Verifies the LLM side of a worker's stats against the fake OpenAI-compatible server, one chunk
// at a time: the HTTP answers by status (a 429 then a 200 for one chunk, a 200 for another), a
// chunk of the same text answered from the response cache (a cache hit, no request), and tokens
// and cost as the ledger counts them (the fake's usage, priced).
TEST(Worker, StatsCountLlmRequestsTokensAndCacheHits) {
  TempDir dir;
  testing::FakeLlm fake;
  ASSERT_NE(fake.port(), 0);
  const std::string data = dir.path() + "/data";
  ASSERT_EQ(::mkdir(data.c_str(), 0700), 0);
  testing::WriteFile(dir.File("kg.toml"), "[providers.fake]\nkind = \"openai\"\nbase_url = \"" + fake.base_url() +
                                              "\"\nmodel = \"fake-model\"\nprice_in_per_mtok = 1000\n"
                                              "price_out_per_mtok = 2000\n");
  ScopedEnv env({{"KG_DATA_DIR", data}, {"KG_CONFIG", dir.File("kg.toml")}, {"KG_CONCURRENCY_PER_PROCESS", "1"}});
  const std::string text = "Alice Smith met Bob Jones at Acme Labs.";
  {
    auto q = OpenSqliteQueue(data + "/queue.db", QueueOptions{});
    ASSERT_TRUE(q.ok()) << q.status().message();
    auto store = OpenSqliteTaskStore(data + "/tasks.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    Enqueue(**q, **store, "x", "fake", text);
    Enqueue(**q, **store, "y", "fake", "FAKE_429_MS_ONCE Carol Wu met Dan Lee at Orbital Labs.");
    Enqueue(**q, **store, "z", "fake", text);  // the same text as x: answered from the cache
  }
  WorkerProcess w("fake");
  ASSERT_TRUE(w.ok());
  auto last = w.WaitForStats(
      [](const telemetry::WorkerStats& s) { return Counted(s.chunks, telemetry::kChunkDone) == 3; }, 60s);
  ASSERT_TRUE(last.has_value()) << "lines: " << ::testing::PrintToString(w.pipe().lines());
  EXPECT_EQ(last->llm_requests, (std::map<std::string, int64_t>{{"200", 2}, {"429", 1}})) << last->ToJson();
  EXPECT_EQ(last->llm_cache_hits, 1) << last->ToJson();
  EXPECT_GT(last->llm_prompt_tokens, 0);
  EXPECT_GT(last->llm_completion_tokens, 0);
  EXPECT_NEAR(last->llm_cost, (last->llm_prompt_tokens * 1000.0 + last->llm_completion_tokens * 2000.0) / 1e6, 1e-9);
  EXPECT_EQ(last->tasks_finished, (std::map<std::string, int64_t>{{"done", 3}})) << last->ToJson();
  json fake_stats = fake.Stats();
  EXPECT_EQ(fake_stats["requests"].get<int>(), 3) << "the cached chunk sent nothing";
  int status = w.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Verifies a recycled worker (KG_MAX_TASKS_PER_PROCESS reached, exit 10, no signal) also writes
// its final snapshot before it exits: the chunks it finished are in the last line of its pipe,
// although it lived less than a report interval.
TEST(Worker, RecycledWorkerSendsItsFinalStats) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  ASSERT_EQ(::mkdir(data.c_str(), 0700), 0);
  ScopedEnv env({{"KG_DATA_DIR", data}, {"KG_MAX_TASKS_PER_PROCESS", "2"}});
  {
    auto q = OpenSqliteQueue(data + "/queue.db", QueueOptions{});
    ASSERT_TRUE(q.ok()) << q.status().message();
    auto store = OpenSqliteTaskStore(data + "/tasks.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    for (int i = 0; i < 3; ++i) {
      Enqueue(**q, **store, "r" + std::to_string(i), "builtin",
              "Lena Ortiz met Tomas Reyes at Quantum Corp in " + std::to_string(1990 + i) + ".");
    }
  }
  WorkerProcess w("builtin");
  ASSERT_TRUE(w.ok());
  int status = w.WaitExit();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), kWorkerExitRecycled);
  ASSERT_FALSE(w.pipe().lines().empty());
  EXPECT_EQ(w.pipe().lines().back().rfind("stats ", 0), 0u)
      << "the final snapshot is the last line: " << ::testing::PrintToString(w.pipe().lines());
  auto stats = w.pipe().Stats();
  ASSERT_FALSE(stats.empty());
  EXPECT_EQ(stats.back().chunks, (std::map<std::string, int64_t>{{"done", 2}})) << stats.back().ToJson();
}

// Verifies a chunk whose lease was taken away (its task cancelled) while its provider call ran, and
// which is still in flight when a second stop signal arrives, is counted once in the final snapshot
// (skipped, as its task was cancelled): the outcomes sum to the chunks leased. (ReleaseAll used to
// skip lost leases without counting them, and the exit that leaves a busy executor behind never
// counted them at all.)
TEST(Worker, LostLeaseAtColdStopIsCountedOnce) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  ASSERT_EQ(::mkdir(data.c_str(), 0700), 0);
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 60000\n");
  ScopedEnv env({{"KG_DATA_DIR", data},
                 {"KG_CONFIG", dir.File("kg.toml")},
                 {"KG_LEASE_SECONDS", "3"},
                 {"KG_CONCURRENCY_PER_PROCESS", "1"}});
  auto q = OpenSqliteQueue(data + "/queue.db", QueueOptions{});
  ASSERT_TRUE(q.ok()) << q.status().message();
  {
    auto store = OpenSqliteTaskStore(data + "/tasks.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    Enqueue(**q, **store, "s", "slow", "Lena Ortiz met Tomas Reyes at Quantum Corp.");
  }
  const std::string log = dir.File("worker.log");
  std::optional<WorkerProcess> w;
  {
    StderrTo redirect(log);
    w.emplace("slow");
  }
  ASSERT_TRUE(w->ok());
  // Leased, and its executor inside the 60 s provider call.
  ASSERT_TRUE(WaitFor([&] {
    w->pipe().Read(100ms);
    for (const auto& l : w->pipe().lines()) {
      if (l.rfind("busy 1", 0) == 0) return true;
    }
    return false;
  }, 15s)) << ::testing::PrintToString(w->pipe().lines());
  auto cancelled = (*q)->CancelTask("s");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().message();
  ASSERT_EQ(*cancelled, 1);
  // The renewer (every second with a 3 s lease) finds the lease gone.
  auto logged = [&] { return testing::ReadFile(log).find("was taken away") != std::string::npos; };
  ASSERT_TRUE(WaitFor(logged, 10s)) << testing::ReadFile(log);
  pid_t pid = w->pid();
  // Two signals (two kinds: two pending SIGTERMs would be delivered as one); the second gives
  // everything back at once and leaves the busy executor behind.
  ::kill(pid, SIGTERM);
  ::kill(pid, SIGINT);
  int status = w->WaitExit();
  ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << testing::ReadFile(log);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto stats = w->pipe().Stats();
  ASSERT_FALSE(stats.empty()) << ::testing::PrintToString(w->pipe().lines());
  EXPECT_EQ(w->pipe().lines().back().rfind("stats ", 0), 0u)
      << "the final snapshot is the last line";
  EXPECT_EQ(stats.back().chunks, (std::map<std::string, int64_t>{{"skipped", 1}}))
      << stats.back().ToJson() << ": one chunk leased, counted once";
}

// Verifies a "stats" line that a full status pipe dropped is sent again once the pipe has room,
// although nothing changed since: the supervisor is not left with a stale snapshot after the worker
// goes idle. The test fills the pipe itself (through the worker's end, /proc/PID/fd/3) before any
// chunk is queued, so every line about the three chunks is dropped, then drains it.
TEST(Worker, StatsDroppedByAFullPipeAreSentAgain) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  ASSERT_EQ(::mkdir(data.c_str(), 0700), 0);
  ScopedEnv env({{"KG_DATA_DIR", data}});
  auto q = OpenSqliteQueue(data + "/queue.db", QueueOptions{});
  ASSERT_TRUE(q.ok()) << q.status().message();
  auto store = OpenSqliteTaskStore(data + "/tasks.db");
  ASSERT_TRUE(store.ok()) << store.status().message();
  WorkerProcess w("builtin");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(WaitFor([&] {
    w.pipe().Read(100ms);
    return !w.pipe().lines().empty() && w.pipe().lines().front() == "ready";
  }, 15s)) << ::testing::PrintToString(w.pipe().lines());
  {
    const std::string end = "/proc/" + std::to_string(w.pid()) + "/fd/3";
    UniqueFd filler(::open(end.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    ASSERT_GE(filler.get(), 0) << std::strerror(errno);
    // Full: not even a two-byte line more fits, so none of the worker's does.
    while (::write(filler.get(), "f\n", 2) == 2) {
    }
    ASSERT_EQ(errno, EAGAIN);
  }
  for (int i = 0; i < 3; ++i) {
    Enqueue(**q, **store, "p" + std::to_string(i), "builtin",
            "Lena Ortiz met Tomas Reyes at Quantum Corp in " + std::to_string(1990 + i) + ".");
  }
  ASSERT_TRUE(WaitFor([&] {
    auto d = (*q)->Depths();
    return d.ok() && (*d)["builtin"].done == 3;
  }, 30s));
  // Not a wait for a condition: the pipe stays full across two report intervals, so that the
  // snapshot with the three chunks is written, and dropped, at least once.
  std::this_thread::sleep_for(2500ms);
  auto three = [](const telemetry::WorkerStats& s) {
    return Counted(s.chunks, telemetry::kChunkDone) == 3;
  };
  auto last = w.WaitForStats(three, 5s);
  ASSERT_TRUE(last.has_value()) << "the dropped snapshot never came again; stats lines: "
                                << w.pipe().Stats().size();
  int status = w.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace kg
