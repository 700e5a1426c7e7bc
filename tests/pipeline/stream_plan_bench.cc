// Throughput and peak memory of StreamPlanner against PlanTask on generated English prose.
// Not a test (nothing is asserted): built with the tests, run by hand.
//
//   stream_plan_bench speed MB        MB/s of each, median of 3 runs, on the same text in memory
//   stream_plan_bench rss whole MB    peak RSS planning a document held whole (as the API did)
//   stream_plan_bench rss stream MB   peak RSS planning it as 64 KiB pieces arrive (never whole)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pipeline/document.h"
#include "pipeline/stream_plan.h"
#include "text/text.h"

namespace {

// Deterministic English prose, produced piece by piece so the streaming run never holds it all.
class Prose {
 public:
  explicit Prose(size_t total) : left_(total) {}
  // The next `n` bytes (fewer at the end); empty when done.
  std::string Next(size_t n) {
    size_t take = std::min(n, left_);
    while (buffer_.size() < take) Sentence();
    std::string out = buffer_.substr(0, take);
    buffer_.erase(0, take);
    left_ -= take;
    return out;
  }

 private:
  void Sentence() {
    static const char* kWords[] = {"Mara", "Voss", "founded", "Helix", "Dynamics", "in", "the", "city", "of",
                                   "Port", "Avalon", "and", "acquired", "a", "company", "called", "Fjord",
                                   "Analytics", "which", "is", "based", "near", "Oslo", "with", "revenue", "rose",
                                   "by", "3.5", "percent", "in", "2019", "Dr.", "Lund", "U.S.", "Steel", "its"};
    std::uniform_int_distribution<int> len(4, 24), word(0, sizeof kWords / sizeof *kWords - 1), para(0, 7);
    std::string s;
    for (int i = 0, n = len(rng_); i < n; ++i) {
      if (i > 0) s += ' ';
      s += kWords[word(rng_)];
    }
    s += para(rng_) == 0 ? ".\n\n" : ". ";
    buffer_ += s;
  }

  std::mt19937 rng_{42};
  std::string buffer_;
  size_t left_;
};

std::string Whole(size_t bytes) {
  Prose p(bytes);
  std::string text;
  for (std::string s = p.Next(1 << 20); !s.empty(); s = p.Next(1 << 20)) text += s;
  return text;
}

long PeakRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

size_t PlanBytes(const kg::TaskPlan& plan) {
  size_t n = 0;
  for (const auto& i : plan.items) n += sizeof i + i.payload.capacity();
  return n;
}

const kg::ChunkOptions kOptions{1200, 100};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "speed") == 0) {
    size_t bytes = std::strtoull(argv[2], nullptr, 10) << 20;
    std::string text = Whole(bytes);
    std::vector<double> whole, checked, stream;
    size_t items = 0, peak_window = 0;
    for (int run = 0; run < 3; ++run) {
      auto tc = std::chrono::steady_clock::now();
      if (!kg::CheckText(text).ok()) return 1;  // the API checks, then plans
      auto t0 = std::chrono::steady_clock::now();
      kg::TaskPlan a = kg::PlanTask("t", "builtin", "", "T", "", text, kOptions);
      auto t1 = std::chrono::steady_clock::now();
      kg::StreamPlanner planner("t", "builtin", "", "T", "", kOptions);
      for (size_t at = 0; at < text.size(); at += 65536) {
        if (!planner.Add(std::string_view(text).substr(at, 65536)).ok()) return 1;
        peak_window = std::max(peak_window, planner.buffered_bytes());
      }
      auto b = planner.Finish();
      auto t2 = std::chrono::steady_clock::now();
      if (!b.ok() || b->items.size() != a.items.size() || b->doc_id != a.doc_id) {
        std::fprintf(stderr, "plans differ\n");
        return 1;
      }
      items = a.items.size();
      whole.push_back(bytes / 1e6 / std::chrono::duration<double>(t1 - t0).count());
      checked.push_back(bytes / 1e6 / std::chrono::duration<double>(t1 - tc).count());
      stream.push_back(bytes / 1e6 / std::chrono::duration<double>(t2 - t1).count());
    }
    std::sort(whole.begin(), whole.end());
    std::sort(checked.begin(), checked.end());
    std::sort(stream.begin(), stream.end());
    std::printf("%zu MiB, %zu chunks, medians of 3: PlanTask %.1f MB/s, CheckText+PlanTask %.1f MB/s, "
                "StreamPlanner (64 KiB pieces, checks too) %.1f MB/s (ratio %.2f to CheckText+PlanTask); "
                "StreamPlanner window peak %zu bytes\n",
                bytes >> 20, items, whole[1], checked[1], stream[1], stream[1] / checked[1], peak_window);
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "rss") == 0) {
    size_t bytes = std::strtoull(argv[3], nullptr, 10) << 20;
    long before = PeakRssKb();
    size_t plan_bytes = 0, items = 0, peak_window = 0;
    if (std::strcmp(argv[2], "whole") == 0) {
      std::string text = Whole(bytes);
      kg::TaskPlan plan = kg::PlanTask("t", "builtin", "", "T", "", text, kOptions);
      plan_bytes = PlanBytes(plan);
      items = plan.items.size();
    } else {
      Prose prose(bytes);
      kg::StreamPlanner planner("t", "builtin", "", "T", "", kOptions);
      for (std::string piece = prose.Next(65536); !piece.empty(); piece = prose.Next(65536)) {
        if (!planner.Add(piece).ok()) return 1;
        peak_window = std::max(peak_window, planner.buffered_bytes());
      }
      auto plan = planner.Finish();
      if (!plan.ok()) return 1;
      plan_bytes = PlanBytes(*plan);
      items = plan->items.size();
    }
    std::printf("%s %zu MiB: %zu chunks, peak RSS %ld MiB (%ld MiB before), the plan itself %zu MiB, "
                "window peak %zu bytes\n",
                argv[2], bytes >> 20, items, PeakRssKb() >> 10, before >> 10, plan_bytes >> 20, peak_window);
    return 0;
  }
  std::fprintf(stderr, "usage: stream_plan_bench speed MB | rss whole|stream MB\n");
  return 2;
}
