#pragma once
// The chunk queue: per-provider queues with leases, retries and a dead-letter state.
//
// Delivery contract (every backend passes tests/queue/queue_contract_test.cc):
// - Enqueue is idempotent by chunk id.
// - LeaseChunks hands a ready chunk to one owner with a fresh token and a deadline;
//   each lease counts one attempt. A chunk that has been held by a crashed worker
//   ("suspect") is only handed out alone, to an idle worker, so a later crash is
//   attributed to it exactly.
// - Every lease carries a fencing generation: a number drawn from one queue-wide sequence
//   that only grows and never falls behind the clock (in microseconds, so a new or wiped
//   queue cannot go below what a kept graph holds), so a later lease of the same chunk (or of another task's chunk of the
//   same document) always carries a larger one. The graph store refuses a contribution
//   older than the one it holds (graph_store.h), which fences a worker that stalled after
//   losing its lease.
// - A lease expires at its deadline unless renewed. An expired lease is reclaimable by the
//   next LeaseChunks call of its provider (and by ReclaimExpired): it counts as a failed
//   attempt, and past max_attempts the chunk is dead-lettered. Renew of an expired lease
//   fails with kConflict.
// - Renew/Ack/Nack/Release succeed only with the current token of a leased chunk;
//   anything else is Code::kConflict (a stale holder is fenced off).
// - Nack retries with exponential backoff and jitter until max_attempts, then the
//   chunk is dead-lettered with the last error. Release gives a chunk back with no
//   penalty (graceful stop).
// - ReleaseOwner gives back at once every chunk an owner held (the supervisor calls it
//   when a worker dies); with crashed=true each counts a crash and a chunk that has
//   killed poison_crashes workers is dead-lettered as poison.
// - ReclaimExpired returns chunks whose lease deadline passed.
// - CancelTask cancels ready and leased chunks of a task; RetryTask revives its dead
//   and cancelled chunks with fresh attempts.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "redis/endpoint.h"

namespace kg {

struct Config;

struct ChunkItem {
  std::string id;  // unique per (task, index)
  std::string task_id;
  std::string provider;
  int idx = 0;
  std::string payload;  // opaque to the queue (JSON made by the pipeline)
};

struct Lease {
  std::string chunk_id;
  std::string task_id;
  std::string provider;
  int idx = 0;
  std::string payload;
  std::string token;
  int64_t generation = 0;  // fencing token (see above); > 0
  int attempt = 0;  // 1 for the first delivery
  int crashes = 0;  // workers this chunk was held by when they crashed
  int64_t deadline_ms = 0;
};

enum class ChunkState { kReady = 0, kLeased = 1, kDone = 2, kDead = 3, kCancelled = 4 };
const char* ChunkStateName(ChunkState s);

struct TaskCounts {
  int total = 0, ready = 0, leased = 0, done = 0, dead = 0, cancelled = 0;
};

// Chunks of one provider by state. A ready chunk is in exactly one of `ready` (leasable now)
// and `delayed` (waiting out a retry backoff: its available_at is in the future, by the
// queue's clock); suspect chunks count like the others.
struct ProviderDepth {
  int64_t ready = 0, leased = 0, dead = 0;
  int64_t delayed = 0;
  int64_t done = 0;  // every chunk ever acked: it never falls, also when done records expire
};

struct ChunkInfo {
  std::string id;
  std::string task_id;
  int idx = 0;
  ChunkState state = ChunkState::kReady;
  int attempts = 0;
  int crashes = 0;
  std::string owner;
  std::string last_error;
  int64_t available_at_ms = 0;
  // When its current (or last) lease began; 0 if never leased. A retry keeps it until the
  // next lease, so leased_at_ms <= updated_at_ms always.
  int64_t leased_at_ms = 0;
  // Its last change (a state change or a lease renewal), by the queue's clock. With
  // leased_at_ms, a done or dead chunk's last attempt took updated_at_ms - leased_at_ms.
  // 0 for a chunk written before the queue recorded it (Redis).
  int64_t updated_at_ms = 0;
};

struct QueueOptions {
  int max_attempts = 5;
  int poison_crashes = 3;
  int64_t backoff_base_ms = 1000;
  int64_t backoff_max_ms = 5 * 60 * 1000;
  double jitter = 0.25;                 // +-25 % of the delay
  std::function<int64_t()> now_ms;      // wall clock unless a test drives time
  // Redis queue only (the SQLite queue keeps everything on disk): how long a done chunk's
  // record, and the index and counts of a task whose chunks are all done, are kept after the
  // ack (by the server's clock, not now_ms); then Get is kNotFound and the task is unknown
  // (Counts total 0). Dead and cancelled chunks, and a task holding one, never expire.
  // <= 0 keeps everything (the server's memory then grows with every chunk done).
  int64_t done_retention_ms = 24LL * 60 * 60 * 1000;
};

class Queue {
 public:
  virtual ~Queue() = default;

  virtual Status Enqueue(const std::vector<ChunkItem>& items) = 0;
  // Leases up to `max` ready chunks of `provider` for `owner`. With allow_suspect, a
  // ready suspect chunk (crashes > 0) is returned alone.
  virtual Result<std::vector<Lease>> LeaseChunks(const std::string& provider, const std::string& owner,
                                                 int max, int64_t lease_ms, bool allow_suspect) = 0;
  virtual Status Renew(const std::string& chunk_id, const std::string& token, int64_t lease_ms) = 0;
  virtual Status Ack(const std::string& chunk_id, const std::string& token) = 0;
  // retryable=false dead-letters at once (e.g. input the provider can never handle).
  virtual Status Nack(const std::string& chunk_id, const std::string& token, const std::string& error,
                      bool retryable) = 0;
  virtual Status Release(const std::string& chunk_id, const std::string& token) = 0;
  // Returns how many chunks were given back or dead-lettered.
  virtual Result<int> ReleaseOwner(const std::string& owner, bool crashed, const std::string& reason) = 0;
  // Gives back, without penalty, every chunk leased by an owner whose id starts with
  // `prefix` (a restarted supervisor frees what its killed predecessor's workers held).
  virtual Result<int> ReleaseOwnersWithPrefix(const std::string& prefix) = 0;
  virtual Result<int> ReclaimExpired() = 0;
  virtual Result<int> CancelTask(const std::string& task_id) = 0;
  virtual Result<int> RetryTask(const std::string& task_id) = 0;
  virtual Result<TaskCounts> Counts(const std::string& task_id) = 0;
  virtual Result<std::map<std::string, ProviderDepth>> Depths() = 0;
  virtual Result<ChunkInfo> Get(const std::string& chunk_id) = 0;
  // The task's chunks in idx order. (Not virtual, and named apart from the capped read below: an
  // override of an overload of the same name would hide this one in the implementation's scope.)
  Result<std::vector<ChunkInfo>> ListChunks(const std::string& task_id) { return ListFirstChunks(task_id, -1); }
  // The first `max_chunks` of them in idx order (all when negative): a page that polls a task of
  // 50 000 chunks reads what it shows, and a Redis script does not walk them all while the server waits.
  virtual Result<std::vector<ChunkInfo>> ListFirstChunks(const std::string& task_id, int64_t max_chunks) = 0;
  // Blocks until `provider` may have a chunk this caller can lease (suspect chunks only
  // with include_suspect, as in LeaseChunks; a lease of the provider reaching its deadline
  // counts), `wake_fd` (if >= 0) is readable, or max_wait_ms passes. Spurious returns are
  // allowed; busy polling is not; a backend error returns at once.
  virtual void WaitForWork(const std::string& provider, int max_wait_ms, int wake_fd, bool include_suspect) = 0;
};

// The backoff before attempt `attempt + 1`, after `attempt` failed attempts (>= 1), with
// jitter drawn from `unit_random` in [0, 1).
int64_t BackoffMs(const QueueOptions& o, int attempt, double unit_random);

// Embedded SQLite queue in `path` (WAL; one connection).
Result<std::unique_ptr<Queue>> OpenSqliteQueue(const std::string& path, QueueOptions options);

// Distributed queue on a redis-server (redis_queue.cc says how each property is met). Keys
// live under `at.ns`; fails with kUnavailable when the server does not answer a PING.
// Later calls fail with kUnavailable during an outage and reconnect by themselves.
Result<std::unique_ptr<Queue>> OpenRedisQueue(const RedisEndpoint& at, QueueOptions options);

// The backend the configuration selects.
Result<std::unique_ptr<Queue>> OpenQueue(const Config& config);

// What in the configured Redis server can lose queued chunks: no append-only file (a restart
// empties the queue), a memory policy that evicts keys. One line each, naming the fix; empty for
// the embedded queue, for a durable server, or when the server cannot be asked (INFO refused).
std::vector<std::string> QueueDurabilityWarnings(const Config& config);

}  // namespace kg
