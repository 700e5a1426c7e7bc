// Peak resident memory of a node while it serves GET /api/v1/graph/export of a large graph,
// in both formats. The graph (RELATIONS relations, 10 per chunk) is merged straight into a
// fresh SQLite graph store, then a web-only node serves it.
// Usage: export_bench [relations] [kgflow binary]
//   The binary defaults to the one built with this tree; pass an older build to compare.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "result.h"
#include "graph/graph_store.h"
#include "testing/testing.h"

extern char** environ;

using namespace std::chrono;

namespace {

constexpr int kRelationsPerChunk = 10;
constexpr int kPeople = 2000;

// Resets the peak (VmHWM) of `pid` to its current RSS (Linux >= 4.0, same user).
bool ResetPeak(pid_t pid) {
  std::ofstream f("/proc/" + std::to_string(pid) + "/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

kg::Status BuildGraph(const std::string& path, int relations) {
  auto g = kg::OpenSqliteGraphStore(path);
  if (!g.ok()) return g.status();
  int chunks = (relations + kRelationsPerChunk - 1) / kRelationsPerChunk;
  std::vector<kg::GraphBatch> batches;
  int r = 0;
  for (int c = 0; c < chunks; ++c) {
    kg::GraphBatch b;
    std::string doc = "doc" + std::to_string(c / 100);
    b.doc = {doc, "Document " + doc, doc + ".txt"};
    b.chunk = {doc + ":" + std::to_string(c % 100), doc, c % 100,
               "Chunk " + std::to_string(c) + ": Mara Voss founded Helix Dynamics in 2014 and led it for years."};
    for (int k = 0; k < kRelationsPerChunk && r < relations; ++k, ++r) {
      std::string p = "person:p" + std::to_string(r % kPeople);
      std::string o = "organization:o" + std::to_string(r / kPeople);
      b.entities.push_back({p, "Person " + std::to_string(r % kPeople), "Person", "a person", 0});
      b.entities.push_back({o, "Org " + std::to_string(r / kPeople), "Organization", "", 0});
      b.relations.push_back({p, o, "WORKS_AT", {}, 0});
    }
    batches.push_back(std::move(b));
    if (batches.size() == 1000 || c + 1 == chunks) {
      kg::Status s = (*g)->Merge(batches);
      if (!s.ok()) return s;
      batches.clear();
    }
  }
  return kg::Status::Ok();
}

struct Node {
  pid_t pid = -1;
  int port = 0;
};

Node StartNode(const std::string& binary, const std::string& dir) {
  Node n;
  n.port = kg::testing::FreePort();
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("KG_", 0) != 0 && kv.rfind("NODE_ROLE=", 0) != 0) env_s.push_back(kv);
  }
  env_s.push_back("KG_DATA_DIR=" + dir);
  env_s.push_back("KG_HTTP_ADDR=127.0.0.1:" + std::to_string(n.port));
  env_s.push_back("NODE_ROLE=web");
  std::vector<std::string> args_s = {binary, "start"};
  std::vector<char*> argv, envp;
  for (auto& a : args_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& kv : env_s) envp.push_back(kv.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string log = dir + "/node.log";
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  if (posix_spawn(&n.pid, binary.c_str(), &fa, nullptr, argv.data(), envp.data()) != 0) n.pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return n;
}

// One export: bytes received, seconds, RSS before, peak RSS while serving (kB).
void Measure(const Node& n, const std::string& format, const std::string& label) {
  httplib::Client cli("127.0.0.1", n.port);
  cli.set_read_timeout(600);
  long before = kg::testing::StatusKb(n.pid, "VmRSS");
  bool reset = ResetPeak(n.pid);
  std::atomic<bool> done{false};
  long polled_peak = before;
  std::thread poll([&] {
    while (!done) {
      polled_peak = std::max(polled_peak, kg::testing::StatusKb(n.pid, "VmRSS"));
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  size_t bytes = 0;
  auto t0 = steady_clock::now();
  auto r = cli.Get("/api/v1/graph/export?format=" + format, [&](const char*, size_t len) {
    bytes += len;
    return true;
  });
  double secs = duration<double>(steady_clock::now() - t0).count();
  done = true;
  poll.join();
  long hwm = kg::testing::StatusKb(n.pid, "VmHWM");
  long peak = reset ? std::max(hwm, polled_peak) : polled_peak;
  std::printf("export_bench %-8s %-7s status=%d bytes=%zu seconds=%.2f rss_before_mb=%.1f peak_rss_mb=%.1f "
              "peak_over_before_mb=%.1f%s\n",
              label.c_str(), format.c_str(), r ? r->status : -1, bytes, secs, before / 1024.0, peak / 1024.0,
              (peak - before) / 1024.0, reset ? "" : " (polled VmRSS; clear_refs refused)");
  std::fflush(stdout);
  if (label == "current" && r && r->status == 200) {
    kg::bench::Emit("export_" + format + ".peak_rss_mb", peak / 1024.0, "MB", "single", 1);
    kg::bench::Emit("export_" + format + ".peak_over_idle_mb", (peak - before) / 1024.0, "MB", "single", 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int relations = argc > 1 ? std::atoi(argv[1]) : 200000;
  std::string binary = argc > 2 ? argv[2] : kg::testing::KgflowBinary();
  std::string label = argc > 2 ? "given" : "current";
  kg::testing::TempDir dir;
  auto t0 = steady_clock::now();
  kg::Status s = BuildGraph(dir.path() + "/graph.db", relations);
  if (!s.ok()) {
    std::fprintf(stderr, "export_bench: building the graph: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("export_bench graph of %d relations built in %.1f s (%s)\n", relations,
              duration<double>(steady_clock::now() - t0).count(), binary.c_str());
  if (label == "current") kg::bench::Emit("export.relations", relations, "relations", "single", 1);
  Node n = StartNode(binary, dir.path());
  if (n.pid < 0) {
    std::fprintf(stderr, "export_bench: cannot start %s\n", binary.c_str());
    return 1;
  }
  httplib::Client probe("127.0.0.1", n.port);
  bool ready = kg::testing::WaitFor(
      [&] {
        auto r = probe.Get("/readyz");
        return r && r->status == 200;
      },
      seconds(30));
  int rc = 0;
  if (ready) {
    Measure(n, "json", label);
    Measure(n, "graphml", label);
  } else {
    std::fprintf(stderr, "export_bench: node not ready: %s\n", kg::testing::ReadFile(dir.path() + "/node.log").c_str());
    rc = 1;
  }
  kill(n.pid, SIGKILL);
  int st = 0;
  waitpid(n.pid, &st, 0);
  return rc;
}
