#pragma once
// What a worker process counts about its own work. The worker writes a snapshot as one
// "stats <json>" line on its status pipe (at most once a second, and once more before a
// clean exit); its supervisor keeps the last snapshot of each live process, adds the
// counters of every process that ends to its provider's retired total, and /metrics
// renders the sum (docs/operations.md, "Metrics").
//
// A process killed without warning loses what it counted since its last line (at most
// about a second of work); counters never go down, so rate() over them stays right.
//
// Thread safety: WorkerStats is a plain value. Recorder is thread-safe.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/mutex.h"
#include "common/status.h"

namespace kg::telemetry {

// Upper bounds (seconds) of the chunk-duration histogram's buckets; +Inf is implied.
inline constexpr std::array<double, 12> kChunkSecondsBounds = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

// Outcomes of a chunk a worker took (the `outcome` label of kg_chunks_total).
inline constexpr std::string_view kChunkDone = "done";                   // acked, graph written
inline constexpr std::string_view kChunkRetry = "retry";                 // nacked, will run again
inline constexpr std::string_view kChunkDeadLettered = "dead_lettered";  // out of attempts, or bad input
inline constexpr std::string_view kChunkGivenBack = "given_back";        // handed back unstarted on a stop
inline constexpr std::string_view kChunkSkipped = "skipped";             // its task was cancelled or is gone

// The most distinct keys a Recorder keeps per map; later ones are counted under "other" so a
// snapshot stays one atomic pipe write (PIPE_BUF) whatever an API answers. Sums (Add,
// AddCounters) keep every key: a key never moves into "other" there, so no series falls.
inline constexpr size_t kMaxKeys = 16;

struct WorkerStats {
  // Counters, cumulative since the process started.
  std::map<std::string, int64_t> chunks;  // by outcome (kChunk*)
  std::array<int64_t, kChunkSecondsBounds.size() + 1> chunk_seconds_buckets{};  // per bucket, not cumulative; last: +Inf
  double chunk_seconds_sum = 0;  // seconds, of the chunks counted in the buckets
  std::map<std::string, int64_t> tasks_finished;  // tasks this process finished, by final status
  std::map<std::string, int64_t> llm_requests;    // by HTTP status ("200", "429") or "transport" (no answer)
  int64_t llm_prompt_tokens = 0;
  int64_t llm_completion_tokens = 0;
  double llm_cost = 0;          // in the currency of the provider's configured prices
  int64_t llm_cache_hits = 0;   // chunks answered from the response cache (no request)
  int64_t llm_rate_limit_waits = 0;         // requests that waited for the limiter (rpm, tpm, concurrency, pause)
  double llm_rate_limit_wait_seconds = 0;   // the time they waited, in all
  // Gauges, values at the time of the snapshot.
  std::map<std::string, int64_t> connections_in_use;  // graph/store pool connections borrowed, by backend ("neo4j", "mysql")
  std::map<std::string, int64_t> connections_open;    // open (borrowed or idle), by backend

  int64_t ChunksObserved() const;  // sum of the buckets
  // Adds `o` into this: counters and gauges alike (the sum over processes).
  void Add(const WorkerStats& o);
  // Adds only the counters of `o` (what a process that ended leaves to its provider's total).
  void AddCounters(const WorkerStats& o);
  bool operator==(const WorkerStats& o) const;

  // One line of compact JSON (no newline), under PIPE_BUF with kMaxKeys per map.
  std::string ToJson() const;
  // kInvalidArgument for text that is not a snapshot; unknown fields are ignored.
  static Result<WorkerStats> FromJson(std::string_view text);
};

// The recorder of one worker process: every component of the worker reports into it.
class Recorder {
 public:
  void Chunk(std::string_view outcome, double seconds);
  void TaskFinished(std::string_view status);
  // `http_status` 0: no answer (connect, timeout, transport).
  void LlmRequest(int http_status);
  void LlmUsage(int64_t prompt_tokens, int64_t completion_tokens, double cost);
  void LlmCacheHit();
  void RateLimitWait(double seconds);
  void SetConnections(const std::string& backend, int64_t in_use, int64_t open);
  WorkerStats Snapshot() const;

 private:
  mutable Mutex mu_;
  WorkerStats s_ KG_GUARDED_BY(mu_);
};

}  // namespace kg::telemetry
