// Process protection, tested on real processes with real signals: caps, one guard,
// reaping and replacement, crash loops, inherited descriptors, orphans, graceful stop,
// recycling, roles and the node lock. No sleeps where a condition can be awaited.
#include "supervisor/supervisor.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/util.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/node_registry.h"
#include "testing/testing.h"

namespace kg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::Node;
using testing::TempDir;
using testing::WaitFor;

std::string Toml(const TempDir& dir, const std::string& body) {
  testing::WriteFile(dir.File("kg.toml"), body);
  return dir.File("kg.toml");
}

std::string Submit(Node& n, const std::string& text, const std::string& provider = "") {
  json body = {{"text", text}, {"title", "t"}};
  if (!provider.empty()) body["provider"] = provider;
  auto r = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
  if (!r || r->status != 202) return "";
  return json::parse(r->body)["id"];
}

std::unique_ptr<Queue> QueueOf(const TempDir& dir) {
  auto q = OpenSqliteQueue(dir.path() + "/data/queue.db", QueueOptions{});
  EXPECT_TRUE(q.ok()) << q.status().message();
  return std::move(q).value();
}

int LeasedChunks(const TempDir& dir) {
  auto d = QueueOf(dir)->Depths();
  int n = 0;
  for (const auto& [_, v] : *d) n += static_cast<int>(v.leased);
  return n;
}

std::string Sentences(int n, const std::string& extra = "") {
  std::string t;
  for (int i = 0; i < n; ++i) t += "Mara Voss founded Helix Dynamics number " + std::to_string(i) + ". ";
  return t + extra;
}

size_t Count(const std::string& text, const std::string& what, size_t from = 0) {
  size_t n = 0;
  for (size_t p = from; (p = text.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

// Waits until the guard has sampled its workers `n` more times after offset `from` of the log
// (the debug marker of each sampling tick; needs KG_LOG_LEVEL=debug).
bool WaitForSamples(Node& node, size_t from, size_t n, std::chrono::milliseconds timeout) {
  return WaitFor([&] { return Count(node.proc().Stderr(), "supervisor: sampled", from) >= n; }, timeout);
}

// Milliseconds since midnight of each log line containing `what` ("2026-01-01T12:34:56.789 ...").
std::vector<int64_t> LineTimesMs(const std::string& log, const std::string& what) {
  std::vector<int64_t> out;
  std::istringstream in(log);
  std::string line;
  static const std::regex ts(R"(^\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d)\.(\d{3}))");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.find(what) == std::string::npos || !std::regex_search(line, m, ts)) continue;
    out.push_back(((std::stoll(m[1]) * 60 + std::stoll(m[2])) * 60 + std::stoll(m[3])) * 1000 + std::stoll(m[4]));
  }
  return out;
}

// The targets of a process's open descriptors, by fd number; an eventfd is told apart by its id.
std::map<int, std::string> FdTargets(pid_t pid) {
  std::map<int, std::string> out;
  std::string dir = "/proc/" + std::to_string(pid);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/fd", ec)) {
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (ec) continue;
    int fd = std::stoi(e.path().filename().string());
    if (target.rfind("anon_inode:", 0) == 0) {
      std::istringstream info(testing::ReadFile(dir + "/fdinfo/" + std::to_string(fd)));
      std::string line;
      while (std::getline(info, line)) {
        if (line.rfind("eventfd-id:", 0) == 0 || line.rfind("ino:", 0) == 0) target += " " + line;
      }
    }
    out[fd] = target;
  }
  return out;
}

// A supervisor inside the test process (the embedding case), with its data in `dir`.
struct InProcess {
  explicit InProcess(const TempDir& dir, std::map<std::string, std::string> env = {}) {
    env.emplace("KG_DATA_DIR", dir.path() + "/data");
    // The workers it spawns read their configuration from this process's environment.
    setenv("KG_DATA_DIR", env.at("KG_DATA_DIR").c_str(), 1);
    auto c = LoadConfig([&](const std::string& k) -> std::optional<std::string> {
      auto it = env.find(k);
      if (it == env.end()) return std::nullopt;
      return it->second;
    });
    EXPECT_TRUE(c.ok()) << c.status().message();
    cfg = std::move(c).value();
    auto q = OpenQueue(cfg);
    auto st = OpenTaskStore(cfg);
    EXPECT_TRUE(q.ok() && st.ok());
    queue = std::move(q).value();
    store = std::move(st).value();
    auto s = Supervisor::Create(cfg, testing::KgflowBinary());
    EXPECT_TRUE(s.ok()) << s.status().message();
    sup = std::move(s).value();
  }
  // Worker pids of this process (children running `kgflow __worker`).
  static std::set<pid_t> Workers() {
    std::set<pid_t> s;
    for (pid_t c : testing::ChildrenOf(getpid())) {
      if (!testing::WorkerProvider(c).empty()) s.insert(c);
    }
    return s;
  }
  Config cfg;
  std::unique_ptr<Queue> queue;
  std::unique_ptr<TaskStore> store;
  std::unique_ptr<Supervisor> sup;
};

// Verifies both caps hold at every sampled instant while 50 concurrent scale requests hammer the API.
TEST(Supervisor, CapsHoldUnderConcurrentScaling) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.p1]\n[providers.p2]\n[providers.p3]\n[providers.p4]\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_WORKERS_PER_PROVIDER", "3"}, {"KG_MAX_TOTAL_PROCESSES", "5"},
               {"KG_MAX_PROCESSES_PER_PROVIDER", "2"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::atomic<bool> done{false};
  std::atomic<int> max_total{0}, max_per{0}, samples{0};
  std::thread sampler([&] {
    while (!done) {
      std::map<std::string, int> per;
      int total = 0;
      for (pid_t c : testing::ChildrenOf(n.proc().pid())) {
        std::string p = testing::WorkerProvider(c);
        if (p.empty() && testing::ProcState(c).empty()) continue;
        ++total;  // any child counts, even one between spawn and exec
        if (!p.empty()) ++per[p];
      }
      max_total = std::max(max_total.load(), total);
      for (auto& [_, k] : per) max_per = std::max(max_per.load(), k);
      ++samples;
    }
  });
  ASSERT_TRUE(WaitFor([&] { return n.Workers().size() == 5; }, 10s)) << n.proc().Stderr();
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", n.port());
      json body = {{"per_node", (i * 7) % 4}};
      auto r = c.Put("/api/v1/providers/p" + std::to_string(1 + i % 4) + "/processes", body.dump(), "application/json");
      EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response: " + httplib::to_string(r.error()));
      if (r && r->status == 200) {
        EXPECT_LE(json::parse(r->body)["per_node"].get<int>(), 2);
      }
    });
  }
  for (auto& t : clients) t.join();
  // Settle on 3 everywhere: 2 each for the first providers in order until the total cap of 5.
  for (int p = 1; p <= 4; ++p) {
    auto r = n.http().Put("/api/v1/providers/p" + std::to_string(p) + "/processes", R"({"per_node":3})",
                          "application/json");
    ASSERT_TRUE(r && r->status == 200);
    json j = json::parse(r->body);
    EXPECT_TRUE(j["clamped"].get<bool>()) << j;
    EXPECT_NE(j["reason"].get<std::string>().find("KG_MAX_"), std::string::npos) << j;
  }
  // Round-robin over the providers in order until the total cap: p1 gets 2, the others 1.
  auto distribution = [&] {
    std::map<std::string, int> per;
    for (auto& [_, p] : n.Workers()) ++per[p];
    return per;
  };
  std::map<std::string, int> want = {{"p1", 2}, {"p2", 1}, {"p3", 1}, {"p4", 1}};
  ASSERT_TRUE(WaitFor([&] { return distribution() == want; }, 10s));
  done = true;
  sampler.join();
  EXPECT_GT(samples.load(), 20);
  EXPECT_LE(max_total.load(), 5);
  EXPECT_LE(max_per.load(), 2);
  // The refusal is logged at error level, naming the cap and the provider, once per change.
  std::string err = n.proc().Stderr();
  EXPECT_NE(err.find("error"), std::string::npos);
  EXPECT_NE(err.find("KG_MAX_PROCESSES_PER_PROVIDER=2 refuses"), std::string::npos) << err;
  // The setting persists in the task store (written by the supervisor's store thread, so
  // shortly after the answer).
  auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
  ASSERT_TRUE(store.ok());
  std::string stored;
  EXPECT_TRUE(WaitFor([&] {
    auto setting = (*store)->GetSetting(ScaleSettingKey("p4"));
    stored = setting.ok() && setting->has_value() ? **setting : "";
    return stored == "3";
  }, 10s)) << "stored: " << stored;
}

// Verifies Start() called 3 times and from 16 threads at once yields one guard and one process set.
TEST(Supervisor, RepeatedAndConcurrentStartMakeOneGuard) {
  BlockSupervisorSignals();  // precondition of the supervisor, before any thread exists
  TempDir dir;
  setenv("KG_DATA_DIR", (dir.path() + "/data").c_str(), 1);  // for the workers it spawns
  auto cfg = LoadConfig([&](const std::string& k) -> std::optional<std::string> {
    if (k == "KG_DATA_DIR") return dir.path() + "/data";
    if (k == "KG_WORKERS_PER_PROVIDER") return std::string("3");
    return std::nullopt;
  });
  ASSERT_TRUE(cfg.ok());
  auto queue = OpenQueue(*cfg);
  auto store = OpenTaskStore(*cfg);
  ASSERT_TRUE(queue.ok() && store.ok());
  auto sup = Supervisor::Create(*cfg, testing::KgflowBinary());
  ASSERT_TRUE(sup.ok()) << sup.status().message();
  for (int i = 0; i < 3; ++i) (*sup)->Start();
  std::vector<std::thread> ts;
  for (int i = 0; i < 16; ++i) ts.emplace_back([&] { (*sup)->Start(); });
  for (auto& t : ts) t.join();
  auto workers = [&] {
    std::set<pid_t> s;
    for (pid_t c : testing::ChildrenOf(getpid())) {
      if (!testing::WorkerProvider(c).empty()) s.insert(c);
    }
    return s;
  };
  ASSERT_TRUE(WaitFor([&] { return workers().size() == 3; }, 10s));
  auto first = workers();
  int guards = 0;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    if (testing::ReadFile(t.path().string() + "/comm") == "kg-guard\n") ++guards;
  }
  EXPECT_EQ(guards, 1);
  for (int i = 0; i < 5; ++i) (*sup)->Start();
  EXPECT_FALSE(WaitFor([&] { return workers() != first; }, 500ms)) << "no duplicates after more starts";
  // A second supervisor of the same node name is refused by the lock.
  auto second = Supervisor::Create(*cfg, testing::KgflowBinary());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kConflict);
  EXPECT_NE(second.status().message().find("another supervisor"), std::string::npos);
  (*sup)->Stop(false);
  (*sup)->Wait();
  EXPECT_TRUE(workers().empty());
}

// Verifies the supervisor reaps only the children it spawned: a child of the embedding process exits while
// the supervisor reaps (and replaces) a killed worker of its own, and the embedding process still collects
// that child's exit status itself.
TEST(Supervisor, LeavesChildrenItDidNotSpawnToTheirOwner) {
  BlockSupervisorSignals();  // precondition of the supervisor, before any thread exists
  TempDir dir;
  InProcess in(dir);
  in.sup->Start();
  ASSERT_TRUE(WaitFor([&] { return InProcess::Workers().size() == 1; }, 10s));
  pid_t mine = fork();
  ASSERT_GE(mine, 0);
  if (mine == 0) _exit(7);
  // It has exited: a zombie waiting for us (or already taken by someone else, the defect).
  ASSERT_TRUE(WaitFor([&] { return !testing::Alive(mine); }, 5s));
  // A reaping pass of the supervisor after that exit: kill its worker and see the replacement.
  pid_t victim = *InProcess::Workers().begin();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] {
    auto w = InProcess::Workers();
    return w.size() == 1 && *w.begin() != victim && testing::ProcState(victim).empty();
  }, 10s));
  EXPECT_EQ(testing::ProcState(mine), "Z") << "still ours to reap";
  int status = 0;
  ASSERT_EQ(waitpid(mine, &status, WNOHANG), mine) << "the supervisor reaped a child it did not spawn";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7);
  in.sup->Stop(false);
  in.sup->Wait();
  EXPECT_TRUE(InProcess::Workers().empty());
}

// Verifies spawning is exec-only and no descriptor of any kind reaches a worker: the embedding process opens a
// plain file, a flock'ed lock file, a pipe, an eventfd and a socket without O_CLOEXEC before the supervisor
// starts; the worker runs the kgflow binary as `__worker` and holds none of them, nor any other descriptor of
// its parent beyond stdin/out/err and its status pipe (fd 3).
TEST(Supervisor, NoDescriptorOfTheParentReachesAWorker) {
  BlockSupervisorSignals();
  TempDir dir;
  std::vector<int> mine;
  mine.push_back(open(dir.File("plain").c_str(), O_RDWR | O_CREAT, 0600));
  int lock_fd = open(dir.File("lock").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_EQ(flock(lock_fd, LOCK_EX), 0);
  mine.push_back(lock_fd);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  mine.push_back(p[0]);
  mine.push_back(p[1]);
  mine.push_back(eventfd(0, 0));
  mine.push_back(socket(AF_INET, SOCK_STREAM, 0));
  for (int fd : mine) {
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0) << "inheritable on purpose";
  }
  InProcess in(dir);
  in.sup->Start();
  ASSERT_TRUE(WaitFor([&] {
    auto v = in.sup->Snapshot();
    return v.size() == 1 && v[0].state == "idle";  // it has opened its own files
  }, 10s));
  pid_t worker = in.sup->Snapshot()[0].pid;
  // Exec, not a fork of this (test) binary.
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(worker) + "/exe"),
            std::filesystem::canonical(testing::KgflowBinary()));
  EXPECT_EQ(testing::WorkerProvider(worker), "builtin") << "cmdline starts with __worker";
  auto parent = FdTargets(getpid());
  std::set<std::string> planted, inherited_from_parent;
  for (int fd : mine) planted.insert(parent.at(fd));
  for (const auto& [fd, target] : parent) {
    if (fd > 2) inherited_from_parent.insert(target);
  }
  auto child = FdTargets(worker);
  ASSERT_FALSE(child.empty());
  for (const auto& [fd, target] : child) {
    EXPECT_FALSE(planted.count(target)) << "fd " << fd << " -> " << target << " was planted by the parent";
    // The worker opens the node's databases itself, after exec: same paths as the parent's own
    // connections, different descriptions (the planted files above are what must not pass).
    bool own_database = target.rfind(dir.path() + "/data/", 0) == 0;
    if (fd > 3 && !own_database) {
      EXPECT_FALSE(inherited_from_parent.count(target)) << "fd " << fd << " -> " << target;
    }
  }
  EXPECT_EQ(child.at(3).rfind("pipe:", 0), 0u) << "fd 3 is the status pipe";
  in.sup->Stop(false);
  in.sup->Wait();
  for (int fd : mine) close(fd);
}

// Verifies a SIGKILLed worker is reaped (no zombie) and replaced fast, and its chunk runs again once at once.
TEST(Supervisor, KilledWorkerIsReplacedAndItsChunkRerunsOnce) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.slow]\ndelay_ms = 1500\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_CONCURRENCY_PER_PROCESS", "1"}, {"KG_LEASE_SECONDS", "120"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 1; }, 10s));
  auto before = n.Workers();
  ASSERT_EQ(before.size(), 1u);
  pid_t victim = before.begin()->first;
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto w = n.Workers();
        return w.size() == 1 && w.begin()->first != victim;
      },
      5s));
  auto replaced_in = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(replaced_in, 1s);
  EXPECT_EQ(testing::ProcState(victim), "") << "reaped, not a zombie";
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 20s));
  auto info = QueueOf(dir)->Get(id + ":0");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->attempts, 2) << "ran once more, not more";
  EXPECT_EQ(info->crashes, 1);
  json w = n.Get("/api/v1/workers");
  EXPECT_EQ(w["nodes"][0]["processes"][0]["restarts"], 1);
  EXPECT_NE(w["nodes"][0]["processes"][0]["last_exit"].get<std::string>().find("SIGKILL"), std::string::npos) << w;
}

// Holds a database of a node in an exclusive transaction (from another connection) until Release().
class StoreLock {
 public:
  explicit StoreLock(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK) << path;
    held_ = sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK;
    EXPECT_TRUE(held_) << path << ": " << sqlite3_errmsg(db_);
  }
  ~StoreLock() {
    Release();
    sqlite3_close(db_);
  }
  void Release() {
    if (held_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    held_ = false;
  }
  bool held() const { return held_; }

 private:
  sqlite3* db_ = nullptr;
  bool held_ = false;
};

// Verifies no store call stalls the guard or the API: with the node's queue.db and tasks.db held in an
// exclusive transaction for longer than a heartbeat period, a SIGKILLed worker is reaped and replaced, a scale
// is applied, and /api/v1/workers, /readyz and /metrics answer, all while the lock is held; the heartbeat under
// the lock does not undo the scale; once released, the scale is stored and the dead worker's chunk is given
// back (one crash) and runs again.
TEST(Supervisor, LockedStoreStallsNeitherReplacementNorTheApi) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.slow]\ndelay_ms = 1500\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_CONCURRENCY_PER_PROCESS", "1"}, {"KG_LEASE_SECONDS", "120"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 1; }, 10s));
  auto before = n.Workers();
  ASSERT_EQ(before.size(), 1u);
  pid_t victim = before.begin()->first;
  StoreLock queue_lock(dir.path() + "/data/queue.db");
  StoreLock tasks_lock(dir.path() + "/data/tasks.db");
  ASSERT_TRUE(queue_lock.held() && tasks_lock.held());
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  // Well inside the store's 10 s busy timeout, so a guard blocked on the store cannot get through meanwhile.
  pid_t replacement = 0;
  bool replaced = WaitFor([&] {
    auto w = n.Workers();
    if (w.size() != 1 || w.begin()->first == victim || !testing::ProcState(victim).empty()) return false;
    replacement = w.begin()->first;
    return true;
  }, 5s);
  httplib::Client c("127.0.0.1", n.port());
  c.set_read_timeout(3, 0);
  auto r = c.Get("/api/v1/workers");
  // A scale during the lock is applied at once, and neither it nor the heartbeat that comes
  // while the lock is still held (every 5 s; we keep the lock for longer) stalls the API or
  // undoes the scale.
  auto scaled = c.Put("/api/v1/providers/slow/processes", R"({"per_node":2})", "application/json");
  bool two = WaitFor([&] { return n.Workers().size() == 2; }, 5s);
  std::this_thread::sleep_for(6s);  // a fixed window on purpose: one heartbeat period must pass under the lock
  std::map<std::string, int> answered;
  for (const char* path : {"/api/v1/workers", "/readyz", "/metrics", "/healthz"}) {
    auto a = c.Get(path);  // the 3 s read timeout is well inside the store's 10 s busy timeout
    answered[path] = a ? a->status : -1;
  }
  bool still_held = queue_lock.held() && tasks_lock.held();
  queue_lock.Release();
  tasks_lock.Release();
  ASSERT_TRUE(still_held);
  EXPECT_TRUE(replaced) << "no replacement while the store was locked\n" << n.proc().Stderr();
  ASSERT_TRUE(r) << "GET /api/v1/workers did not answer while the store was locked: " << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"pid\":" + std::to_string(replacement)), std::string::npos) << r->body;
  ASSERT_TRUE(scaled) << "PUT scale did not answer while the store was locked";
  EXPECT_EQ(scaled->status, 200) << scaled->body;
  EXPECT_TRUE(two) << "the scale was not applied while the store was locked";
  for (const auto& [path, status] : answered) EXPECT_EQ(status, 200) << path << " while the store was locked";
  EXPECT_EQ(n.Workers().size(), 2u) << "a heartbeat during the lock undid the scale\n" << n.proc().Stderr();
  // Once the store is free the scale is stored (not lost) and still in force.
  EXPECT_TRUE(WaitFor([&] {
    auto v = OpenSqliteTaskStore(dir.path() + "/data/tasks.db").value()->GetSetting(ScaleSettingKey("slow"));
    return v.ok() && v->has_value() && **v == "2";
  }, 30s)) << n.proc().Stderr();
  // A heartbeat after that (it re-reads the stored settings) leaves the scale in force.
  auto beat_at = [&] {
    json w = n.Get("/api/v1/workers");
    return w.is_null() || w["nodes"].empty() ? int64_t{0} : w["nodes"][0]["heartbeat_at"].get<int64_t>();
  };
  int64_t stored_at = beat_at();
  EXPECT_TRUE(WaitFor([&] { return beat_at() > stored_at; }, 30s)) << "no heartbeat after the store came back";
  EXPECT_EQ(n.Workers().size(), 2u);
  // The store is free again: the chunk the victim held is given back with its crash, and runs once more.
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 20s)) << n.proc().Stderr();
  auto info = QueueOf(dir)->Get(id + ":0");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->crashes, 1);
  EXPECT_EQ(info->attempts, 2);
}

// Verifies a provider whose workers exit at start backs off exponentially (the spawn times' gaps are at least
// the growing delays) and is quarantined, while another provider keeps its single worker untouched.
TEST(Supervisor, CrashLoopBacksOffAndQuarantinesOnlyThatProvider) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.good]\n[providers.bad]\nfault = \"exit_on_start\"\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_QUARANTINE_SECONDS", "600"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  auto state_of = [&](const std::string& provider) {
    json w = n.Get("/api/v1/workers");
    if (w.is_null() || w["nodes"].empty()) return std::string();
    for (const auto& p : w["nodes"][0]["processes"]) {
      if (p["provider"] == provider) return p["state"].get<std::string>();
    }
    return std::string();
  };
  pid_t good = 0;
  ASSERT_TRUE(WaitFor([&] {
    for (auto& [pid, p] : n.Workers()) {
      if (p == "good") good = pid;
    }
    return good != 0;
  }, 5s));
  ASSERT_TRUE(WaitFor([&] { return state_of("bad") == "quarantined"; }, 15s)) << n.proc().Stderr();
  std::string err = n.proc().Stderr();
  size_t a = err.find("backing off 100 ms"), b = err.find("backing off 200 ms"), c = err.find("backing off 400 ms");
  ASSERT_NE(a, std::string::npos) << err;
  ASSERT_NE(b, std::string::npos) << err;
  ASSERT_NE(c, std::string::npos) << err;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_NE(err.find("provider bad quarantined"), std::string::npos);
  // The spawns themselves are spaced by the backoff: 5 spawns (the 5th failure quarantines), each gap at least
  // the delay the previous failure set (0, 100, 200, 400 ms; 1 ms for the log's truncation). Only lower bounds:
  // a worker's start-up on a loaded machine lengthens a gap by any amount, so "each gap longer than the last"
  // would be flaky; the bounds alone fail without the backoff (gaps of a few ms).
  auto spawns = LineTimesMs(err, "provider=bad owner=");
  ASSERT_EQ(spawns.size(), 5u) << err;
  const int64_t delays[] = {0, 100, 200, 400};
  for (size_t i = 1; i < spawns.size(); ++i) {
    int64_t gap = spawns[i] - spawns[i - 1];
    if (gap < 0) gap += 24 * 3600 * 1000;  // across midnight
    EXPECT_GE(gap, delays[i - 1] - 1) << "gap " << i << "\n" << err;
  }
  // Quarantine holds: no more spawns of bad.
  EXPECT_FALSE(WaitFor([&] {
    for (auto& [pid, p] : n.Workers()) if (p == "bad") return true;
    return false;
  }, 1s));
  auto w = n.Workers();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w.begin()->first, good) << "the good provider's worker was never disturbed";
  EXPECT_EQ(state_of("good"), "idle");
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.", "good");
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 10s));
}

// Verifies what the console needs of a node reaches every node's API: a node with two providers, one
// quarantined, writes its version, start time, caps and quarantine (with the time left) into its record with
// each heartbeat, so a web node of the cluster shows them; the node shows its own live; and both nodes answer
// GET /api/v1/providers with the same queue figures (one queue for the cluster).
TEST(Supervisor, NodeInfoAndQueueReachEveryNodesApi) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.good]\n[providers.bad]\nfault = \"exit_on_start\"\n");
  Node web(dir, {{"KG_CONFIG", cfg}, {"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "observer"},
                 {"KG_HEARTBEAT_SECONDS", "1"}});
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  const int64_t before = NowMs();
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_WORKER_NODE_NAME", "runner"}, {"KG_QUARANTINE_SECONDS", "600"},
               {"KG_HEARTBEAT_SECONDS", "1"}, {"KG_MAX_TOTAL_PROCESSES", "6"}, {"KG_MAX_PROCESSES_PER_PROVIDER", "4"},
               {"KG_HEALTH_ADDR", "127.0.0.1:" + std::to_string(testing::FreePort())}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  auto node_in = [](const json& w, const std::string& name) {
    if (w.is_null()) return json();
    for (const auto& e : w["nodes"]) {
      if (e["name"] == name) return e;
    }
    return json();
  };
  auto quarantined = [](const json& e) {
    return !e.is_null() && e["quarantine"].is_array() && e["quarantine"].size() == 1 &&
           e["quarantine"][0]["provider"] == "bad";
  };
  // Seen by the web node: only the runner's heartbeat can have brought it there.
  json seen;
  ASSERT_TRUE(WaitFor([&] { return quarantined(seen = node_in(web.Get("/api/v1/workers"), "runner")); }, 20s))
      << seen << n.proc().Stderr();
  EXPECT_EQ(seen["version"], KG_VERSION);
  EXPECT_EQ(seen["caps"], json({{"total", 6}, {"per_provider", 4}})) << seen;
  EXPECT_GE(seen["started_at"].get<int64_t>(), before) << seen;
  EXPECT_LE(seen["started_at"].get<int64_t>(), NowMs()) << seen;
  double left = seen["quarantine"][0]["remaining_s"].get<double>();
  EXPECT_GT(left, 500.0) << seen;
  EXPECT_LE(left, 600.0) << seen;
  json self = node_in(web.Get("/api/v1/workers"), "observer");
  ASSERT_FALSE(self.is_null());
  EXPECT_EQ(self["version"], KG_VERSION);
  EXPECT_EQ(self["quarantine"], json::array()) << "a web node quarantines nothing";
  // The runner's own view: live, the same quarantine.
  json own = node_in(n.Get("/api/v1/workers"), "runner");
  ASSERT_TRUE(quarantined(own)) << own;
  EXPECT_GT(own["quarantine"][0]["remaining_s"].get<double>(), 500.0) << own;
  EXPECT_EQ(own["caps"], json({{"total", 6}, {"per_provider", 4}})) << own;

  // One task done through the web node: both nodes count it in the same queue.
  json body = {{"text", "Mara Voss founded Helix Dynamics."}, {"provider", "good"}};
  auto r = web.http().Post("/api/v1/tasks", body.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
  std::string id = json::parse(r->body)["id"];
  ASSERT_TRUE(WaitFor([&] { return web.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 15s));
  auto queue_of = [](const json& providers, const std::string& name) {
    for (const auto& p : providers["providers"]) {
      if (p["name"] == name) return p["queue"];
    }
    return json();
  };
  json from_web = web.Get("/api/v1/providers");
  json from_runner = n.Get("/api/v1/providers");
  ASSERT_TRUE(queue_of(from_web, "good").is_object()) << from_web;
  EXPECT_GE(queue_of(from_web, "good")["done"].get<int>(), 1) << from_web;
  EXPECT_EQ(queue_of(from_web, "good"), queue_of(from_runner, "good")) << from_web << from_runner;
  EXPECT_TRUE(from_web["providers"][0]["llm_requests"].is_null()) << "a web node runs no workers";
  EXPECT_TRUE(from_runner["providers"][0]["llm_requests"].is_object()) << from_runner;
}

// Verifies a quarantine ends after KG_QUARANTINE_SECONDS and the provider is tried again.
TEST(Supervisor, QuarantineEnds) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.bad]\nfault = \"exit_on_start\"\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_QUARANTINE_SECONDS", "1"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.proc().Stderr().find("quarantine of provider bad is over") != std::string::npos; },
                      15s)) << n.proc().Stderr();
  EXPECT_TRUE(WaitFor([&] {
    std::string err = n.proc().Stderr();
    return err.find("spawned worker", err.find("is over")) != std::string::npos;
  }, 5s)) << n.proc().Stderr();
}

// Verifies a worker inherits no socket and no other descriptor of its parent: only 0-2, the status pipe and
// what it opened itself.
TEST(Supervisor, WorkerInheritsNoSocket) {
  TempDir dir;
  Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.Workers().size() == 1; }, 5s));
  pid_t child = n.Workers().begin()->first;
  // Give the worker time to open its own files; then nothing of its fds may be a socket.
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/workers")["nodes"][0]["processes"][0]["state"] == "idle"; }, 5s));
  std::set<std::string> parent_sockets;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(n.proc().pid()) + "/fd")) {
    std::string target = std::filesystem::read_symlink(e.path()).string();
    if (target.rfind("socket:", 0) == 0) parent_sockets.insert(target);
  }
  EXPECT_FALSE(parent_sockets.empty()) << "the parent listens, so it has sockets";
  int fds = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(child) + "/fd")) {
    std::string target = std::filesystem::read_symlink(e.path()).string();
    EXPECT_EQ(target.rfind("socket:", 0), std::string::npos) << e.path() << " -> " << target;
    EXPECT_FALSE(parent_sockets.count(target));
    ++fds;
  }
  EXPECT_LT(fds, 20);
  EXPECT_EQ(getpgid(child), child) << "each worker leads its own process group";
}


// Verifies RSS recycling: a worker over KG_MAX_RSS_MB right after start is reported, not recycled in a loop;
// once it has done work it is replaced gracefully.
TEST(Supervisor, RssLimitRecyclesOnlyAfterWork) {
  TempDir dir;
  Node n(dir, {{"KG_MAX_RSS_MB", "1"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.proc().Stderr().find("right after start") != std::string::npos; }, 10s));
  auto first = n.Workers();
  ASSERT_EQ(first.size(), 1u);
  std::string err = n.proc().Stderr();
  EXPECT_EQ(err.find("recycled: RSS"), std::string::npos);
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.");
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 10s));
  ASSERT_TRUE(WaitFor([&] { return n.proc().Stderr().find("recycled: RSS") != std::string::npos; }, 10s));
  ASSERT_TRUE(WaitFor([&] {
    auto w = n.Workers();
    return w.size() == 1 && w.begin()->first != first.begin()->first;
  }, 10s));
  // That the report is not repeated is ReportsAreLoggedOnceNotInALoop.
}

// Verifies a worker over KG_MAX_RSS_MB right after start, and a request refused by a cap, are each logged once:
// counted after three further sampling ticks of the guard (each a loop turn that would repeat them).
TEST(Supervisor, ReportsAreLoggedOnceNotInALoop) {
  TempDir dir;
  // Busy workers (a slow provider, one chunk each) are sampled every 2 s, so three ticks pass in about 6 s.
  std::string cfg = Toml(dir, "[providers.slow]\ndelay_ms = 20000\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_LOG_LEVEL", "debug"}, {"KG_MAX_RSS_MB", "1"},
               {"KG_WORKERS_PER_PROVIDER", "3"}, {"KG_MAX_PROCESSES_PER_PROVIDER", "2"},
               {"KG_CONCURRENCY_PER_PROCESS", "1"}, {"KG_CHUNK_SIZE", "60"}, {"KG_CHUNK_OVERLAP", "0"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.Workers().size() == 2; }, 10s));
  ASSERT_FALSE(Submit(n, Sentences(2)).empty());
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 2; }, 10s));
  const std::string refusal = "KG_MAX_PROCESSES_PER_PROVIDER=2 refuses 1 of 3";
  std::vector<std::string> rss_reports;
  for (auto& [pid, _] : n.Workers()) rss_reports.push_back("worker pid=" + std::to_string(pid) + " provider=slow uses");
  auto reported = [&](const std::string& log) {
    if (log.find(refusal) == std::string::npos) return false;
    for (const auto& r : rss_reports) {
      if (log.find(r) == std::string::npos || log.find("right after start", log.find(r)) == std::string::npos) {
        return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(WaitFor([&] { return reported(n.proc().Stderr()); }, 10s)) << n.proc().Stderr();
  size_t after = n.proc().Stderr().size();
  ASSERT_TRUE(WaitForSamples(n, after, 3, 15s)) << n.proc().Stderr();
  std::string log = n.proc().Stderr();
  EXPECT_EQ(LeasedChunks(dir), 2) << "still busy, still over the limit, still refused: a loop would have repeated";
  EXPECT_EQ(Count(log, refusal), 1u) << log;
  for (const auto& r : rss_reports) EXPECT_EQ(Count(log, r), 1u) << r << "\n" << log;
  EXPECT_EQ(Count(log, "recycled: RSS"), 0u) << "no work done yet: not recycled";
}

// Verifies `kgflow scale` and `kgflow workers` against a running node.
TEST(Supervisor, ScaleAndWorkersCommands) {
  TempDir dir;
  Node n(dir, {{"KG_MAX_PROCESSES_PER_PROVIDER", "3"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::Process scale({"scale", "builtin", "9"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(scale.Wait(10s)), 0) << scale.Stderr();
  EXPECT_NE(scale.Stdout().find("provider builtin: asked for 9 per node; target 3 processes on node "),
            std::string::npos) << scale.Stdout();
  EXPECT_NE(scale.Stdout().find("; clamped by KG_MAX_PROCESSES_PER_PROVIDER=3 (caps: KG_MAX_PROCESSES_PER_PROVIDER=3, "
                                "KG_MAX_TOTAL_PROCESSES=50)"),
            std::string::npos) << scale.Stdout();
  // It waited for the count: the processes run when it has said so.
  EXPECT_NE(scale.Stdout().find("provider builtin: 3 processes running on node"), std::string::npos)
      << scale.Stdout();
  EXPECT_EQ(n.Workers().size(), 3u);
  testing::Process workers({"workers"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(workers.Wait(10s)), 0);
  for (auto& [pid, _] : n.Workers()) EXPECT_NE(workers.Stdout().find(std::to_string(pid)), std::string::npos);
  std::string body;
  EXPECT_TRUE(WaitFor([&] {
    auto m = n.http().Get("/metrics");
    body = m ? m->body : "";
    return body.find("kg_worker_processes{provider=\"builtin\",state=\"idle\"} 3") != std::string::npos;
  }, 5s)) << body;
  EXPECT_NE(body.find("kg_worker_spawns_total{provider=\"builtin\"} 3"), std::string::npos) << body;
  testing::Process down({"scale", "builtin", "0"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(down.Wait(10s)), 0);
  ASSERT_TRUE(WaitFor([&] { return n.Workers().empty(); }, 10s));
  testing::Process unknown({"scale", "nope", "1"}, env, dir.path());
  EXPECT_EQ(WEXITSTATUS(unknown.Wait(10s)), 1);
  EXPECT_NE(unknown.Stderr().find("unknown provider"), std::string::npos);
}

std::optional<std::string> StoredScale(const TempDir& dir, const std::string& provider) {
  auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
  EXPECT_TRUE(store.ok());
  auto v = (*store)->GetSetting(ScaleSettingKey(provider));
  EXPECT_TRUE(v.ok());
  return v.ok() ? *v : std::nullopt;
}

// Verifies a runtime override is visible and reversible: `kgflow workers` and GET /api/v1/workers show the
// configured value and the override, a restart keeps the override and its banner says so, and `kgflow scale
// P --reset` and DELETE .../processes return to the configuration and remove the stored setting.
TEST(Supervisor, ScaleOverrideIsVisibleAndReversible) {
  TempDir dir;
  std::map<std::string, std::string> node_env = {{"KG_MAX_PROCESSES_PER_PROVIDER", "3"}};
  auto n = std::make_unique<Node>(dir, node_env);
  ASSERT_TRUE(n->ready()) << n->proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n->port())}};
  testing::Process scale({"scale", "builtin", "2"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(scale.Wait(10s)), 0) << scale.Stderr();
  ASSERT_TRUE(WaitFor([&] { return n->Workers().size() == 2; }, 10s));
  json w = n->Get("/api/v1/workers");
  ASSERT_EQ(w["scaling"].size(), 1u) << w;
  EXPECT_EQ(w["scaling"][0], json({{"provider", "builtin"}, {"configured", 1}, {"override", 2}, {"per_node", 2}}));
  testing::Process workers({"workers"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(workers.Wait(10s)), 0);
  EXPECT_NE(workers.Stdout().find("provider builtin: configured 1 per node (KG_WORKERS_PER_PROVIDER), override 2 "
                                  "per node in force"), std::string::npos) << workers.Stdout();
  ASSERT_TRUE(WaitFor([&] { return StoredScale(dir, "builtin") == "2"; }, 5s));

  // Across a restart: still 2, and the banner says why.
  ASSERT_TRUE(n->proc().Signal(SIGTERM));
  ASSERT_NE(n->proc().Wait(15s), -1);
  n = std::make_unique<Node>(dir, node_env);
  ASSERT_TRUE(n->ready()) << n->proc().Stderr();
  env["KG_HTTP_ADDR"] = "127.0.0.1:" + std::to_string(n->port());
  ASSERT_TRUE(WaitFor([&] { return n->Workers().size() == 2; }, 10s));
  EXPECT_NE(n->proc().Stderr().find("provider builtin: runtime override in force: 2 per node"), std::string::npos)
      << n->proc().Stderr();

  testing::Process reset({"scale", "builtin", "--reset"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(reset.Wait(10s)), 0) << reset.Stderr();
  EXPECT_NE(reset.Stdout().find("back to the configured 1 per node"), std::string::npos) << reset.Stdout();
  ASSERT_TRUE(WaitFor([&] { return n->Workers().size() == 1; }, 10s));
  EXPECT_TRUE(n->Get("/api/v1/workers")["scaling"][0]["override"].is_null());
  ASSERT_TRUE(WaitFor([&] { return !StoredScale(dir, "builtin").has_value(); }, 5s)) << "the setting is removed";

  // The same through the API.
  ASSERT_TRUE(n->http().Put("/api/v1/providers/builtin/processes", R"({"per_node":3})", "application/json"));
  ASSERT_TRUE(WaitFor([&] { return n->Workers().size() == 3; }, 10s));
  auto del = n->http().Delete("/api/v1/providers/builtin/processes");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200) << del->body;
  EXPECT_TRUE(json::parse(del->body)["override"].is_null()) << del->body;
  ASSERT_TRUE(WaitFor([&] { return n->Workers().size() == 1; }, 10s));
  ASSERT_TRUE(WaitFor([&] { return !StoredScale(dir, "builtin").has_value(); }, 5s));
  auto unknown = n->http().Delete("/api/v1/providers/nope/processes");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);

  // Neither a count nor --reset, or both: a usage error, nothing sent.
  testing::Process neither({"scale", "builtin"}, env, dir.path());
  EXPECT_EQ(WEXITSTATUS(neither.Wait(10s)), 2) << neither.Stderr();
  testing::Process both({"scale", "builtin", "2", "--reset"}, env, dir.path());
  EXPECT_NE(WEXITSTATUS(both.Wait(10s)), 0);
  EXPECT_EQ(n->Workers().size(), 1u);
}

// Verifies scaling through a web node: its answer applies the total cap too (over every provider's setting, as a
// worker node with its caps would split them), and a worker node of the same store applies the override and then
// its removal (reset) with its heartbeat.
TEST(Supervisor, ScaleThroughAWebNodeAppliesBothCapsAndReset) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.builtin]\n[providers.other]\n");
  Node alpha(dir, {{"KG_WORKER_NODE_NAME", "alpha"}});
  ASSERT_TRUE(alpha.ready()) << alpha.proc().Stderr();
  Node web(dir, {{"KG_CONFIG", cfg}, {"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "web-1"},
                 {"KG_MAX_TOTAL_PROCESSES", "3"}, {"KG_MAX_PROCESSES_PER_PROVIDER", "3"}});
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return alpha.Workers().size() == 1; }, 10s));
  // builtin wants 4 and other 1 (configured): per provider 3 at most, and 3 in total round-robin: 2 + 1.
  auto r = web.http().Put("/api/v1/providers/builtin/processes", R"({"per_node":4})", "application/json");
  ASSERT_TRUE(r && r->status == 200);
  json j = json::parse(r->body);
  EXPECT_EQ(j["per_node"], 2) << j;
  EXPECT_TRUE(j["clamped"].get<bool>());
  // 4 is above the per-provider cap, but what holds builtin at 2 is the total (other takes 1 of 3): that
  // is the cap named (the per-provider one used to be).
  EXPECT_EQ(j["reason"], "KG_MAX_TOTAL_PROCESSES=3 (1 taken by other providers)") << j;
  EXPECT_EQ(j["binding_cap"]["name"], "KG_MAX_TOTAL_PROCESSES") << j;
  r = web.http().Put("/api/v1/providers/builtin/processes", R"({"per_node":3})", "application/json");
  ASSERT_TRUE(r && r->status == 200);
  j = json::parse(r->body);
  EXPECT_EQ(j["per_node"], 2) << j;
  EXPECT_EQ(j["reason"], "KG_MAX_TOTAL_PROCESSES=3 (1 taken by other providers)") << j;
  EXPECT_EQ(web.Get("/api/v1/workers")["scaling"][0]["override"], 3);
  // alpha (builtin only; caps 50/10) applies the stored override with its next heartbeat (5 s).
  ASSERT_TRUE(WaitFor([&] { return alpha.Workers().size() == 3; }, 15s)) << alpha.proc().Stderr();
  auto del = web.http().Delete("/api/v1/providers/builtin/processes");
  ASSERT_TRUE(del && del->status == 200) << (del ? del->body : "no response");
  EXPECT_FALSE(StoredScale(dir, "builtin").has_value());
  ASSERT_TRUE(WaitFor([&] { return alpha.Workers().size() == 1; }, 15s)) << "alpha returns to its configuration";
  EXPECT_TRUE(alpha.Get("/api/v1/workers")["scaling"][0]["override"].is_null());
}

// Verifies SIGKILL of the supervisor leaves no worker alive within 2 s, and a restart frees what they held.
TEST(Supervisor, KilledSupervisorLeavesNoOrphans) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.a]\ndelay_ms = 5000\n[providers.b]\n");
  std::map<std::string, std::string> env = {{"KG_CONFIG", cfg}, {"KG_WORKERS_PER_PROVIDER", "2"},
                                            {"KG_LEASE_SECONDS", "300"}};
  auto n = std::make_unique<Node>(dir, env);
  ASSERT_TRUE(n->ready()) << n->proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n->Workers().size() == 4; }, 10s));
  ASSERT_FALSE(Submit(*n, "Mara Voss founded Helix Dynamics.", "a").empty());
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 1; }, 10s));
  auto workers = n->Workers();
  ASSERT_TRUE(n->proc().Signal(SIGKILL));
  ASSERT_NE(n->proc().Wait(5s), -1);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor(
      [&] {
        for (auto& [pid, _] : workers) {
          if (testing::Alive(pid)) return false;
        }
        return true;
      },
      2s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // The next supervisor of this node gives the orphaned lease back at once (not after 300 s).
  n = std::make_unique<Node>(dir, env);
  ASSERT_TRUE(n->ready()) << n->proc().Stderr();
  EXPECT_NE(n->proc().Stderr().find("previous run"), std::string::npos);
  // Its registry entry, left by the killed node, is taken over at once: that pid is gone on this host.
  EXPECT_NE(n->proc().Stderr().find("taking over name"), std::string::npos) << n->proc().Stderr();
  EXPECT_NE(n->proc().Stderr().find("its pid no longer runs kgflow"), std::string::npos) << n->proc().Stderr();
}

// Verifies SIGTERM lets in-flight chunks finish, exits 0, and leaves nothing leased and nothing lost.
TEST(Supervisor, GracefulStopFinishesInFlightWork) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.slow]\ndelay_ms = 700\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_CONCURRENCY_PER_PROCESS", "2"}, {"KG_CHUNK_SIZE", "60"},
               {"KG_CHUNK_OVERLAP", "0"}, {"KG_LOG_LEVEL", "debug"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, Sentences(8));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 2; }, 10s));
  // Leased is not yet started: a chunk an executor has not picked up goes back on a stop, by design.
  auto started = [&] {
    std::string err = n.proc().Stderr();
    int k = 0;
    const std::string mark = "of task " + id + " started";
    for (size_t at = 0; (at = err.find(mark, at)) != std::string::npos; ++at) ++k;
    return k;
  };
  ASSERT_TRUE(WaitFor([&] { return started() >= 2; }, 10s)) << n.proc().Stderr();
  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  int st = n.proc().Wait(20s);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();
  auto counts = QueueOf(dir)->Counts(id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->leased, 0);
  EXPECT_EQ(counts->dead, 0);
  EXPECT_GE(counts->done, 2) << "the two in-flight chunks finished";
  EXPECT_EQ(counts->done + counts->ready, counts->total) << "nothing lost";
}

// Verifies the stop timeout: stragglers are killed, their leases released; a second signal forces the cold path.
TEST(Supervisor, StopTimeoutAndSecondSignalGoCold) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.stuck]\ndelay_ms = 60000\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_CONCURRENCY_PER_PROCESS", "2"}, {"KG_STOP_TIMEOUT_SECONDS", "30"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics. Tomas Reyes joined Helix Dynamics.");
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 1; }, 10s));
  auto workers = n.Workers();
  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  ASSERT_TRUE(WaitFor([&] { return n.proc().Stderr().find("stopping gracefully") != std::string::npos; }, 5s));
  ASSERT_TRUE(n.proc().Signal(SIGINT));
  int st = n.proc().Wait(10s);
  ASSERT_NE(st, -1) << "the cold path does not wait for the 30 s timeout";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();
  for (auto& [pid, _] : workers) EXPECT_FALSE(testing::Alive(pid));
  auto counts = QueueOf(dir)->Counts(id);
  EXPECT_EQ(counts->leased, 0);
  EXPECT_EQ(counts->ready, counts->total);
  auto info = QueueOf(dir)->Get(id + ":0");
  EXPECT_EQ(info->crashes, 0) << "a stop is not the chunk's fault";
}

// Verifies the stop timeout: a worker stuck in a provider call (and stopped, so it cannot honour SIGTERM either)
// is SIGKILLed after KG_STOP_TIMEOUT_SECONDS (+2 s) on a single SIGTERM to the node, which exits 0; the chunk it
// held is ready again without a crash mark, and nothing stays leased.
TEST(Supervisor, StopTimeoutKillsAStuckWorker) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.stuck]\ndelay_ms = 60000\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_CONCURRENCY_PER_PROCESS", "1"}, {"KG_STOP_TIMEOUT_SECONDS", "1"},
               {"KG_LEASE_SECONDS", "120"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.");
  ASSERT_TRUE(WaitFor([&] { return LeasedChunks(dir) == 1; }, 10s));
  auto workers = n.Workers();
  ASSERT_EQ(workers.size(), 1u);
  pid_t stuck = workers.begin()->first;
  ASSERT_EQ(kill(stuck, SIGSTOP), 0);  // deaf to SIGTERM, as a worker stuck in the kernel would be
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  int st = n.proc().Wait(15s);  // 1 s timeout + 2 s grace + slack
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_NE(st, -1) << "the node did not stop\n" << n.proc().Stderr();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();
  EXPECT_GE(took, 3s - 100ms) << "killed only after the stop timeout and its grace";
  std::string err = n.proc().Stderr();
  EXPECT_NE(err.find("SIGKILL worker pid=" + std::to_string(stuck)), std::string::npos) << err;
  EXPECT_NE(err.find("worker pid=" + std::to_string(stuck) + " provider=stuck exited: node stopping (killed by SIGKILL)"),
            std::string::npos) << err;
  EXPECT_FALSE(testing::Alive(stuck));
  auto counts = QueueOf(dir)->Counts(id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->leased, 0);
  EXPECT_EQ(counts->ready, counts->total);
  auto info = QueueOf(dir)->Get(id + ":0");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->crashes, 0) << "a stop is not the chunk's fault";
}

// Verifies a chunk that crashes every worker that takes it is dead-lettered as poison after K crashes, while
// the innocent chunks of the same task complete.
TEST(Supervisor, PoisonChunkIsDeadLettered) {
  TempDir dir;
  std::string cfg = Toml(dir, "[providers.fragile]\nfault = \"crash_on_marker\"\ncrash_marker = \"POISON-PILL\"\n");
  Node n(dir, {{"KG_CONFIG", cfg}, {"KG_POISON_CRASHES", "3"}, {"KG_CHUNK_SIZE", "60"}, {"KG_CHUNK_OVERLAP", "0"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, Sentences(3, "This sentence carries the POISON-PILL marker. ") + Sentences(2));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "failed"; }, 30s)) << n.proc().Stderr();
  json t = n.Get("/api/v1/tasks/" + id);
  EXPECT_EQ(t["chunks_failed"], 1) << t;
  EXPECT_EQ(t["chunks_done"].get<int>(), t["chunks_total"].get<int>() - 1) << t;
  ASSERT_EQ(t["dead_letters"].size(), 1u);
  EXPECT_NE(t["dead_letters"][0]["error"].get<std::string>().find("poison"), std::string::npos) << t;
}

// Verifies many workers with several chunks each in flight finish a large task long before any lease could
// expire, each chunk delivered exactly once (a chunk stuck until its lease expires is a bug).
TEST(Supervisor, ManyWorkersNoChunkStuckOrRedelivered) {
  TempDir dir;
  Node n(dir, {{"KG_WORKERS_PER_PROVIDER", "3"}, {"KG_CONCURRENCY_PER_PROCESS", "4"}, {"KG_LEASE_SECONDS", "60"},
               {"KG_CHUNK_SIZE", "60"}, {"KG_CHUNK_OVERLAP", "0"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, Sentences(400));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 30s))
      << n.Get("/api/v1/tasks/" + id).dump() << n.proc().Stderr();
  auto chunks = QueueOf(dir)->ListChunks(id);
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->size(), 400u);
  for (const auto& c : *chunks) EXPECT_EQ(c.attempts, 1) << c.id;
  EXPECT_EQ(n.proc().Stderr().find("warn"), std::string::npos) << n.proc().Stderr();
}

// Verifies a worker is recycled after KG_MAX_TASKS_PER_PROCESS chunks, without losing work or backing off.
TEST(Supervisor, RecyclesAfterMaxTasks) {
  TempDir dir;
  Node n(dir, {{"KG_MAX_TASKS_PER_PROCESS", "2"}, {"KG_CHUNK_SIZE", "60"}, {"KG_CHUNK_OVERLAP", "0"},
               {"KG_CONCURRENCY_PER_PROCESS", "1"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string id = Submit(n, Sentences(7));
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 30s)) << n.proc().Stderr();
  std::string err = n.proc().Stderr();
  EXPECT_NE(err.find("recycled after 2 chunks"), std::string::npos) << err;
  EXPECT_EQ(err.find("backing off"), std::string::npos);
}

// Verifies role web runs no worker process but is in the node registry, and a second node with the same name on this host is refused.
TEST(Supervisor, WebRoleRunsNoWorkersAndNodeNameIsExclusive) {
  TempDir dir;
  Node web(dir, {{"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "web-1"}});
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  EXPECT_FALSE(WaitFor([&] { return !testing::ChildrenOf(web.proc().pid()).empty(); }, 1s));
  json w = web.Get("/api/v1/workers");
  ASSERT_FALSE(w.is_null());
  // Without a supervisor it still beats into the node registry.
  ASSERT_EQ(w["nodes"].size(), 1u) << w;
  EXPECT_EQ(w["nodes"][0]["name"], "web-1");
  EXPECT_EQ(w["nodes"][0]["role"], "web");
  EXPECT_TRUE(w["nodes"][0]["processes"].empty());

  Node first(dir, {{"KG_WORKER_NODE_NAME", "alpha"}});
  ASSERT_TRUE(first.ready()) << first.proc().Stderr();
  Node second(dir, {{"KG_WORKER_NODE_NAME", "alpha"}}, {"start"}, false);
  int st = second.proc().Wait(10s);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << "a configuration problem";
  EXPECT_NE(second.proc().Stderr().find("KG_WORKER_NODE_NAME='alpha' is held by a live node: pid " +
                                        std::to_string(first.proc().pid())),
            std::string::npos)
      << second.proc().Stderr();
}

// Verifies two nodes started at once with one KG_WORKER_NODE_NAME never both run: exactly one serves and is the
// registry's entry, the other exits 2 naming the variable and the live holder (pid, host, heartbeat age). Role
// web, so no supervisor lock is involved: only the registry's compare-and-set claim decides. Both processes are
// released from one gate, so their start-ups (and claims) run side by side; several rounds.
TEST(Supervisor, TwoNodesStartedAtOnceWithOneNameExactlyOneRuns) {
  for (int round = 0; round < 8; ++round) {
    TempDir dir;
    std::map<std::string, std::string> env = {{"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "twin"}};
    int gate[2];
    ASSERT_EQ(pipe2(gate, O_CLOEXEC), 0);
    Node a(dir, env, {"start"}, false, gate[0]);
    Node b(dir, env, {"start"}, false, gate[0]);
    close(gate[0]);
    close(gate[1]);  // both start now
    ASSERT_TRUE(WaitFor([&] { return a.proc().Wait(0ms) != -1 || b.proc().Wait(0ms) != -1; }, 15s))
        << "neither was refused\n" << a.proc().Stderr() << b.proc().Stderr();
    Node& loser = a.proc().Exited() ? a : b;
    Node& winner = a.proc().Exited() ? b : a;
    ASSERT_TRUE(WaitFor([&] { auto r = winner.http().Get("/readyz"); return r && r->status == 200; }, 15s))
        << winner.proc().Stderr();
    EXPECT_FALSE(winner.proc().Exited());
    int st = loser.proc().Wait(0ms);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << loser.proc().Stderr();
    std::string err = loser.proc().Stderr();
    EXPECT_NE(err.find("KG_WORKER_NODE_NAME='twin' is held by a live node: pid " + std::to_string(winner.proc().pid()) +
                       " on host "),
              std::string::npos) << err;
    EXPECT_NE(err.find("s ago; stop that node or choose another KG_WORKER_NODE_NAME"), std::string::npos) << err;
    json w = winner.Get("/api/v1/workers");
    ASSERT_EQ(w["nodes"].size(), 1u) << w;
    EXPECT_EQ(w["nodes"][0]["pid"], winner.proc().pid()) << w;
  }
}

// Verifies which records of a name a starting node takes over: one of another host that still beats refuses it
// (exit 2); one of another host whose heartbeat is stale, and one of this host whose pid runs another program
// (here: the test itself, as after pid reuse), are taken over with a warning saying why.
TEST(Supervisor, NameOfAGoneOrStaleNodeIsTakenOver) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/data");
  auto seed = [&](const NodeRecord& r) {
    auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
    ASSERT_TRUE(store.ok());
    auto held = (*store)->GetNode(r.name);
    ASSERT_TRUE(held.ok());
    if (held->has_value()) {
      ASSERT_TRUE((*store)->RemoveNode(r.name, (**held).host, (**held).pid).ok());
    }
    ASSERT_TRUE(*(*store)->PutNodeIf(r, std::nullopt));
  };
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::map<std::string, std::string> env = {{"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "n"}};

  seed({"n", "web", "elsewhere", 4242, NowMs(), "[]", 60000});
  Node refused(dir, env, {"start"}, false);
  int st = refused.proc().Wait(15s);
  EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2) << refused.proc().Stderr();
  EXPECT_NE(refused.proc().Stderr().find("is held by a live node: pid 4242 on host elsewhere"), std::string::npos)
      << refused.proc().Stderr();

  seed({"n", "web", "elsewhere", 4242, NowMs() - 3 * 60000, "[]", 60000});
  auto stale = std::make_unique<Node>(dir, env);
  ASSERT_TRUE(stale->ready()) << stale->proc().Stderr();
  EXPECT_NE(stale->proc().Stderr().find("taking over name 'n' from pid 4242 on host elsewhere (no heartbeat for 18"),
            std::string::npos) << stale->proc().Stderr();
  ASSERT_TRUE(stale->proc().Signal(SIGTERM));
  ASSERT_NE(stale->proc().Wait(15s), -1);

  seed({"n", "web", host, getpid(), NowMs(), "[]", 60000});  // a live process here, but not kgflow
  Node reused(dir, env);
  ASSERT_TRUE(reused.ready()) << reused.proc().Stderr();
  EXPECT_NE(reused.proc().Stderr().find("taking over name 'n' from pid " + std::to_string(getpid()) +
                                        " on host " + host + " (its pid no longer runs kgflow)"),
            std::string::npos) << reused.proc().Stderr();
  EXPECT_EQ(reused.Get("/api/v1/workers")["nodes"][0]["pid"], reused.proc().pid());
}

// Rewrites the registry record of `name` (as a node of another host taking it over would) through the store
// API, retrying while the live node's own beats win the compare-and-set; `holder` nullopt removes the record
// (the new holder has stopped since).
void TakeOver(const TempDir& dir, const std::string& name, const std::optional<NodeRecord>& holder) {
  auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE(WaitFor([&] {
    auto cur = (*store)->GetNode(name);
    if (!cur.ok() || !cur->has_value()) return false;
    if (!holder) return (*store)->RemoveNode(name, (**cur).host, (**cur).pid).ok();
    auto put = (*store)->PutNodeIf(*holder, **cur);
    return put.ok() && *put;
  }, 10s));
}

// Verifies a node whose name another node took over stops, loudly, and never claims the name back: with the
// record rewritten under it (pid 4242 on host elsewhere, as after a stale takeover), its next beat stops its
// workers gracefully and it exits 2 naming the new holder, and the record stays the new holder's; a web node
// whose record was removed (the new holder has stopped since) exits 2 too and writes no record again.
TEST(Supervisor, NodeWhoseNameWasTakenOverStopsAndNeverReclaimsIt) {
  TempDir dir;
  auto beats = [](const std::string& name) -> std::map<std::string, std::string> {
    return {{"KG_WORKER_NODE_NAME", name}, {"KG_HEARTBEAT_SECONDS", "1"}};
  };
  Node node(dir, beats("taken"));
  ASSERT_TRUE(node.ready()) << node.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return node.Workers().size() == 1; }, 10s)) << node.proc().Stderr();
  pid_t worker = node.Workers().begin()->first;
  NodeRecord other{"taken", "worker", "elsewhere", 4242, NowMs(), "[]", 60000};
  TakeOver(dir, "taken", other);
  int st = node.proc().Wait(20s);
  ASSERT_NE(st, -1) << "still running with its name taken\n" << node.proc().Stderr();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << st << "\n" << node.proc().Stderr();
  std::string err = node.proc().Stderr();
  EXPECT_NE(err.find("KG_WORKER_NODE_NAME='taken' was taken over by pid 4242 on host elsewhere (role worker)"),
            std::string::npos) << err;
  EXPECT_NE(err.find("stopping this node's workers (graceful)"), std::string::npos) << err;
  EXPECT_NE(err.find("supervisor: all workers stopped"), std::string::npos) << err;
  EXPECT_FALSE(testing::Alive(worker)) << "its worker was stopped";
  auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
  ASSERT_TRUE(store.ok());
  auto rec = (*store)->GetNode("taken");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((**rec).pid, 4242) << "the new holder keeps the name";
  EXPECT_EQ((**rec).host, "elsewhere");

  std::map<std::string, std::string> web_env = beats("webby");
  web_env["NODE_ROLE"] = "web";
  Node web(dir, web_env);
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  TakeOver(dir, "webby", std::nullopt);
  st = web.proc().Wait(20s);
  ASSERT_NE(st, -1) << "still running with its record gone\n" << web.proc().Stderr();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << st << "\n" << web.proc().Stderr();
  EXPECT_NE(web.proc().Stderr().find("KG_WORKER_NODE_NAME='webby' was taken over by another node"), std::string::npos)
      << web.proc().Stderr();
  rec = (*store)->GetNode("webby");
  ASSERT_TRUE(rec.ok());
  EXPECT_FALSE(rec->has_value()) << "the name was claimed back by pid " << (**rec).pid;
}

// Verifies a web node and a worker node on one host with the default KG_WORKER_NODE_NAME have an entry each
// ("<host>-web", "<host>-worker", each with its own pid) that stays theirs beat after beat (they both used to be
// "worker-node", and /api/v1/workers flipped between them).
TEST(Supervisor, WebAndWorkerNodeOnOneHostKeepTheirOwnEntries) {
  TempDir dir;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  Node web(dir, {{"NODE_ROLE", "web"}, {"KG_HEARTBEAT_SECONDS", "1"}});
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  Node worker(dir, {{"KG_HEALTH_ADDR", "127.0.0.1:" + std::to_string(testing::FreePort())},
                    {"KG_HEARTBEAT_SECONDS", "1"}},
              {"worker"}, false);
  std::map<std::string, int64_t> beats;  // name -> heartbeat_at seen
  int fresh_beats = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        json w = web.Get("/api/v1/workers");
        if (w.is_null()) return false;
        std::map<std::string, int64_t> pids;
        for (const auto& n : w["nodes"]) pids[n["name"]] = n["pid"];
        EXPECT_LE(pids.size(), 2u) << w;
        if (pids.size() != 2) return false;
        EXPECT_EQ(pids[DefaultNodeName(host, NodeRole::kWeb)], web.proc().pid()) << w;
        EXPECT_EQ(pids[DefaultNodeName(host, NodeRole::kWorker)], worker.proc().pid()) << w;
        for (const auto& n : w["nodes"]) {
          int64_t at = n["heartbeat_at"];
          if (beats.count(n["name"]) && beats[n["name"]] != at) ++fresh_beats;
          beats[n["name"]] = at;
        }
        return fresh_beats >= 4;  // both entries beat twice more, each still its own
      },
      15s)) << web.Get("/api/v1/workers");
}

// Verifies a SIGKILLed node leaves the live nodes for "down" (marked stale) as soon as its heartbeat is
// late (more than 2 of its 1 s intervals), with its heartbeat age, and its processes shown as unknown
// (pid 0, last_pid the dead one), in /api/v1/workers and `kgflow workers`, not listed with live pids for ~30 s.
TEST(Supervisor, SigkilledNodeIsMarkedStaleWhenItsHeartbeatIsLate) {
  TempDir dir;
  Node observer(dir, {{"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "observer"}, {"KG_HEARTBEAT_SECONDS", "1"}});
  ASSERT_TRUE(observer.ready()) << observer.proc().Stderr();
  Node victim(dir, {{"KG_WORKER_NODE_NAME", "victim"}, {"KG_HEARTBEAT_SECONDS", "1"},
                    {"KG_HEALTH_ADDR", "127.0.0.1:" + std::to_string(testing::FreePort())}},
              {"worker"}, false);
  // The victim's entry, from "nodes" while it beats and from "down" once it is stale (never in both).
  auto entry = [&] {
    json w = observer.Get("/api/v1/workers");
    json found;
    if (!w.is_null()) {
      for (const char* list : {"nodes", "down"}) {
        for (const auto& n : w[list]) {
          if (n["name"] != "victim") continue;
          EXPECT_TRUE(found.is_null()) << "listed twice: " << w;
          EXPECT_EQ(n["stale"].get<bool>(), std::string(list) == "down") << w;
          found = n;
        }
      }
    }
    return found;
  };
  json node;
  ASSERT_TRUE(WaitFor([&] {
    node = entry();
    return !node.is_null() && !node["processes"].empty() && node["processes"][0]["pid"].get<int64_t>() > 0;
  }, 15s)) << node << victim.proc().Stderr();
  EXPECT_FALSE(node["stale"].get<bool>()) << node;
  EXPECT_EQ(node["heartbeat_interval_ms"], 1000) << node;
  int64_t worker_pid = node["processes"][0]["pid"];
  ASSERT_TRUE(victim.proc().Signal(SIGKILL));
  ASSERT_NE(victim.proc().Wait(5s), -1);
  // At every look the flag agrees with the age: stale exactly when the last beat is more than 2 of its 1 s
  // intervals old (never only ~30 s later), and the age keeps growing once the beats stopped.
  int64_t last_age = -1;
  ASSERT_TRUE(WaitFor([&] {
    node = entry();
    if (node.is_null()) return false;
    int64_t age = node["heartbeat_age_ms"].get<int64_t>();
    EXPECT_EQ(node["stale"].get<bool>(), age > 2000) << node;
    EXPECT_GE(age, last_age) << node;
    last_age = age;
    return node["stale"].get<bool>();
  }, 10s)) << node;
  EXPECT_GT(node["heartbeat_age_ms"].get<int64_t>(), 2000) << node;
  ASSERT_EQ(node["processes"].size(), 1u) << node;
  EXPECT_EQ(node["processes"][0]["pid"], 0) << node;
  EXPECT_EQ(node["processes"][0]["last_pid"], worker_pid) << node;
  EXPECT_EQ(node["processes"][0]["state"], "unknown") << node;

  testing::Process cli({"workers"}, {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(observer.port())}}, dir.path());
  ASSERT_EQ(WEXITSTATUS(cli.Wait(10s)), 0) << cli.Stderr();
  std::string out = cli.Stdout();
  EXPECT_NE(out.find("node victim (role worker"), std::string::npos) << out;
  EXPECT_NE(out.find("DOWN (no heartbeat for over 2 s; processes unknown)"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown"), std::string::npos) << out;
  EXPECT_EQ(out.find(std::to_string(worker_pid)), std::string::npos) << "no dead pid shown as a process\n" << out;
  EXPECT_NE(out.find("node observer (role web"), std::string::npos) << out;
}

// Verifies RESTARTS and LAST_EXIT are per process slot, with workers killed by real signals: a worker never
// killed shows 0 and no last exit while its killed neighbour's replacement shows 1 and "killed by SIGKILL"
// (then 2 after another kill); a scale-down removes a slot instead of labelling fresh processes "scaled down".
TEST(Supervisor, RestartsAndLastExitArePerProcessSlot) {
  TempDir dir;
  Node n(dir, {{"KG_WORKERS_PER_PROVIDER", "2"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  auto procs = [&] {
    std::map<int64_t, json> out;
    json w = n.Get("/api/v1/workers");
    if (w.is_null() || w["nodes"].empty()) return out;
    for (const auto& p : w["nodes"][0]["processes"]) out[p["pid"].get<int64_t>()] = p;
    return out;
  };
  auto all_idle = [&](size_t k, std::map<int64_t, json>* seen) {
    *seen = procs();
    if (seen->size() != k) return false;
    for (const auto& [pid, p] : *seen) {
      if (pid <= 0 || p["state"] != "idle") return false;
    }
    return true;
  };
  std::map<int64_t, json> p;
  ASSERT_TRUE(WaitFor([&] { return all_idle(2, &p); }, 10s));
  for (const auto& [pid, v] : p) {
    EXPECT_EQ(v["restarts"], 0) << v;
    EXPECT_EQ(v["last_exit"], "") << v;
  }
  int64_t kept = p.begin()->first, victim = p.rbegin()->first;
  ASSERT_EQ(kill(static_cast<pid_t>(victim), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return all_idle(2, &p) && !p.count(victim); }, 10s));
  ASSERT_TRUE(p.count(kept));
  EXPECT_EQ(p[kept]["restarts"], 0) << "never killed";
  EXPECT_EQ(p[kept]["last_exit"], "");
  int64_t replacement = 0;
  for (const auto& [pid, v] : p) {
    if (pid != kept) replacement = pid;
  }
  EXPECT_EQ(p[replacement]["restarts"], 1) << p[replacement];
  EXPECT_EQ(p[replacement]["last_exit"], "killed by SIGKILL") << p[replacement];

  ASSERT_EQ(kill(static_cast<pid_t>(replacement), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return all_idle(2, &p) && !p.count(replacement); }, 10s));
  EXPECT_EQ(p[kept]["restarts"], 0);
  for (const auto& [pid, v] : p) {
    if (pid != kept) {
      EXPECT_EQ(v["restarts"], 2) << "the same slot, killed twice: " << v;
    }
  }

  // `kgflow workers` shows the never-killed worker's row with 0 and no last exit.
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::Process cli({"workers"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(cli.Wait(10s)), 0);
  std::string out = cli.Stdout();
  size_t at = out.find(fmt::format("{:>8} builtin", kept));
  ASSERT_NE(at, std::string::npos) << out;
  std::string row = out.substr(at, out.find('\n', at) - at);
  EXPECT_EQ(row.substr(row.size() - 4), "0  -") << row;
  EXPECT_NE(out.find("2  killed by SIGKILL"), std::string::npos) << out;

  // Scale down to 1 and up to 2 again: the fresh process has a fresh slot.
  ASSERT_TRUE(n.http().Put("/api/v1/providers/builtin/processes", R"({"per_node":1})", "application/json"));
  ASSERT_TRUE(WaitFor([&] { return all_idle(1, &p); }, 10s));
  std::set<int64_t> before;
  for (const auto& [pid, _] : p) before.insert(pid);
  ASSERT_TRUE(n.http().Put("/api/v1/providers/builtin/processes", R"({"per_node":2})", "application/json"));
  ASSERT_TRUE(WaitFor([&] { return all_idle(2, &p); }, 10s));
  for (const auto& [pid, v] : p) {
    EXPECT_EQ(v["last_exit"].get<std::string>().find("scaled down"), std::string::npos) << v;
    if (!before.count(pid)) {
      EXPECT_EQ(v["restarts"], 0) << "a fresh slot: " << v;
      EXPECT_EQ(v["last_exit"], "") << v;
    }
  }
  // The provider's own count of replacements (a metric) still counts both kills.
  auto m = n.http().Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("kg_worker_restarts_total{provider=\"builtin\"} 2"), std::string::npos) << m->body;
}

// Verifies which cap binds, as the scale answer names it: none, the total (also when the per-provider cap has
// its value, which it defaults to), the total shared with another provider, or a lower per-provider cap.
TEST(Supervisor, BindingCapIsTheOneThatActuallyBinds) {
  Config c;
  c.enabled_providers = {"alpha", "beta"};
  c.max_total_processes = 3;
  c.max_processes_per_provider = 3;
  EXPECT_EQ(BindingCap(c, {{"alpha", 0}, {"beta", 3}}, "beta").cap, "");
  EXPECT_EQ(BindingCap(c, {{"alpha", 0}, {"beta", 5}}, "beta").cap, "KG_MAX_TOTAL_PROCESSES");
  CapBinding shared = BindingCap(c, {{"alpha", 1}, {"beta", 5}}, "beta");
  EXPECT_EQ(shared.cap, "KG_MAX_TOTAL_PROCESSES");
  EXPECT_EQ(shared.value, 3);
  EXPECT_EQ(shared.reason, "KG_MAX_TOTAL_PROCESSES=3 (1 taken by other providers)");
  c.max_processes_per_provider = 2;
  CapBinding per = BindingCap(c, {{"alpha", 0}, {"beta", 5}}, "beta");
  EXPECT_EQ(per.cap, "KG_MAX_PROCESSES_PER_PROVIDER");
  EXPECT_EQ(per.value, 2);
  // alpha 2 and beta 5 with caps 3 total / 2 each: beta gets 1; the total binds (2 would pass the per-provider cap).
  EXPECT_EQ(BindingCap(c, {{"alpha", 2}, {"beta", 5}}, "beta").cap, "KG_MAX_TOTAL_PROCESSES");
}

// Verifies the standalone worker node: banner, health endpoint, workers, clean stop; bad env exits 2.
TEST(Supervisor, StandaloneWorkerNode) {
  TempDir dir;
  int health = testing::FreePort();
  Node w(dir, {{"KG_HEALTH_ADDR", "127.0.0.1:" + std::to_string(health)}, {"KG_WORKER_NODE_NAME", "w2"},
               {"KG_API_TOKEN", "very-secret-token"}},
         {"worker"}, false);
  httplib::Client c("127.0.0.1", health);
  ASSERT_TRUE(WaitFor([&] { auto r = c.Get("/healthz"); return r && r->status == 200; }, 10s)) << w.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return w.Workers().size() == 1; }, 5s));
  ASSERT_TRUE(WaitFor([&] { return w.proc().Stderr().find("spawned worker pid=") != std::string::npos; }, 5s));
  auto r = c.Post("/api/v1/tasks", R"({"text":"x"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 202) << "no task API on a worker node";
  std::string err = w.proc().Stderr();
  EXPECT_NE(err.find("worker node | node=w2 role=worker"), std::string::npos) << err;
  EXPECT_NE(err.find("cap 10 per provider"), std::string::npos);
  EXPECT_NE(err.find("spawned worker pid="), std::string::npos);
  EXPECT_EQ(err.find("very-secret-token"), std::string::npos);
  ASSERT_TRUE(w.proc().Signal(SIGINT));
  int st = w.proc().Wait(15s);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);

  Node bad(dir, {{"KG_WORKERS_PER_PROVIDER", "many"}}, {"worker"}, false);
  st = bad.proc().Wait(10s);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
  EXPECT_NE(bad.proc().Stderr().find("KG_WORKERS_PER_PROVIDER='many'"), std::string::npos);
}

}  // namespace
}  // namespace kg
