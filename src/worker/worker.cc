#include "worker/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <set>
#include <map>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/outage_log.h"
#include "common/util.h"
#include "graph/graph_store.h"
#include "log/context.h"
#include "pipeline/document.h"
#include "provider/provider.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "telemetry/worker_stats.h"

namespace kg {
namespace {

std::atomic<int> g_stop_requests{0};
int g_wake_fd = -1;

void OnStopSignal(int) {
  g_stop_requests.fetch_add(1);
  uint64_t one = 1;
  if (g_wake_fd >= 0) (void)!::write(g_wake_fd, &one, sizeof one);
}

// A backend (the queue, the graph store) that answers kUnavailable: logged once when the outage
// starts and once when it ends (OutageLog); while it lasts the worker leases nothing for a pause
// that grows from 250 ms to 5 s, so a restarting server is not hammered and no chunk burns its
// attempts on it.
class BackendOutage {
 public:
  explicit BackendOutage(const char* what) : log_(what) {}
  void Failed(const Status& why, int64_t now_ms) {
    log_.Record(why);
    MutexLock l(mu_);
    pause_ms_ = pause_ms_ == 0 ? 250 : std::min<int64_t>(pause_ms_ * 2, 5000);
    until_ms_ = now_ms + pause_ms_;
  }
  void Succeeded() {
    log_.Record(Status::Ok());
    MutexLock l(mu_);
    pause_ms_ = until_ms_ = 0;
  }
  // How long to wait before the next lease; 0 outside an outage or once its pause is over.
  int64_t PauseMs(int64_t now_ms) {
    MutexLock l(mu_);
    return until_ms_ > now_ms ? until_ms_ - now_ms : 0;
  }

 private:
  OutageLog log_;
  Mutex mu_;
  int64_t until_ms_ KG_GUARDED_BY(mu_) = 0;
  int64_t pause_ms_ KG_GUARDED_BY(mu_) = 0;  // 0: no outage
};

class Worker {
 public:
  // `rec` (borrowed) must outlive the worker; the provider reports into it too.
  Worker(const Config& c, const WorkerOptions& o, std::unique_ptr<Queue> q, std::unique_ptr<TaskStore> s,
         std::unique_ptr<GraphStore> g, std::unique_ptr<Provider> p, telemetry::Recorder& rec)
      : c_(c),
        o_(o),
        queue_(std::move(q)),
        store_(std::move(s)),
        graph_(std::move(g)),
        provider_(std::move(p)),
        rec_(rec) {}

  int Run(int wake_fd) {
    wake_fd_ = wake_fd;
    Report("ready");
    std::thread renewer([this] { RenewLoop(); });
    std::thread reporter([this] { StatsLoop(); });
    int exit_code = kWorkerExitStopped;
    const int slots = ConcurrencyOf(c_, c_.providers.at(o_.provider));
    // Chunks in flight are leases held, not threads: an LLM call waits on the provider's event
    // loop, and only the steps around it (cache, merge, ack) take an executor. The builtin
    // extractor works in the executor's thread, so it keeps one per slot up to kMaxExecutors.
    std::vector<std::thread> pool;
    for (int i = 0; i < std::min(slots, kMaxExecutors); ++i) pool.emplace_back([this] { ExecLoop(); });

    while (g_stop_requests.load() == 0) {
      if (c_.max_tasks_per_process > 0 && started_ >= c_.max_tasks_per_process) {
        exit_code = kWorkerExitRecycled;
        break;
      }
      if (getppid() != o_.parent_pid) break;  // orphaned despite PDEATHSIG (belt and braces)
      int free_slots;
      bool idle, suspect;
      {
        MutexLock l(mu_);
        free_slots = slots - static_cast<int>(inflight_.size());
        idle = inflight_.empty();
        suspect = holding_suspect_;
      }
      if (c_.max_tasks_per_process > 0) free_slots = std::min(free_slots, c_.max_tasks_per_process - started_);
      if (int64_t pause = std::max(queue_outage_.PauseMs(MonoMs()), graph_outage_.PauseMs(MonoMs())); pause > 0) {
        // A backend is away: no leases (each would only fail or be given back) until the pause ends.
        WaitWake(static_cast<int>(pause));
        continue;
      }
      if (free_slots > 0 && !suspect) {
        auto leases = queue_->LeaseChunks(o_.provider, o_.owner, free_slots, LeaseMs(), idle);
        if (!leases.ok()) {
          queue_outage_.Failed(leases.status(), MonoMs());
          continue;
        }
        queue_outage_.Succeeded();
        if (!leases->empty()) {
          Dispatch(std::move(leases).value());
          continue;
        }
        // The queue wakes us when work arrives; the timeout is only a safety net.
        queue_->WaitForWork(o_.provider, 30000, wake_fd_, idle);
        Drain();
      } else {
        WaitWake(5000);
      }
    }
    // Graceful: no new leases; let in-flight chunks finish within the stop timeout.
    stopping_ = true;
    // Stopping (a signal): chunks not started yet go back now, for another worker to start, not after
    // our stop timeout. Recycling keeps them: this worker leased them and finishes them.
    if (g_stop_requests.load() > 0) GiveBackPending();
    int64_t deadline = MonoMs() + c_.stop_timeout_seconds * 1000LL;
    while (MonoMs() < deadline && g_stop_requests.load() < 2) {
      {
        MutexLock l(mu_);
        if (inflight_.empty()) break;
      }
      WaitWake(static_cast<int>(std::min<int64_t>(200, deadline - MonoMs())));
    }
    int released = ReleaseAll();
    if (released > 0) spdlog::info("worker {}: gave back {} unfinished chunks", o_.owner, released);
    bool clean;
    {
      MutexLock l(mu_);
      clean = running_ == 0;
    }
    // Acks and nacks under way finish and are counted (briefly: they are one queue call each), so
    // that the final snapshot of an exit that leaves executors behind does not miss them.
    for (int64_t until = MonoMs() + 1000; !clean && SettlingUncounted() && MonoMs() < until;) {
      WaitWake(50);
    }
    {
      MutexLock l(mu_);
      clean = running_ == 0;
      done_flag_ = true;
    }
    cv_.NotifyAll();
    renew_cv_.NotifyAll();
    renewer.join();
    if (!clean) {
      // Executors are still inside a provider call; their leases are back in the queue.
      StopStats(reporter);
      std::_Exit(exit_code);
    }
    for (auto& t : pool) t.join();
    provider_.reset();  // joins its event loop: no callback can reach this worker any more
    // Every chunk is settled or given back: the supervisor reads these counts when it reaps us.
    StopStats(reporter);
    return exit_code;
  }

 private:
  static constexpr int kMaxExecutors = 16;
  static constexpr int kStatsEveryMs = 1000;  // the most often a "stats" line goes out

  // A provider's answer for a leased chunk, waiting for an executor to settle it.
  struct Completed {
    Lease lease;
    ChunkPayload payload;
    std::string cache_key;
    ProviderReply reply;
    bool cached = false;
    int64_t reserved = 0;  // tokens reserved against the task's budget while the call ran
  };

  struct InFlight {
    Lease lease;
    bool lost = false;      // renewal failed: the lease belongs to someone else now
    bool settling = false;  // being acked or nacked by its executor
    bool counted = false;   // its outcome is in the stats (Count, ReleaseAll): never counted twice
    std::chrono::steady_clock::time_point leased_at{};  // work on it starts: the chunk's duration
  };

  int64_t LeaseMs() const { return c_.lease_seconds * 1000LL; }

  // Writes one line to the status pipe; false when it was not written whole (the pipe is
  // non-blocking: a full pipe drops the line rather than stall us).
  bool Report(const std::string& line) {
    if (o_.status_fd < 0) return false;
    std::string l = line + "\n";
    return ::write(o_.status_fd, l.data(), l.size()) == static_cast<ssize_t>(l.size());
  }

  // Written under mu_ so that the supervisor sees the states in the order they happened
  // (the status pipe is non-blocking: a full pipe drops a line rather than stall us).
  void ReportStateLocked() KG_REQUIRES(mu_) {
    size_t n = inflight_.size();
    Report((n ? "busy " : "idle ") + std::to_string(n) + " " + std::to_string(done_.load()));
  }

  void WaitWake(int ms) {
    pollfd p{wake_fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) > 0) Drain();
  }

  void Drain() {
    uint64_t v;
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }
  }

  void Wake() {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  void Dispatch(std::vector<Lease> leases) {
    {
      MutexLock l(mu_);
      for (auto& lease : leases) {
        if (lease.crashes > 0) holding_suspect_ = true;
        inflight_[lease.chunk_id] =
            InFlight{lease, false, false, false, std::chrono::steady_clock::now()};
        pending_.push_back(std::move(lease));
        ++started_;
      }
      ReportStateLocked();
    }
    cv_.NotifyAll();
    renew_cv_.NotifyAll();
  }

  // Executors settle answered chunks first (their leases are ticking and their results are
  // ready), then start pending ones.
  void ExecLoop() {
    while (true) {
      std::optional<Completed> answered;
      Lease lease;
      {
        MutexLock l(mu_);
        while (!done_flag_ && pending_.empty() && completed_.empty()) cv_.Wait(l);
        if (done_flag_) return;
        ++running_;
        if (!completed_.empty()) {
          answered = std::move(completed_.front());
          completed_.pop_front();
        } else {
          lease = std::move(pending_.front());
          pending_.erase(pending_.begin());
        }
      }
      const std::string id = answered ? answered->lease.chunk_id : lease.chunk_id;
      LogScope about(answered ? answered->lease.task_id : lease.task_id, id);  // task, chunk on JSON log lines
      bool finished = answered ? Settle(std::move(*answered)) : Begin(lease);
      {
        MutexLock l(mu_);
        --running_;
        if (finished) {
          auto it = inflight_.find(id);
          if (it != inflight_.end() && it->second.lease.crashes > 0) holding_suspect_ = false;
          if (it != inflight_.end()) inflight_.erase(it);
          ReportStateLocked();
        }
      }
      if (finished) Wake();
    }
  }

  bool Lost(const std::string& chunk_id) {
    MutexLock l(mu_);
    auto it = inflight_.find(chunk_id);
    return it == inflight_.end() || it->second.lost;
  }

  // Starts a leased chunk: the response cache, the task's token budget, then the provider.
  // True when the chunk is finished here; false when the provider's answer will come through
  // Answered (possibly already has, for a provider that answers at once).
  bool Begin(const Lease& lease) {
    auto payload = DecodePayload(lease.payload);
    if (!payload.ok()) {
      Settling(lease.chunk_id);
      Finish(lease, queue_->Nack(lease.chunk_id, lease.token, payload.status().message(), false), true);
      return true;
    }
    std::string key = provider_->CacheKey(payload->text);
    int64_t reserved = 0;
    if (!key.empty()) {
      // The cache first: a cached answer costs nothing, whatever the budget.
      auto hit = store_->GetCachedResponse(key);
      if (hit.ok() && hit->has_value()) {
        ProviderReply reply = provider_->FromCache(**hit, payload->text);
        if (reply.status.ok()) return Settle(Completed{lease, std::move(payload).value(), key, std::move(reply), true});
      }
      int64_t budget = 0, used = 0;
      if (OverBudget(lease, &budget, &used)) return true;
      if (budget > 0) {
        // Reserve the call's worst case: while this task's calls in flight here could together pass
        // its budget, the chunk waits (its lease kept and renewed) for one of them to settle.
        reserved = provider_->EstimateTokens(payload->text);
        MutexLock l(mu_);
        int64_t& held = reserved_[lease.task_id];
        if (held > 0 && used + held + reserved > budget) {
          deferred_[lease.task_id].push_back(lease);
          return false;
        }
        held += reserved;
      }
    }
    std::string text = payload->text;
    spdlog::debug("worker {}: chunk {} of task {} started", o_.owner, lease.chunk_id, lease.task_id);
    provider_->Extract(text, [this, lease, p = std::move(payload).value(), key, reserved](ProviderReply reply) mutable {
      {
        MutexLock l(mu_);
        completed_.push_back(Completed{lease, std::move(p), key, std::move(reply), false, reserved});
      }
      cv_.NotifyOne();
    });
    return false;
  }

  // A settled chunk's reservation goes back; the chunks of its task that waited for it try again.
  void Unreserve(const std::string& task_id, int64_t reserved) {
    if (reserved == 0) return;
    {
      MutexLock l(mu_);
      if ((reserved_[task_id] -= reserved) <= 0) reserved_.erase(task_id);
      auto it = deferred_.find(task_id);
      if (it == deferred_.end()) return;
      for (auto& lease : it->second) pending_.insert(pending_.begin(), std::move(lease));
      deferred_.erase(it);
    }
    cv_.NotifyAll();
  }

  // Whether the chunk's task has spent its token budget; if so the task is stopped (its row says
  // why, its chunks are cancelled, this one with them) and true is returned.
  // `budget` and `used` (if given) receive the task's budget (0: none) and its spending so far.
  bool OverBudget(const Lease& lease, int64_t* budget = nullptr, int64_t* spent = nullptr) {
    auto task = store_->Get(lease.task_id);
    if (!task.ok() || task->token_budget <= 0) return false;
    auto used = store_->TaskUsage(lease.task_id);
    if (!used.ok()) return false;
    if (budget) *budget = task->token_budget;
    if (spent) *spent = used->tokens();
    if (used->tokens() < task->token_budget) return false;
    std::string why = "token budget reached: " + std::to_string(used->tokens()) + " of " +
                      std::to_string(task->token_budget) + " tokens spent";
    Settling(lease.chunk_id);
    // The row first, as a cancel from the API does: a failed cancel of the chunks then leaves a
    // row saying why, and the next chunk of the task tries again.
    Status s = store_->MarkStopped(lease.task_id, why);
    auto n = s.ok() ? queue_->CancelTask(lease.task_id) : Result<int>(s);
    if (!n.ok()) {
      // Not stopped this time: the chunk goes back at no cost, and its next lease tries again.
      Warn(lease.chunk_id, n.status());
      Status back = RetryTransient([&] { return queue_->Release(lease.chunk_id, lease.token); });
      if (!back.ok()) Warn(lease.chunk_id, back);
      Count(lease.chunk_id, telemetry::kChunkRetry);
    } else {
      Count(lease.chunk_id, telemetry::kChunkSkipped);
      spdlog::info("worker {}: task {} stopped: {} ({} chunks cancelled)", o_.owner, lease.task_id, why, *n);
    }
    return true;
  }

  // Writes what the chunk's extraction cost (LLM providers), caches an accepted answer, then
  // writes the result to the graph and acks, or nacks. True: the chunk is finished.
  bool Settle(Completed done) {
    const Lease& lease = done.lease;
    ProviderReply& reply = done.reply;
    // The reservation goes back once the chunk is settled (acked or not), so that the chunks it
    // held back see its spending, and a budget stop they make cannot cancel it before its ack.
    struct Unreserving {
      Worker* w;
      const std::string& task;
      int64_t tokens;
      ~Unreserving() { w->Unreserve(task, tokens); }
    } unreserving{this, lease.task_id, done.reserved};
    if (!done.cache_key.empty()) {
      UsageTotals u;
      u.prompt_tokens = reply.usage.prompt_tokens;
      u.completion_tokens = reply.usage.completion_tokens;
      u.requests = reply.usage.requests;
      u.cost = reply.usage.cost;
      u.cached_chunks = done.cached ? 1 : 0;
      // Counted here, once per call, as the ledger counts it (a cached answer spent nothing).
      if (done.cached) {
        rec_.LlmCacheHit();
      } else {
        rec_.LlmUsage(u.prompt_tokens, u.completion_tokens, u.cost);
      }
      // Spent whatever becomes of the chunk. Not retried here: a MySQL commit whose answer was lost
      // may have counted already (the store retries what surely did not), and a ledger that counts
      // twice stops budgets early; a lost row undercounts, so it is logged.
      Status s = store_->AddUsage(lease.task_id, lease.chunk_id, lease.provider, u);
      if (!s.ok()) spdlog::warn("worker {}: usage of chunk {} not recorded: {}", o_.owner, lease.chunk_id, s.message());
      if (reply.status.ok() && !done.cached && !reply.cache_content.empty()) {
        Status c = store_->PutCachedResponse(done.cache_key, reply.cache_content);
        if (!c.ok()) spdlog::debug("worker {}: response of chunk {} not cached: {}", o_.owner, lease.chunk_id, c.message());
      }
    }
    if (stopping_ && g_stop_requests.load() >= 2) {
      // Everything goes back at once (its lease lapses).
      Count(lease.chunk_id, telemetry::kChunkGivenBack);
      return true;
    }
    if (reply.dropped_records > 0) {
      spdlog::info("worker {}: chunk {}: {} invalid records of the model's output left out", o_.owner, lease.chunk_id,
                   reply.dropped_records);
    }
    const ChunkPayload* payload = &done.payload;
    if (!reply.status.ok()) {
      Settling(lease.chunk_id);
      bool retry = reply.status.code() != Code::kInvalidArgument;
      Finish(lease, queue_->Nack(lease.chunk_id, lease.token, reply.status.message(), retry), true);
      return true;
    }
    GraphBatch batch = BuildBatch(*payload, reply.extraction);
    batch.chunk.generation = lease.generation;  // the graph store refuses it once a newer lease wrote
    // Fencing, first line: write only while the lease is provably ours. The second line is
    // the generation check inside the graph store's transaction, which also catches a stall
    // between this renewal and the write.
    Status mine = Lost(lease.chunk_id) ? Status::Conflict("renewal failed")
                                       : RetryTransient([&] { return queue_->Renew(lease.chunk_id, lease.token, LeaseMs()); });
    if (!mine.ok()) {
      // During a queue outage every chunk in flight lands here: the outage is logged once, not per chunk.
      if (mine.code() == Code::kUnavailable) {
        queue_outage_.Failed(mine, MonoMs());
      } else {
        spdlog::warn("worker {}: lease of {} not confirmed ({}); result dropped", o_.owner, lease.chunk_id,
                     mine.message());
      }
      Count(lease.chunk_id, LostOutcome(lease.chunk_id, mine));
      return true;
    }
    Status merged = RetryTransient([&] { return graph_->Merge({batch}); });
    Settling(lease.chunk_id);
    if (merged.code() == Code::kConflict) {
      // A newer lease wrote this graph chunk: a later delivery of this queue chunk (then our
      // token is stale and the ack below is refused) or another task of the same text. The
      // chunk's contribution is in the graph either way, so our result is dropped and, if the
      // lease is still ours, the chunk is done, not left to expire and run again.
      spdlog::info("worker {}: chunk {} was written by a newer lease; result dropped ({})", o_.owner, lease.chunk_id,
                   merged.message());
      Finish(lease, RetryTransient([&] { return queue_->Ack(lease.chunk_id, lease.token); }), false);
      return true;
    }
    if (merged.code() == Code::kUnavailable && !GraphAnswers()) {
      // The graph store is away (a restart, a network cut): not this chunk's fault, so it goes back
      // without costing an attempt, and this worker pauses leasing (with a growing pause) until
      // the store answers again; otherwise a few seconds of outage would dead-letter every chunk.
      // A merge that fails while the store answers (deadlocks past their retries, a statement the
      // server rejects) is the chunk's own failure: it is nacked below and costs an attempt.
      graph_outage_.Failed(merged, MonoMs());
      Status back = RetryTransient([&] { return queue_->Release(lease.chunk_id, lease.token); });
      if (!back.ok()) Warn(lease.chunk_id, back);
      Count(lease.chunk_id, telemetry::kChunkRetry);
      return true;
    }
    graph_outage_.Succeeded();
    if (!merged.ok()) {
      Finish(lease, RetryTransient([&] {
               return queue_->Nack(lease.chunk_id, lease.token, "graph merge: " + merged.message(), true);
             }), true);
      return true;
    }
    Finish(lease, RetryTransient([&] { return queue_->Ack(lease.chunk_id, lease.token); }), false);
    return true;
  }

  // A chunk's ack, nack or release that failed: a queue outage is logged once (the lease expires and
  // the chunk runs again), anything else per chunk.
  void Warn(const std::string& chunk_id, const Status& s) {
    if (s.code() == Code::kUnavailable) return queue_outage_.Failed(s, MonoMs());
    spdlog::warn("worker {}: chunk {}: {}", o_.owner, chunk_id, s.message());
  }

  // Whether the graph store answers a point lookup now (kNotFound is an answer).
  bool GraphAnswers() {
    auto probe = graph_->GetEntity("worker:probe");
    return probe.ok() || probe.status().code() == Code::kNotFound;
  }

  // `s`: how the ack (failed false) or nack (failed true) went. Counts the chunk's outcome and,
  // when its settling finished the task, the task.
  void Finish(const Lease& lease, const Status& s, bool failed) {
    if (!s.ok()) {
      Warn(lease.chunk_id, s);
      Count(lease.chunk_id, LostOutcome(lease.chunk_id, s));
      return;
    }
    if (!failed) done_.fetch_add(1);
    spdlog::debug("worker {}: chunk {} of task {} {}", o_.owner, lease.chunk_id, lease.task_id, failed ? "failed" : "done");
    std::string err;
    std::string_view outcome = failed ? telemetry::kChunkRetry : telemetry::kChunkDone;
    if (failed) {
      auto info = queue_->Get(lease.chunk_id);
      if (info.ok() && info->state == ChunkState::kDead) {
        err = "chunk " + lease.chunk_id + ": " + info->last_error;
        outcome = telemetry::kChunkDeadLettered;
      }
    }
    Count(lease.chunk_id, outcome);
    // The task is finished here when this refresh moves its stored status from queued/running to
    // done/failed (a cancelled task is not counted): the row is read before, and again after
    // when the queue's counts say every chunk is settled. Refreshes of one task are serialised
    // within this process, so two executors settling its last chunks count it once; two
    // processes doing so at the same moment may both count it.
    OneRefresh one(*this, lease.task_id);
    Status u = RetryTransient([&] {
      auto row = store_->Get(lease.task_id);
      if (!row.ok()) return row.status().code() == Code::kNotFound ? Status::Ok() : row.status();
      std::string derived;
      KG_RETURN_IF_ERROR(RefreshProgress(*store_, *queue_, *row, err, &derived));
      auto final = [](const std::string& status) { return status == "done" || status == "failed"; };
      if ((row->status == "queued" || row->status == "running") && final(derived)) {
        auto after = store_->Get(lease.task_id);  // a failed read undercounts rather than retry
        if (after.ok() && final(after->status)) rec_.TaskFinished(after->status);
      }
      return Status::Ok();
    });
    if (u.code() == Code::kUnavailable) {
      progress_outage_.Record(u);  // the next chunk of the task writes it; logged once per outage
    } else {
      progress_outage_.Record(Status::Ok());
      if (!u.ok()) spdlog::warn("worker {}: task {} progress: {}", o_.owner, lease.task_id, u.message());
    }
  }

  void RenewLoop() {
    while (true) {
      std::vector<std::pair<std::string, std::string>> held;
      {
        MutexLock l(mu_);
        while (!done_flag_ && inflight_.empty()) renew_cv_.Wait(l);  // idle: no timer at all
        if (done_flag_) return;
        // Renew a third of a lease from now; new leases arriving meanwhile do not hurry it.
        auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(100, LeaseMs() / 3));
        while (!done_flag_ && renew_cv_.WaitUntil(l, due)) {
        }
        if (done_flag_) return;
        for (const auto& [id, f] : inflight_) {
          if (!f.lost && !f.settling) held.emplace_back(id, f.lease.token);
        }
      }
      for (const auto& [id, token] : held) {
        Status s = queue_->Renew(id, token, LeaseMs());
        if (s.code() != Code::kConflict) continue;
        MutexLock g(mu_);
        auto it = inflight_.find(id);
        if (it == inflight_.end() || it->second.settling) continue;  // acked meanwhile: not a loss
        it->second.lost = true;
        spdlog::warn("worker {}: lease of {} was taken away; its result will not be written", o_.owner, id);
      }
    }
  }

  // The executor is about to ack or nack: the renewer leaves the lease alone from now on.
  void Settling(const std::string& chunk_id) {
    MutexLock l(mu_);
    if (auto it = inflight_.find(chunk_id); it != inflight_.end()) it->second.settling = true;
  }

  // Gives back the leased chunks no executor has started (no provider call made for them).
  void GiveBackPending() {
    std::vector<Lease> pending;
    {
      MutexLock l(mu_);
      pending.swap(pending_);
      for (auto& [task, leases] : deferred_) {
        for (auto& lease : leases) pending.push_back(std::move(lease));
      }
      deferred_.clear();
      for (const auto& lease : pending) {
        inflight_.erase(lease.chunk_id);
        rec_.Chunk(telemetry::kChunkGivenBack, 0);
      }
      ReportStateLocked();
    }
    for (const auto& lease : pending) {
      Status back = RetryTransient([&] { return queue_->Release(lease.chunk_id, lease.token); });
      if (!back.ok()) Warn(lease.chunk_id, back);
    }
  }

  // Gives back every lease still held and counts its chunk given back; a lost lease (someone
  // else's now) is counted as LostOutcome says. Chunks being acked or nacked are left to their
  // executors, which count them; a chunk counted already is not counted again (an executor that
  // settles it after this finds it counted). Returns how many releases succeeded.
  int ReleaseAll() {
    std::vector<Lease> held, lost;
    {
      MutexLock l(mu_);
      for (auto& [id, f] : inflight_) {
        if (f.settling || f.counted) continue;
        f.counted = true;
        (f.lost ? lost : held).push_back(f.lease);
      }
      pending_.clear();
      completed_.clear();
      deferred_.clear();
    }
    int n = 0;
    for (const auto& lease : held) {
      // Given back or not (a failed release lapses), this worker is done with it.
      n += RetryTransient([&] { return queue_->Release(lease.chunk_id, lease.token); }).ok() ? 1 : 0;
      rec_.Chunk(telemetry::kChunkGivenBack, 0);
    }
    for (const auto& lease : lost) {
      rec_.Chunk(LostOutcome(lease.chunk_id, Status::Conflict("renewal failed")), 0);
    }
    return n;
  }

  // Whether a chunk is being acked or nacked and not counted yet.
  bool SettlingUncounted() {
    MutexLock l(mu_);
    for (const auto& [id, f] : inflight_) {
      if (f.settling && !f.counted) return true;
    }
    return false;
  }

  // Holds the refresh of one task's progress (Finish): another executor's waits until it ends.
  class OneRefresh {
   public:
    OneRefresh(Worker& w, const std::string& task) : w_(w), task_(task) {
      MutexLock l(w_.mu_);
      while (w_.refreshing_.count(task_) > 0) w_.refresh_cv_.Wait(l);
      w_.refreshing_.insert(task_);
    }
    ~OneRefresh() {
      {
        MutexLock l(w_.mu_);
        w_.refreshing_.erase(task_);
      }
      w_.refresh_cv_.NotifyAll();
    }

   private:
    Worker& w_;
    const std::string& task_;
  };

  // Counts a chunk this worker is done with, timed from its lease (telemetry::Recorder::Chunk);
  // once: a chunk ReleaseAll counted at a stop is not counted again by its executor.
  void Count(const std::string& chunk_id, std::string_view outcome) {
    double seconds = 0;
    {
      MutexLock l(mu_);
      if (auto it = inflight_.find(chunk_id); it != inflight_.end()) {
        if (it->second.counted) return;
        it->second.counted = true;
        auto worked = std::chrono::steady_clock::now() - it->second.leased_at;
        seconds = std::chrono::duration<double>(worked).count();
      }
    }
    rec_.Chunk(outcome, seconds);
  }

  // The outcome of a chunk whose lease turned out not to be ours (`why`: the renewal, ack or nack
  // that failed): skipped when its task was cancelled or is gone, else retry (it runs again,
  // here or elsewhere, once the lease lapses or now that another worker holds it).
  std::string_view LostOutcome(const std::string& chunk_id, const Status& why) {
    if (why.code() != Code::kConflict) return telemetry::kChunkRetry;
    auto info = queue_->Get(chunk_id);
    bool gone = info.ok() ? info->state == ChunkState::kCancelled : info.status().code() == Code::kNotFound;
    return gone ? telemetry::kChunkSkipped : telemetry::kChunkRetry;
  }

  // The pools' connections, sampled as a snapshot goes out: one gauge per backend, the task
  // store's and the graph store's summed when both are MySQL.
  void SampleConnections() {
    std::map<std::string, PoolUsage> by_backend;
    for (std::optional<PoolUsage> u : {store_->Connections(), graph_->Connections()}) {
      if (!u) continue;
      PoolUsage& sum = by_backend[u->backend];
      sum.in_use += u->in_use;
      sum.open += u->open;
    }
    for (const auto& [backend, u] : by_backend) rec_.SetConnections(backend, u.in_use, u.open);
  }

  // Writes "stats <json>" when the snapshot differs from the last one written (or `always`).
  // A line the full pipe dropped does not count as written: the next tick sends it again, so the
  // supervisor is not left with a stale snapshot once the worker goes idle.
  // The reporter thread only, or the main thread once the reporter has stopped.
  void SendStats(bool always) {
    SampleConnections();
    telemetry::WorkerStats now = rec_.Snapshot();
    if (!always && now == last_stats_) return;
    if (Report("stats " + now.ToJson())) last_stats_ = std::move(now);
  }

  // At most one line a second, none while nothing changes.
  void StatsLoop() {
    while (true) {
      {
        MutexLock l(stats_mu_);
        auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStatsEveryMs);
        while (!stats_stop_ && stats_cv_.WaitUntil(l, due)) {
        }
        if (stats_stop_) return;
      }
      SendStats(false);
    }
  }

  // Stops the reporter, then writes the final snapshot (whether or not it changed), so that the
  // supervisor has this process's last counts when it reaps it.
  void StopStats(std::thread& reporter) {
    {
      MutexLock l(stats_mu_);
      stats_stop_ = true;
    }
    stats_cv_.NotifyAll();
    reporter.join();
    SendStats(true);
  }

  const Config& c_;
  const WorkerOptions& o_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<GraphStore> graph_;
  std::unique_ptr<Provider> provider_;
  telemetry::Recorder& rec_;
  int wake_fd_ = -1;

  Mutex stats_mu_;
  CondVar stats_cv_;  // the reporter sleeps on it
  bool stats_stop_ KG_GUARDED_BY(stats_mu_) = false;
  telemetry::WorkerStats last_stats_;  // the last snapshot written (SendStats)

  Mutex mu_;
  CondVar cv_;        // executors wait for pending work
  CondVar renew_cv_;  // the renewer sleeps on it
  CondVar refresh_cv_;  // a refresh of a task's progress ended (OneRefresh)
  std::set<std::string> refreshing_ KG_GUARDED_BY(mu_);  // tasks whose progress is being refreshed
  std::map<std::string, InFlight> inflight_ KG_GUARDED_BY(mu_);
  std::vector<Lease> pending_ KG_GUARDED_BY(mu_);
  std::deque<Completed> completed_ KG_GUARDED_BY(mu_);  // answered by the provider, to settle
  // Token budgets: tokens reserved per task by its calls in flight here, and its leased chunks
  // waiting for a reservation to come back (Begin, Unreserve).
  std::map<std::string, int64_t> reserved_ KG_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Lease>> deferred_ KG_GUARDED_BY(mu_);
  bool holding_suspect_ KG_GUARDED_BY(mu_) = false;
  bool done_flag_ KG_GUARDED_BY(mu_) = false;
  int running_ KG_GUARDED_BY(mu_) = 0;
  int started_ = 0;  // main thread only
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> done_{0};
  BackendOutage queue_outage_{"worker: queue"};        // leases failing
  BackendOutage graph_outage_{"worker: graph store"};  // merges failing
  OutageLog progress_outage_{"worker: task progress"};   // progress writes failing
};

}  // namespace

int RunWorker(const Config& config, const WorkerOptions& o) {
  // Die with the supervisor; if it is already gone, do not start.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (o.parent_pid != 0 && getppid() != o.parent_pid) return kWorkerExitSetup;
  if (o.status_fd >= 0) {
    fcntl(o.status_fd, F_SETFD, FD_CLOEXEC);
    fcntl(o.status_fd, F_SETFL, fcntl(o.status_fd, F_GETFL) | O_NONBLOCK);
  }

  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  g_wake_fd = wake.get();
  struct sigaction sa{};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto pit = config.providers.find(o.provider);
  if (pit == config.providers.end()) {
    spdlog::error("worker: unknown provider '{}'", o.provider);
    return kWorkerExitSetup;
  }
  if (pit->second.fault == "exit_on_start") {
    spdlog::error("worker {}: provider {} has fault=exit_on_start; exiting", o.owner, o.provider);
    return kWorkerExitFault;
  }
  // Declared before everything that reports into it, so it outlives them.
  telemetry::Recorder recorder;
  auto provider = MakeProvider(pit->second, config, &recorder);
  auto queue = OpenQueue(config);
  auto store = OpenTaskStore(config);
  auto graph = OpenGraphStore(config);
  for (const Status* s : {&provider.status(), &queue.status(), &store.status(), &graph.status()}) {
    if (!s->ok()) {
      spdlog::error("worker {}: {}", o.owner, s->message());
      return kWorkerExitSetup;
    }
  }
  Worker w(config, o, std::move(queue).value(), std::move(store).value(), std::move(graph).value(),
           std::move(provider).value(), recorder);
  return w.Run(wake.get());
}

}  // namespace kg
