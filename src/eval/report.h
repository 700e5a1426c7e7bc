#pragma once
// A Report for a reader (a table and the misses) and for scripts (JSON).

#include <string>

#include "eval/score.h"

namespace kg::eval {

struct ReportHeader {
  std::string file, provider;
};

// The P/R/F1 table per language and overall, then at most `max_misses` miss lines (items in
// file order), saying how many more there are. Undefined ratios print as "-".
std::string FormatTable(const ReportHeader& h, const Report& r, size_t max_misses);

// The whole report: totals (tp, predicted, gold, precision, recall, f1; null when undefined)
// overall and per language, and every item's misses.
std::string FormatJson(const ReportHeader& h, const Report& r);

}  // namespace kg::eval
