// Throughput of one node with the builtin provider: a generated document of many chunks,
// submitted over HTTP, timed until the task is done.
// Usage: pipeline_bench [chunks] [workers_per_provider] [runs]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "result.h"
#include "testing/testing.h"

using namespace std::chrono;

namespace {

// Prose with distinct names per paragraph, so the graph grows with the input.
std::string Document(int chunks) {
  static const char* kFirst[] = {"Mara", "Tomas", "Ingrid", "Amara", "Lena", "Oskar", "Ravi", "Nadia"};
  static const char* kLast[] = {"Voss", "Reyes", "Halvorsen", "Okafor", "Fischer", "Brandt", "Menon", "Petrova"};
  static const char* kOrg[] = {"Dynamics", "Robotics", "Capital", "Labs", "Industries", "Group", "Bank", "Institute"};
  std::string text;
  for (int i = 0; i < chunks; ++i) {
    std::string n = std::to_string(i);
    std::string person = std::string(kFirst[i % 8]) + " " + kLast[(i / 8) % 8] + "son" + n;
    std::string org = "Helix" + n + " " + kOrg[i % 8];
    std::string other = "Quillon" + n + " " + kOrg[(i + 3) % 8];
    text += person + " founded " + org + " in 2014. " + org + " is headquartered in Port Avalon" + n + " City. " +
            person + " is the chief executive of " + org + ". " + other + " invested in " + org + ". " + org +
            " partnered with " + other + " to build warehouse robots for the northern corridor. " +
            "The contract was small, but it made the company known to every logistics buyer on the coast. " +
            "Engineers from both firms met every week to review gripper designs, sensor layouts and the "
            "safety cases for each new site, and the plans grew more ambitious every quarter.\n\n";
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  int chunks = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::string workers = argc > 2 ? argv[2] : "2";
  int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  std::string doc = Document(chunks);
  std::vector<double> rates;
  int total_chunks = 0;
  for (int r = 0; r < runs; ++r) {
    kg::testing::TempDir dir;
    kg::testing::Node n(dir, {{"KG_WORKERS_PER_PROVIDER", workers}, {"KG_LOG_LEVEL", "warn"},
                              {"KG_CHUNK_SIZE", "600"}, {"KG_CHUNK_OVERLAP", "0"}});
    if (!n.ready()) return 1;
    nlohmann::json body = {{"text", doc}, {"title", "bench"}};
    auto t0 = steady_clock::now();
    auto res = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
    if (!res || res->status != 202) return 2;
    auto sub = nlohmann::json::parse(res->body);
    total_chunks = sub["chunks_total"];
    std::string id = sub["id"];
    bool done = kg::testing::WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, minutes(10));
    if (!done) return 3;
    double secs = duration<double>(steady_clock::now() - t0).count();
    rates.push_back(total_chunks / secs * 60.0);
    auto stats = n.Get("/api/v1/graph/stats");
    std::printf("run %d: %d chunks in %.2f s = %.0f chunks/min (entities %lld, relations %lld)\n", r + 1, total_chunks,
                secs, rates.back(), stats["entities"].get<long long>(), stats["relations"].get<long long>());
  }
  std::sort(rates.begin(), rates.end());
  std::printf("throughput builtin provider, %s workers, %d chunks of ~600 chars: median %.0f chunks/min\n",
              workers.c_str(), total_chunks, rates[rates.size() / 2]);
  kg::bench::Emit("throughput_builtin_" + workers + "_workers.chunks_per_min", rates[rates.size() / 2], "chunks/min",
                  "median", rates.size());
  return 0;
}
