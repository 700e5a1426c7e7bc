// Supervisor benchmarks on this machine (real processes, real signals):
//   respawn   SIGKILL of a worker -> its replacement ready to lease (the supervisor has read its "ready")
//   rerun     SIGKILL of a worker holding a chunk -> that chunk leased again by another worker
//   pss       PSS and RSS of an idle worker process
//   idle_cpu  CPU used by a node with 10 idle workers over a window
//   crashloop spawns per minute of a provider whose workers exit at start
// Usage: supervisor_bench [iterations] [idle_seconds] [crash_seconds]
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <spdlog/spdlog.h>

#include "result.h"
#include "config/config.h"
#include "pipeline/document.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/supervisor.h"
#include "testing/testing.h"

using namespace std::chrono;
using kg::testing::TempDir;

namespace {

double Ms(steady_clock::duration d) { return duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

kg::Config ConfigFor(const TempDir& dir, const std::string& toml) {
  kg::testing::WriteFile(dir.File("kg.toml"), toml);
  setenv("KG_DATA_DIR", (dir.path() + "/data").c_str(), 1);
  setenv("KG_CONFIG", dir.File("kg.toml").c_str(), 1);
  setenv("KG_LOG_LEVEL", "warn", 1);
  setenv("KG_LEASE_SECONDS", "300", 1);
  auto c = kg::LoadConfig(kg::ProcessEnv());
  if (!c.ok()) {
    std::fprintf(stderr, "config: %s\n", c.status().message().c_str());
    std::exit(1);
  }
  return std::move(c).value();
}

// The only live worker with state idle, or 0.
pid_t IdleWorker(kg::Supervisor& s, pid_t not_this = 0) {
  for (const auto& p : s.Snapshot()) {
    if (p.pid && p.pid != not_this && p.state == "idle") return static_cast<pid_t>(p.pid);
  }
  return 0;
}

template <typename F>
bool Poll(F f, milliseconds timeout) {
  auto end = steady_clock::now() + timeout;
  while (steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(microseconds(100));
  }
  return false;
}

// A supervisor in this process (so the bench sees exactly what the guard sees), with
// its own data directory and backends.
struct InProcessNode {
  TempDir dir;
  kg::Config config;
  std::unique_ptr<kg::Queue> queue;
  std::unique_ptr<kg::TaskStore> store;
  std::unique_ptr<kg::Supervisor> supervisor;

  explicit InProcessNode(const std::string& toml) : config(ConfigFor(dir, toml)) {
    queue = std::move(kg::OpenQueue(config)).value();
    store = std::move(kg::OpenTaskStore(config)).value();
  }
  void Start() {
    supervisor = std::move(kg::Supervisor::Create(config, kg::testing::KgflowBinary())).value();
    supervisor->Start();
  }
  ~InProcessNode() {
    if (supervisor) {
      supervisor->Stop(true);
      supervisor->Wait();
    }
  }
};

// A p99 is printed only from >= 200 samples; with fewer the tail is called what it is, the max.
void PrintLatency(const char* name, const char* label, std::vector<double> lat) {
  std::sort(lat.begin(), lat.end());
  double median = lat[lat.size() / 2];
  if (lat.size() >= 200) {
    std::printf("%-48s median %.1f ms  p99 %.1f ms  max %.1f ms  (n=%zu)\n", label, median,
                lat[lat.size() * 99 / 100], lat.back(), lat.size());
  } else {
    std::printf("%-48s median %.1f ms  max %.1f ms  (n=%zu; p99 needs >= 200)\n", label, median, lat.back(), lat.size());
  }
  kg::bench::EmitDistribution(name, lat, "ms");
}

void Respawn(int iterations) {
  std::vector<double> lat;
  for (int i = 0; i < iterations; ++i) {
    InProcessNode n("[providers.builtin]\n");
    n.Start();
    pid_t first = 0;
    if (!Poll([&] { return (first = IdleWorker(*n.supervisor)) != 0; }, seconds(10))) std::exit(2);
    auto t0 = steady_clock::now();
    kill(first, SIGKILL);
    if (!Poll([&] { return IdleWorker(*n.supervisor, first) != 0; }, seconds(10))) std::exit(3);
    lat.push_back(Ms(steady_clock::now() - t0));
  }
  PrintLatency("respawn_ms", "respawn   SIGKILL -> replacement ready to lease", lat);
}

void Rerun(int iterations) {
  std::vector<double> lat;
  for (int i = 0; i < iterations; ++i) {
    InProcessNode n("[providers.slow]\ndelay_ms = 60000\n");
    auto plan = kg::PlanTask("t", "slow", "", "bench", "", "Mara Voss founded Helix Dynamics.", {1200, 100});
    (void)n.queue->Enqueue(plan.items);
    n.Start();
    std::string owner;
    auto leased_by_other = [&](const std::string& not_this) {
      auto info = n.queue->Get("t:0");
      if (!info.ok() || info->state != kg::ChunkState::kLeased || info->owner == not_this) return false;
      owner = info->owner;
      return true;
    };
    if (!Poll([&] { return leased_by_other(""); }, seconds(10))) std::exit(4);
    pid_t victim = 0;
    for (const auto& p : n.supervisor->Snapshot()) victim = p.pid ? static_cast<pid_t>(p.pid) : victim;
    std::string first_owner = owner;
    auto t0 = steady_clock::now();
    kill(victim, SIGKILL);
    if (!Poll([&] { return leased_by_other(first_owner); }, seconds(30))) std::exit(5);
    lat.push_back(Ms(steady_clock::now() - t0));
  }
  PrintLatency("rerun_ms", "rerun     SIGKILL -> its chunk running again", lat);
}

double CpuOfTree(pid_t root) {
  kg::ProcStats st;
  double total = kg::ReadProcStats(root, false, &st) ? st.cpu_seconds : 0;
  for (pid_t c : kg::testing::ChildrenOf(root)) {
    if (kg::ReadProcStats(c, false, &st)) total += st.cpu_seconds;
  }
  return total;
}

// PSS (shared pages split among the processes mapping them) and private dirty memory of
// idle workers in a `kgflow start` node of `workers` workers.
void Memory(int workers) {
  TempDir dir;
  kg::testing::Node n(dir, {{"KG_WORKERS_PER_PROVIDER", std::to_string(workers)}, {"KG_LOG_LEVEL", "warn"}});
  if (!n.ready() || !Poll([&] { return n.Workers().size() == static_cast<size_t>(workers); }, seconds(20))) {
    std::exit(6);
  }
  std::this_thread::sleep_for(seconds(2));
  std::vector<double> pss, uss, rss;
  for (auto& [pid, _] : n.Workers()) {
    kg::ProcStats st;
    if (kg::ReadProcStats(pid, true, &st)) {
      pss.push_back(static_cast<double>(st.pss_bytes) / 1048576.0);
      rss.push_back(static_cast<double>(st.rss_bytes) / 1048576.0);
    }
    std::string rollup = kg::testing::ReadFile("/proc/" + std::to_string(pid) + "/smaps_rollup");
    auto at = rollup.find("Private_Dirty:");
    if (at != std::string::npos) uss.push_back(std::atof(rollup.c_str() + at + 14) / 1024.0);
  }
  double p = Median(pss), u = Median(uss), r = Median(rss);
  std::printf("memory    idle worker, node of %2d workers         PSS %.2f MB  private dirty %.2f MB  RSS %.2f MB (medians)\n",
              workers, p, u, r);
  std::string tag = "idle_worker_of_" + std::to_string(workers);
  kg::bench::Emit(tag + ".pss_mb", p, "MB", "median", pss.size());
  kg::bench::Emit(tag + ".private_dirty_mb", u, "MB", "median", uss.size());
  kg::bench::Emit(tag + ".rss_mb", r, "MB", "median", rss.size());
}

void IdleCpu(int seconds_window) {
  TempDir dir;
  kg::testing::Node n(dir, {{"KG_WORKERS_PER_PROVIDER", "10"}, {"KG_LOG_LEVEL", "warn"}});
  if (!n.ready() || !Poll([&] { return n.Workers().size() == 10; }, seconds(20))) std::exit(6);
  std::this_thread::sleep_for(seconds(2));
  double before = CpuOfTree(n.proc().pid());
  auto t0 = steady_clock::now();
  std::this_thread::sleep_for(seconds(seconds_window));
  double used = CpuOfTree(n.proc().pid()) - before;
  double wall = duration<double>(steady_clock::now() - t0).count();
  std::printf("idle_cpu  node + 10 idle workers over %.0f s       %.3f CPU-s = %.3f %% of one core\n", wall, used,
              100.0 * used / wall);
  kg::bench::Emit("idle_node_10_workers.cpu_percent", 100.0 * used / wall, "% of one core", "window", 1);
}

void CrashLoop(int seconds_window) {
  for (const char* quarantine : {"300", "5"}) {
    TempDir dir;
    kg::testing::WriteFile(dir.File("kg.toml"), "[providers.bad]\nfault = \"exit_on_start\"\n");
    kg::testing::Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}, {"KG_QUARANTINE_SECONDS", quarantine}});
    std::this_thread::sleep_for(seconds(seconds_window));
    std::string err = n.proc().Stderr();
    size_t spawns = 0;
    for (size_t p = 0; (p = err.find("spawned worker", p)) != std::string::npos; ++p) ++spawns;
    std::printf("crashloop KG_QUARANTINE_SECONDS=%-3s: %zu spawns in %d s = %.1f spawns/min\n", quarantine, spawns,
                seconds_window, 60.0 * static_cast<double>(spawns) / seconds_window);
    kg::bench::Emit(std::string("crashloop_quarantine_") + quarantine + "s.spawns", static_cast<double>(spawns),
                    "spawns in " + std::to_string(seconds_window) + " s", "window", 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  kg::BlockSupervisorSignals();
  spdlog::set_level(spdlog::level::off);  // the in-process supervisors' logs would drown the figures
  int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
  int idle_seconds = argc > 2 ? std::atoi(argv[2]) : 20;
  int crash_seconds = argc > 3 ? std::atoi(argv[3]) : 30;
  std::printf("# supervisor_bench on %u cores; kgflow %s\n", std::thread::hardware_concurrency(), KG_VERSION);
  Respawn(iterations);
  Rerun(iterations);
  Memory(1);
  Memory(4);
  Memory(10);
  IdleCpu(idle_seconds);
  CrashLoop(crash_seconds);
  return 0;
}
