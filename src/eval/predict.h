#pragma once
// What a provider would put in the graph for one text, computed in-process the way a
// worker does it: PlanTask chunks the text, Provider::Extract runs per chunk, BuildBatch
// folds each extraction, and the batches are merged into a fresh SQLite graph store of
// their own, whose export is the prediction (so keys fold exactly as in a node's graph).

#include <string>

#include "common/status.h"
#include "eval/score.h"
#include "provider/provider.h"
#include "text/text.h"

namespace kg::eval {

// `scratch_dir` must exist and be writable; the temporary graph is created in it and
// removed before returning. The provider's own failure is returned as is (its code kept);
// a graph store failure is kInternal. Blocking; the provider is called from this thread only.
Result<Prediction> PredictGraph(Provider& provider, const std::string& text, const ChunkOptions& options,
                                const std::string& scratch_dir);

}  // namespace kg::eval
