// Graph merge throughput: the batches of CHUNKS builtin-provider chunks (planned, extracted
// and built the way a worker does it) merged into a fresh SQLite graph and into a fresh
// MySQL graph on a private mariadbd, BATCH batches per Merge call as a worker sends them.
// Batches/s, median of RUNS runs per backend, each into an empty graph; and, since wall time
// on a shared machine depends on its load, the CPU time each batch costs (this process, plus
// mariadbd's for MySQL, from /proc).
// Usage: graph_merge_bench [chunks] [batch] [runs]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "graph/graph_store.h"
#include "graph_batches.h"
#include "mysql/mysql.h"
#include "result.h"
#include "testing/servers.h"
#include "testing/testing.h"

using namespace std::chrono;

namespace {

// CPU seconds of this process.
double SelfCpu() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// CPU seconds (user + system) of process `pid`, from /proc/PID/stat; 0 when pid <= 0.
double ProcCpu(int64_t pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // fields from 3 (state) on
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Figures {
  double batches_per_s = 0, cpu_ms_per_batch = 0;
};

// Merges `batches` into `g`, `per_merge` per call; `server` is the pid whose CPU counts too.
Figures MergeAll(kg::GraphStore& g, const std::vector<kg::GraphBatch>& batches, size_t per_merge,
                 int64_t server = 0) {
  const double cpu0 = SelfCpu() + ProcCpu(server);
  auto t0 = steady_clock::now();
  for (size_t i = 0; i < batches.size(); i += per_merge) {
    std::vector<kg::GraphBatch> group(batches.begin() + i, batches.begin() + std::min(batches.size(), i + per_merge));
    kg::Status s = g.Merge(group);
    if (!s.ok()) {
      std::fprintf(stderr, "merge: %s\n", s.message().c_str());
      std::exit(1);
    }
  }
  Figures f;
  f.batches_per_s = batches.size() / duration<double>(steady_clock::now() - t0).count();
  f.cpu_ms_per_batch = (SelfCpu() + ProcCpu(server) - cpu0) * 1000 / batches.size();
  return f;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int chunks = argc > 1 ? std::atoi(argv[1]) : 2000;
  const size_t per_merge = argc > 2 ? std::atoi(argv[2]) : 32;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  const std::vector<kg::GraphBatch> batches = kg::bench::BuildBatches(chunks);
  size_t entities = 0, relations = 0;
  for (const auto& b : batches) {
    entities += b.entities.size();
    relations += b.relations.size();
  }
  std::printf("# %zu batches (%zu entity and %zu relation rows), %zu per Merge, %d runs\n", batches.size(), entities,
              relations, per_merge, runs);

  kg::testing::TempDir dir;
  std::vector<double> sqlite, mysql, sqlite_cpu, mysql_cpu;
  for (int r = 0; r < runs; ++r) {
    auto g = kg::OpenSqliteGraphStore(dir.File("graph" + std::to_string(r) + ".db"));
    if (!g.ok()) return std::fprintf(stderr, "sqlite: %s\n", g.status().message().c_str()), 1;
    Figures f = MergeAll(**g, batches, per_merge);
    sqlite.push_back(f.batches_per_s);
    sqlite_cpu.push_back(f.cpu_ms_per_batch);
    std::printf("sqlite run %d: %.0f batches/s, %.3f CPU ms per batch\n", r + 1, f.batches_per_s, f.cpu_ms_per_batch);
  }
  kg::testing::ServerProcess server = kg::testing::StartServer("mariadb", dir.File("mariadb"));
  if (server.port == 0) return 1;
  for (int r = 0; r < runs; ++r) {
    kg::MysqlEndpoint e{"127.0.0.1", server.port, kg::testing::kMysqlUser, kg::testing::kMysqlPassword,
                        "bench" + std::to_string(r)};
    auto g = kg::OpenMysqlGraphStore(e);
    if (!g.ok()) {
      std::fprintf(stderr, "mysql: %s\n", g.status().message().c_str());
      kg::testing::StopServer(server);
      return 1;
    }
    Figures f = MergeAll(**g, batches, per_merge, server.pid);
    mysql.push_back(f.batches_per_s);
    mysql_cpu.push_back(f.cpu_ms_per_batch);
    std::printf("mysql run %d: %.0f batches/s, %.3f CPU ms per batch (client + mariadbd)\n", r + 1, f.batches_per_s,
                f.cpu_ms_per_batch);
  }
  kg::testing::StopServer(server);
  kg::bench::Emit("graph_merge.sqlite.batches_per_s", Median(sqlite), "batches/s", "median", sqlite.size());
  kg::bench::Emit("graph_merge.mysql.batches_per_s", Median(mysql), "batches/s", "median", mysql.size());
  kg::bench::Emit("graph_merge.sqlite.cpu_ms_per_batch", Median(sqlite_cpu), "ms", "median", sqlite_cpu.size());
  kg::bench::Emit("graph_merge.mysql.cpu_ms_per_batch", Median(mysql_cpu), "ms", "median", mysql_cpu.size());
  return 0;
}
