// Queue overhead without a provider: enqueue N chunks, then drain them from 2 threads that
// each lease batches of 16 and ack every chunk, for the SQLite queue and the Redis queue
// (a private redis-server started by scripts/test_servers.sh, persistence off). Prints one
// JSON object per backend with the medians of `runs` runs, and RESULT lines (result.h).
// Usage: queue_bench [chunks=20000] [runs=3]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "queue/queue.h"
#include "result.h"
#include "testing/servers.h"
#include "testing/testing.h"

using namespace std::chrono;

namespace {

constexpr int kBatch = 16;
constexpr int kThreads = 2;
constexpr size_t kEnqueueCall = 1000;  // items per Enqueue call (a document's chunks)

struct Run {
  double enqueue_per_s = 0, drain_per_s = 0, total_per_s = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool Once(kg::Queue& q, int n, const std::string& task, Run* out) {
  std::vector<kg::ChunkItem> items;
  auto t0 = steady_clock::now();
  for (int i = 0; i < n; ++i) {
    items.push_back({task + ":" + std::to_string(i), task, "bench", i, R"({"text":"a short chunk of text"})"});
    if (items.size() == kEnqueueCall || i == n - 1) {
      kg::Status s = q.Enqueue(items);
      if (!s.ok()) {
        std::fprintf(stderr, "enqueue: %s\n", s.message().c_str());
        return false;
      }
      items.clear();
    }
  }
  auto t1 = steady_clock::now();
  std::atomic<int> acked{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string owner = "bench-" + std::to_string(t);
      while (!failed) {
        auto r = q.LeaseChunks("bench", owner, kBatch, 60000, false);
        if (!r.ok()) {
          std::fprintf(stderr, "lease: %s\n", r.status().message().c_str());
          failed = true;
          return;
        }
        if (r->empty()) return;
        for (const auto& l : *r) {
          kg::Status s = q.Ack(l.chunk_id, l.token);
          if (!s.ok()) {
            std::fprintf(stderr, "ack: %s\n", s.message().c_str());
            failed = true;
            return;
          }
          ++acked;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  auto t2 = steady_clock::now();
  if (failed || acked != n) {
    std::fprintf(stderr, "acked %d of %d\n", acked.load(), n);
    return false;
  }
  auto secs = [](auto d) { return duration<double>(d).count(); };
  out->enqueue_per_s = n / secs(t1 - t0);
  out->drain_per_s = n / secs(t2 - t1);
  out->total_per_s = n / secs(t2 - t0);
  return true;
}

bool Bench(const std::string& name, const std::function<std::unique_ptr<kg::Queue>(int)>& open, int n, int runs) {
  std::vector<double> enq, drain, total;
  for (int r = 0; r < runs; ++r) {
    auto q = open(r);
    if (!q) return false;
    Run one;
    if (!Once(*q, n, "t" + std::to_string(r), &one)) return false;
    enq.push_back(one.enqueue_per_s);
    drain.push_back(one.drain_per_s);
    total.push_back(one.total_per_s);
  }
  std::printf("{\"backend\": \"%s\", \"chunks\": %d, \"runs\": %d, \"threads\": %d, \"lease_batch\": %d, "
              "\"enqueue_chunks_per_s\": %.0f, \"lease_ack_chunks_per_s\": %.0f, \"end_to_end_chunks_per_s\": %.0f}\n",
              name.c_str(), n, runs, kThreads, kBatch, Median(enq), Median(drain), Median(total));
  kg::bench::Emit("queue." + name + ".enqueue_chunks_per_s", Median(enq), "chunks/s", "median", enq.size());
  kg::bench::Emit("queue." + name + ".lease_ack_chunks_per_s", Median(drain), "chunks/s", "median", drain.size());
  kg::bench::Emit("queue." + name + ".end_to_end_chunks_per_s", Median(total), "chunks/s", "median", total.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  if (n <= 0 || runs <= 0) {
    std::fprintf(stderr, "usage: queue_bench [chunks>0] [runs>0]\n");
    return 2;
  }
  kg::testing::TempDir dir;
  bool ok = Bench("sqlite", [&](int r) -> std::unique_ptr<kg::Queue> {
    auto q = kg::OpenSqliteQueue(dir.path() + "/queue" + std::to_string(r) + ".db", kg::QueueOptions{});
    if (!q.ok()) std::fprintf(stderr, "%s\n", q.status().message().c_str());
    return q.ok() ? std::move(q).value() : nullptr;
  }, n, runs);
  auto server = kg::testing::StartServer("redis", dir.path() + "/redis");
  if (server.port <= 0) return 1;
  ok = ok && Bench("redis", [&](int r) -> std::unique_ptr<kg::Queue> {
    kg::RedisEndpoint at;
    at.host = "127.0.0.1";
    at.port = server.port;
    at.ns = "bench" + std::to_string(r);
    auto q = kg::OpenRedisQueue(at, kg::QueueOptions{});
    if (!q.ok()) std::fprintf(stderr, "%s\n", q.status().message().c_str());
    return q.ok() ? std::move(q).value() : nullptr;
  }, n, runs);
  kg::testing::StopServer(server);
  return ok ? 0 : 1;
}
