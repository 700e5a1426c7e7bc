// Per-chunk cost against document size: chunks/s for one large document against the same
// bytes submitted as many small documents, on one node with the builtin provider. Both are
// sent as text/plain and timed from the first submit until every chunk is in the graph.
// A ratio near 1 means per-chunk work does not grow with the document.
// Usage: large_doc_bench [megabytes] [workers_per_provider] [runs] [small_doc_kb]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "result.h"
#include "testing/testing.h"

using namespace std::chrono;

namespace {

// One ~600-byte paragraph with names unique to `i`, so every chunk is its own work.
std::string Paragraph(int i) {
  static const char* kFirst[] = {"Mara", "Tomas", "Ingrid", "Amara", "Lena", "Oskar", "Ravi", "Nadia"};
  static const char* kOrg[] = {"Dynamics", "Robotics", "Capital", "Labs", "Industries", "Group", "Bank", "Institute"};
  std::string n = std::to_string(i);
  std::string person = std::string(kFirst[i % 8]) + " Voss" + n;
  std::string org = "Helix" + n + " " + kOrg[i % 8];
  return person + " founded " + org + " in 2014. " + org + " is headquartered in Port Avalon" + n + " City. " +
         person + " is the chief executive of " + org + ". The contract was small, but it made the company "
         "known to every logistics buyer on the coast. Engineers from both firms met every week to review "
         "gripper designs, sensor layouts and the safety cases for each new site, and the plans grew more "
         "ambitious every quarter.\n\n";
}

// Submits `docs` as text/plain and waits until the graph holds all their chunks; chunks/s.
double Run(const std::vector<std::string>& docs, int mb, const std::string& workers, int* chunks_out) {
  kg::testing::TempDir dir;
  kg::testing::Node n(dir, {{"KG_WORKERS_PER_PROVIDER", workers}, {"KG_LOG_LEVEL", "warn"},
                            {"KG_CHUNK_SIZE", "600"}, {"KG_CHUNK_OVERLAP", "0"},
                            {"KG_MAX_BODY_MB", std::to_string(mb + 1)}});
  if (!n.ready()) std::exit(1);
  n.http().set_read_timeout(600);
  n.http().set_write_timeout(600);
  auto t0 = steady_clock::now();
  long long chunks = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    auto res = n.http().Post("/api/v1/tasks?title=bench" + std::to_string(i), docs[i], "text/plain");
    if (!res || res->status != 202) {
      std::fprintf(stderr, "submit failed: %s\n", res ? res->body.c_str() : httplib::to_string(res.error()).c_str());
      std::exit(2);
    }
    chunks += nlohmann::json::parse(res->body)["chunks_total"].get<long long>();
  }
  double submit_secs = duration<double>(steady_clock::now() - t0).count();
  bool done = kg::testing::WaitFor(
      [&] {
        auto s = n.Get("/api/v1/graph/stats");
        return s.is_object() && s["chunks"].get<long long>() >= chunks;
      },
      minutes(30));
  if (!done) std::exit(3);
  double secs = duration<double>(steady_clock::now() - t0).count();
  *chunks_out = static_cast<int>(chunks);
  std::printf("  %zu document(s), %lld chunks: submitted in %.2f s, done in %.2f s = %.0f chunks/s\n", docs.size(),
              chunks, submit_secs, secs, chunks / secs);
  std::fflush(stdout);
  return chunks / secs;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int mb = argc > 1 ? std::atoi(argv[1]) : 10;
  std::string workers = argc > 2 ? argv[2] : "2";
  int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  size_t small_kb = argc > 4 ? static_cast<size_t>(std::atoi(argv[4])) : 12;
  std::string large;
  std::vector<std::string> small(1);
  for (int i = 0; large.size() < static_cast<size_t>(mb) * 1000000; ++i) {
    std::string p = Paragraph(i);
    large += p;
    if (small.back().size() + p.size() > small_kb * 1000) small.emplace_back();
    small.back() += p;
  }
  std::vector<double> one, many;
  int chunks = 0, small_chunks = 0;
  for (int r = 0; r < runs; ++r) {
    std::printf("run %d, one document of %zu bytes:\n", r + 1, large.size());
    one.push_back(Run({large}, mb, workers, &chunks));
    std::printf("run %d, the same bytes as %zu documents of ~%zu KB:\n", r + 1, small.size(), small_kb);
    many.push_back(Run(small, mb, workers, &small_chunks));
  }
  double ratio = Median(one) / Median(many);
  std::printf("large document (%d MB, %d chunks), %s workers: median %.0f chunks/s; as %zu small documents: "
              "median %.0f chunks/s; ratio %.2f\n",
              mb, chunks, workers.c_str(), Median(one), small.size(), Median(many), ratio);
  std::string name = "large_doc_" + std::to_string(mb) + "mb";
  kg::bench::Emit(name + ".chunks_per_s", Median(one), "chunks/s", "median", one.size());
  kg::bench::Emit(name + ".small_docs_chunks_per_s", Median(many), "chunks/s", "median", many.size());
  kg::bench::Emit(name + ".ratio", ratio, "ratio", "median", one.size());
  return 0;
}
