#pragma once
// `kgflow eval GOLD.jsonl`: scores a provider of this node's configuration against a gold
// file (docs/eval.md) and prints the report.

#include <cstddef>
#include <iosfwd>
#include <string>

#include "config/config.h"
#include "eval/score.h"
#include "provider/provider.h"
#include "text/text.h"

namespace kg::eval {

struct EvalOptions {
  std::string gold_file;
  std::string provider = "builtin";
  bool json = false;
  int max_misses = 30;  // miss lines printed (table only)
};

// Predicts (PredictGraph, in a temporary directory under $TMPDIR removed afterwards) and scores
// every item in order. The first failure ends it: the provider's Status, or the temporary
// graph's, prefixed with "line N (item ID)".
Result<Report> Evaluate(Provider& provider, const std::vector<GoldItem>& items, const ChunkOptions& chunking);

// Exit code: 0 when every item was scored, whatever the scores; 1 when the provider (or the
// temporary graph) fails on an item, named with its id and line; 2 for usage: an unreadable
// or bad gold file (the first bad line named), or a provider `config` does not declare.
// Prints the report to `out` and errors to `err`.
int RunEval(const Config& config, const EvalOptions& options, std::ostream& out, std::ostream& err);

}  // namespace kg::eval
