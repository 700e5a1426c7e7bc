#pragma once
// One machine-readable line per measured figure, beside the human-readable output:
//   RESULT {"name": "...", "value": 4.8, "unit": "ms", "stat": "median", "n": 200}
// bench/run_all.sh gathers them into bench/results/<date>-<commit>.json, from which
// bench/figures.py renders the README's performance table.
//
// A percentile is only named when there are enough samples to mean it: p99 needs at least
// 200, otherwise the figure is reported as the maximum.

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace kg::bench {

inline void Emit(const std::string& name, double value, const std::string& unit, const std::string& stat, size_t n) {
  std::printf("RESULT {\"name\": \"%s\", \"value\": %.4f, \"unit\": \"%s\", \"stat\": \"%s\", \"n\": %zu}\n",
              name.c_str(), value, unit.c_str(), stat.c_str(), n);
  std::fflush(stdout);
}

// Median and, with >= 200 samples, p99 (else max) of `v`, emitted as <name>.median and
// <name>.p99 or <name>.max.
inline void EmitDistribution(const std::string& name, std::vector<double> v, const std::string& unit) {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  Emit(name + ".median", v[v.size() / 2], unit, "median", v.size());
  if (v.size() >= 200) {
    Emit(name + ".p99", v[std::min(v.size() - 1, v.size() * 99 / 100)], unit, "p99", v.size());
  }
  Emit(name + ".max", v.back(), unit, "max", v.size());
}

}  // namespace kg::bench
