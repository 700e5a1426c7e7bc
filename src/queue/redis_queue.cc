// The Redis queue: the delivery contract of queue.h on a redis-server (hiredis, src/redis/).
//
// How it meets each property (the key layout is in redis_queue_scripts.h):
// - Atomic state changes: every transition is one Lua script run by EVALSHA; a script checks
//   state and token and changes the chunk in the same step, so nothing reads, decides and
//   writes across round trips. A stale token matches nothing and answers kConflict.
// - Hash slots: a chunk lives under "<ns>:{<provider>}:..." and every script touches only the
//   keys of one provider, so each script stays within one hash slot (Redis Cluster). One key
//   lies outside a provider's slot, written by a plain idempotent SADD before the chunks are
//   enqueued, never by a script: "<ns>:providers" (the registry of providers). Calls on a task
//   (Counts, ListChunks, CancelTask, RetryTask) ask every provider, pipelined in one round trip,
//   so no per-task key lives outside the slot (it could not expire with the task's others).
//   A lease token is "<provider>|<random>", so Renew/Ack/Nack/Release find the provider's slot
//   from the token alone, in one round trip.
// - Time: with options.now_ms set (tests drive the clock) its value goes into each script;
//   otherwise the scripts read the server's clock (TIME), so nodes with skewed clocks agree.
// - Lease generations: one sequence per provider, each lease taking max(last + 1, now in us),
//   the floor being the server's clock (and the injected one when it is later). The server's
//   clock is one clock for all providers, so a lease that starts after another has finished
//   gets a larger generation unless a batch drew more numbers than microseconds have passed
//   since (a batch of n draws n). A wiped namespace starts at the clock, above any generation
//   handed out before.
// - LeaseChunks: one script, one round trip; it first reclaims up to 256 expired leases of
//   the provider, then leases up to `max` ready chunks (or one suspect chunk, alone).
// - Counts: per provider and per task a hash of counts by state kept by the scripts, so
//   Depths() is one read-only script per provider (the counts, and a ZCOUNT of the ready chunks
//   not yet due, since `ready` there means leasable now) and Counts() one HMGET per provider.
// - Retention: Ack gives a done chunk's hash a TTL of options.done_retention_ms, and the task's
//   index and counts too once none of its chunks is ready, leased, dead or cancelled (the
//   scripts' header says how); a finished task then leaves nothing behind: Counts reports
//   total 0, Get kNotFound, ListChunks nothing, CancelTask and RetryTask 0. Dead and cancelled
//   chunks, and every key of a task holding one, stay until retried (dead letters remain
//   inspectable and retryable). Depths' `done` counts every ack (it never falls), ready, leased
//   and dead stay exact. Enqueue is idempotent by id while the chunk or its task is kept.
// - WaitForWork never polls: per provider a subscriber connection stays SUBSCRIBEd to
//   "<ns>:{<provider>}:wake", published by every script that makes a chunk ready. A waiter
//   drains what arrived, asks (one round trip) for the next moment a chunk may be leasable,
//   then poll()s the subscriber socket and wake_fd until then. A lost subscriber reconnects
//   and resubscribes on the next wait, before asking, so no wake-up falls between the two.
//   A SUBSCRIBE the server refuses (an ACL without the channel or the command, too many
//   clients) is logged, the wait returns at once, and for kResubscribeAfterMs the next waits
//   go without a subscriber (woken by wake_fd or the next due moment only, never polling)
//   before subscribing again.
// - Outages: every call fails with kUnavailable within the socket timeout and the next call
//   reconnects (src/redis/client.h).
// Limits: an Enqueue of more than 256 chunks of one provider runs several scripts, so a call
// that fails midway may have enqueued a prefix (a retry completes it: enqueue is idempotent by
// id). Chunk ids are unique per provider (a task's chunks share its provider).
#include <poll.h>

#include <algorithm>
#include <map>
#include <random>

#include "common/mutex.h"
#include "common/util.h"
#include "queue/queue.h"
#include "queue/redis_queue_scripts.h"
#include "redis/client.h"

namespace kg {
namespace {

using redis::Call;
using redis::Script;
using redis::Value;

// Items per enqueue script: keeps each script short (a script blocks the whole server).
constexpr size_t kEnqueueBatch = 256;
// Expired leases handled per ReclaimExpired script.
constexpr int kReclaimBatch = 1000;
// After a refused SUBSCRIBE, waits run without a subscriber this long before trying again: a
// refusal that lasts (an ACL) costs one connection a second, not one per wait.
constexpr int64_t kResubscribeAfterMs = 1000;

Script MakeScript(const char* body) { return Script(std::string(redis_queue::kPrelude) + body); }

ChunkState StateOf(const std::string& s) {
  if (s == "leased") return ChunkState::kLeased;
  if (s == "done") return ChunkState::kDone;
  if (s == "dead") return ChunkState::kDead;
  if (s == "cancelled") return ChunkState::kCancelled;
  return ChunkState::kReady;
}

class RedisQueue final : public Queue {
 public:
  RedisQueue(RedisEndpoint at, QueueOptions o)
      : ns_(at.ns), client_(std::move(at)), o_(std::move(o)) {}

  Status Ping() {
    KG_ASSIGN_OR_RETURN(auto v, client_.Run(Call::Cmd({"PING"})));
    (void)v;
    return Status::Ok();
  }

  Status Enqueue(const std::vector<ChunkItem>& items) override {
    if (items.empty()) return Status::Ok();
    std::string now = Now();
    std::map<std::string, std::vector<const ChunkItem*>> by_provider;
    for (const auto& it : items) by_provider[it.provider].push_back(&it);
    std::vector<Call> calls;
    // The registry outside the providers' slots first: a chunk is never there without it.
    for (const auto& entry : by_provider) calls.push_back(Call::Cmd({"SADD", ns_ + ":providers", entry.first}));
    for (const auto& [p, list] : by_provider) {
      for (size_t k = 0; k < list.size(); k += kEnqueueBatch) {
        std::vector<std::string> argv{now};
        for (size_t j = k; j < std::min(list.size(), k + kEnqueueBatch); ++j) {
          argv.push_back(list[j]->id);
          argv.push_back(list[j]->task_id);
          argv.push_back(std::to_string(list[j]->idx));
          argv.push_back(list[j]->payload);
        }
        calls.push_back(Call::Eval(enqueue_, {Base(p)}, std::move(argv)));
      }
    }
    return client_.Run(calls).status();
  }

  Result<std::vector<Lease>> LeaseChunks(const std::string& provider, const std::string& owner, int max,
                                         int64_t lease_ms, bool allow_suspect) override {
    std::vector<Lease> out;
    if (max <= 0) return out;
    std::vector<std::string> argv{Now(), std::to_string(max), std::to_string(lease_ms), allow_suspect ? "1" : "0",
                                  std::to_string(o_.max_attempts), owner};
    std::vector<std::string> tokens;
    for (int k = 0; k < max; ++k) tokens.push_back(provider + "|" + RandomId("L"));
    argv.insert(argv.end(), tokens.begin(), tokens.end());
    KG_ASSIGN_OR_RETURN(auto v, client_.Run(Call::Eval(lease_, {Base(provider)}, std::move(argv))));
    if (v.a.empty() || (v.a.size() - 1) % 7 != 0) return Status::Internal(client_.Where() + ": bad lease reply");
    int64_t now = v.a[0].Int();
    for (size_t k = 1, n = 0; k < v.a.size(); k += 7, ++n) {
      Lease l;
      l.chunk_id = v.a[k].Str();
      l.task_id = v.a[k + 1].Str();
      l.provider = provider;
      l.idx = static_cast<int>(v.a[k + 2].Int());
      l.payload = v.a[k + 3].Str();
      l.attempt = static_cast<int>(v.a[k + 4].Int());
      l.crashes = static_cast<int>(v.a[k + 5].Int());
      l.generation = v.a[k + 6].Int();
      l.token = tokens[n];
      l.deadline_ms = now + lease_ms;
      out.push_back(std::move(l));
    }
    return out;
  }

  Status Renew(const std::string& chunk_id, const std::string& token, int64_t lease_ms) override {
    return Fenced(renew_, chunk_id, token, "renew", {std::to_string(lease_ms)});
  }

  Status Ack(const std::string& chunk_id, const std::string& token) override {
    return Fenced(ack_, chunk_id, token, "ack", {std::to_string(o_.done_retention_ms)});
  }

  Status Nack(const std::string& chunk_id, const std::string& token, const std::string& error,
              bool retryable) override {
    char jitter[32], unit[32];
    std::snprintf(jitter, sizeof jitter, "%.17g", o_.jitter);
    std::snprintf(unit, sizeof unit, "%.17g", UnitRandom());
    return Fenced(nack_, chunk_id, token, "nack",
                  {error, retryable ? "1" : "0", std::to_string(o_.max_attempts), std::to_string(o_.backoff_base_ms),
                   std::to_string(o_.backoff_max_ms), jitter, unit});
  }

  Status Release(const std::string& chunk_id, const std::string& token) override {
    return Fenced(release_, chunk_id, token, "release", {});
  }

  Result<int> ReleaseOwner(const std::string& owner, bool crashed, const std::string& reason) override {
    return PerProvider(release_owner_, {"owner", owner, crashed ? "1" : "0", reason,
                                        std::to_string(o_.poison_crashes), std::to_string(o_.max_attempts)});
  }

  Result<int> ReleaseOwnersWithPrefix(const std::string& prefix) override {
    return PerProvider(release_owner_, {"prefix", prefix, "0", "", std::to_string(o_.poison_crashes),
                                        std::to_string(o_.max_attempts)});
  }

  Result<int> ReclaimExpired() override {
    int total = 0;
    while (true) {
      KG_ASSIGN_OR_RETURN(int n, PerProvider(reclaim_, {std::to_string(o_.max_attempts), std::to_string(kReclaimBatch)}));
      total += n;
      if (n < kReclaimBatch) return total;
    }
  }

  Result<int> CancelTask(const std::string& task_id) override { return PerProvider(cancel_, {task_id}); }
  Result<int> RetryTask(const std::string& task_id) override { return PerProvider(retry_, {task_id}); }

  Result<TaskCounts> Counts(const std::string& task_id) override {
    KG_ASSIGN_OR_RETURN(auto providers, Members(ns_ + ":providers"));
    TaskCounts c;
    if (providers.empty()) return c;
    std::vector<Call> calls;
    for (const auto& p : providers) {
      calls.push_back(Call::Cmd({"HMGET", Base(p) + ":tn:" + task_id, "ready", "leased", "done", "dead", "cancelled"}));
    }
    KG_ASSIGN_OR_RETURN(auto vs, client_.Run(calls));
    for (const auto& v : vs) {
      if (v.a.size() != 5) return Status::Internal(client_.Where() + ": bad counts reply");
      c.ready += static_cast<int>(v.a[0].Int());
      c.leased += static_cast<int>(v.a[1].Int());
      c.done += static_cast<int>(v.a[2].Int());
      c.dead += static_cast<int>(v.a[3].Int());
      c.cancelled += static_cast<int>(v.a[4].Int());
    }
    c.total = c.ready + c.leased + c.done + c.dead + c.cancelled;
    return c;
  }

  Result<std::map<std::string, ProviderDepth>> Depths() override {
    KG_ASSIGN_OR_RETURN(auto providers, Members(ns_ + ":providers"));
    std::map<std::string, ProviderDepth> out;
    if (providers.empty()) return out;
    std::vector<Call> calls;
    for (const auto& p : providers) calls.push_back(Call::Eval(depth_, {Base(p)}, {Now()}));
    KG_ASSIGN_OR_RETURN(auto vs, client_.Run(calls));
    for (size_t k = 0; k < providers.size(); ++k) {
      if (vs[k].a.size() != 5) return Status::Internal(client_.Where() + ": bad depth reply");
      auto& d = out[providers[k]];
      d.ready = vs[k].a[0].Int();
      d.leased = vs[k].a[1].Int();
      d.dead = vs[k].a[2].Int();
      d.done = vs[k].a[3].Int();
      d.delayed = vs[k].a[4].Int();
    }
    return out;
  }

  Result<ChunkInfo> Get(const std::string& chunk_id) override {
    KG_ASSIGN_OR_RETURN(auto providers, Members(ns_ + ":providers"));
    std::vector<Call> calls;
    for (const auto& p : providers) {
      calls.push_back(Call::Cmd({"HMGET", Base(p) + ":c:" + chunk_id, "task", "state", "attempts", "crashes", "owner",
                                 "err", "avail", "idx", "leased_at", "updated_at"}));
    }
    if (!calls.empty()) {
      KG_ASSIGN_OR_RETURN(auto vs, client_.Run(calls));
      for (const auto& v : vs) {
        if (v.a.size() != 10 || v.a[0].nil()) continue;
        ChunkInfo c;
        c.id = chunk_id;
        c.task_id = v.a[0].Str();
        c.state = StateOf(v.a[1].Str());
        c.attempts = static_cast<int>(v.a[2].Int());
        c.crashes = static_cast<int>(v.a[3].Int());
        c.owner = v.a[4].Str();
        c.last_error = v.a[5].Str();
        c.available_at_ms = v.a[6].Int();
        c.idx = static_cast<int>(v.a[7].Int());
        c.leased_at_ms = v.a[8].Int();  // nil on a chunk from before the field: 0
        c.updated_at_ms = v.a[9].Int();
        return c;
      }
    }
    return Status::NotFound("chunk " + chunk_id + " not found");
  }

  Result<std::vector<ChunkInfo>> ListFirstChunks(const std::string& task_id, int64_t max_chunks) override {
    KG_ASSIGN_OR_RETURN(auto providers, Members(ns_ + ":providers"));
    std::vector<ChunkInfo> out;
    if (providers.empty() || max_chunks == 0) return out;
    std::vector<Call> calls;
    const std::string last = std::to_string(max_chunks < 0 ? -1 : max_chunks - 1);  // ZRANGE's stop
    for (const auto& p : providers) calls.push_back(Call::Eval(list_, {Base(p)}, {Now(), task_id, last}));
    KG_ASSIGN_OR_RETURN(auto vs, client_.Run(calls));
    for (const auto& v : vs) {
      for (size_t k = 0; k + 10 <= v.a.size(); k += 10) {
        ChunkInfo c;
        c.id = v.a[k].Str();
        c.task_id = task_id;
        c.state = StateOf(v.a[k + 1].Str());
        c.attempts = static_cast<int>(v.a[k + 2].Int());
        c.crashes = static_cast<int>(v.a[k + 3].Int());
        c.owner = v.a[k + 4].Str();
        c.last_error = v.a[k + 5].Str();
        c.available_at_ms = v.a[k + 6].Int();
        c.idx = static_cast<int>(v.a[k + 7].Int());
        c.leased_at_ms = v.a[k + 8].Int();
        c.updated_at_ms = v.a[k + 9].Int();
        out.push_back(std::move(c));
      }
    }
    return out;  // max_chunks holds: a task's chunks share one provider (see the top)
  }

  void WaitForWork(const std::string& provider, int max_wait_ms, int wake_fd, bool include_suspect) override {
    int64_t deadline = MonoMs() + max_wait_ms;
    auto sub = TakeSubscriber(provider);
    // Subscribed (again, after a loss) before asking, so a chunk made ready after the answer
    // is published to a socket already listening.
    if (sub->connected()) {
      auto pending = sub->Drain();  // wake-ups from before this wait: the question below covers them
      if (!pending.ok()) return;
    } else if (int64_t retry_at = ResubscribeAt(provider); MonoMs() < retry_at) {
      deadline = std::min(deadline, retry_at);  // refused lately: wait without wake-ups until then
    } else if (Status s = sub->Subscribe(Base(provider) + ":wake"); !s.ok()) {
      // Down (the next lease call reports it) or refused: either way not subscribed, so return
      // now rather than sleep through wake-ups; a refusal is retried after kResubscribeAfterMs.
      if (s.code() == Code::kInternal) SetResubscribeAt(provider, MonoMs() + kResubscribeAfterMs);
      GiveSubscriber(provider, std::move(sub));
      return;
    }
    auto due = client_.Run(Call::Eval(next_due_, {Base(provider)}, {Now(), include_suspect ? "1" : "0"}));
    if (!due.ok() || due->a.size() != 2) {
      GiveSubscriber(provider, std::move(sub));
      return;
    }
    int64_t wait = max_wait_ms;
    if (int64_t t = due->a[1].Int(-1); t >= 0) wait = std::min<int64_t>(wait, std::max<int64_t>(0, t - due->a[0].Int()));
    deadline = std::min(deadline, MonoMs() + wait);
    while (true) {
      int64_t left = deadline - MonoMs();
      if (left <= 0) break;
      pollfd fds[2] = {{sub->fd(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      int n = ::poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (wake_fd >= 0 && (fds[1].revents & POLLIN)) break;
      if (fds[0].revents) {
        auto got = sub->Drain();  // a message, or EOF: either way return (spurious returns are allowed)
        if (!got.ok() || !got->empty()) break;
      }
    }
    GiveSubscriber(provider, std::move(sub));
  }

 private:
  std::string Base(const std::string& provider) const { return ns_ + ":{" + provider + "}"; }
  std::string Now() const { return o_.now_ms ? std::to_string(o_.now_ms()) : std::string(); }

  double UnitRandom() {
    MutexLock lock(rng_mu_);
    return std::uniform_real_distribution<double>(0, 1)(rng_);
  }

  Result<std::vector<std::string>> Members(const std::string& key) {
    KG_ASSIGN_OR_RETURN(auto v, client_.Run(Call::Cmd({"SMEMBERS", key})));
    std::vector<std::string> out;
    for (const auto& m : v.a) out.push_back(m.Str());
    std::sort(out.begin(), out.end());
    return out;
  }

  // A script on one leased chunk, addressed by the provider in its token: 1 applied, 0 stale.
  Status Fenced(const Script& s, const std::string& chunk_id, const std::string& token, const char* op,
                std::vector<std::string> extra) {
    auto bar = token.rfind('|');
    if (bar == std::string::npos) return Status::Conflict(std::string(op) + " " + chunk_id + ": lease is stale or gone");
    std::vector<std::string> argv{Now(), chunk_id, token};
    argv.insert(argv.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    KG_ASSIGN_OR_RETURN(auto v, client_.Run(Call::Eval(s, {Base(token.substr(0, bar))}, std::move(argv))));
    if (v.Int() != 1) return Status::Conflict(std::string(op) + " " + chunk_id + ": lease is stale or gone");
    return Status::Ok();
  }

  // Runs `s` on every provider (pipelined, one round trip) and sums the integer replies.
  Result<int> PerProvider(const Script& s, std::vector<std::string> argv) {
    KG_ASSIGN_OR_RETURN(auto providers, Members(ns_ + ":providers"));
    return Sum(s, providers, std::move(argv));
  }
  Result<int> Sum(const Script& s, const std::vector<std::string>& providers, std::vector<std::string> argv) {
    if (providers.empty()) return 0;
    argv.insert(argv.begin(), Now());
    std::vector<Call> calls;
    for (const auto& p : providers) calls.push_back(Call::Eval(s, {Base(p)}, argv));
    KG_ASSIGN_OR_RETURN(auto vs, client_.Run(calls));
    int n = 0;
    for (const auto& v : vs) n += static_cast<int>(v.Int());
    return n;
  }

  std::unique_ptr<redis::Connection> TakeSubscriber(const std::string& provider) {
    {
      MutexLock lock(subs_mu_);
      auto& list = subs_[provider];
      if (!list.empty()) {
        auto s = std::move(list.back());
        list.pop_back();
        return s;
      }
    }
    return client_.NewConnection();
  }
  void GiveSubscriber(const std::string& provider, std::unique_ptr<redis::Connection> s) {
    MutexLock lock(subs_mu_);
    subs_[provider].push_back(std::move(s));
  }
  // When a wait may try to subscribe for `provider` again after a refusal (0: at once).
  int64_t ResubscribeAt(const std::string& provider) {
    MutexLock lock(subs_mu_);
    auto it = resubscribe_at_.find(provider);
    return it == resubscribe_at_.end() ? 0 : it->second;
  }
  void SetResubscribeAt(const std::string& provider, int64_t at_ms) {
    MutexLock lock(subs_mu_);
    resubscribe_at_[provider] = at_ms;
  }

  const std::string ns_;
  redis::Client client_;
  QueueOptions o_;
  const Script enqueue_ = MakeScript(redis_queue::kEnqueue);
  const Script lease_ = MakeScript(redis_queue::kLease);
  const Script renew_ = MakeScript(redis_queue::kRenew);
  const Script ack_ = MakeScript(redis_queue::kAck);
  const Script nack_ = MakeScript(redis_queue::kNack);
  const Script release_ = MakeScript(redis_queue::kRelease);
  const Script release_owner_ = MakeScript(redis_queue::kReleaseOwner);
  const Script reclaim_ = MakeScript(redis_queue::kReclaim);
  const Script cancel_ = MakeScript(redis_queue::kCancel);
  const Script retry_ = MakeScript(redis_queue::kRetry);
  const Script list_ = MakeScript(redis_queue::kList);
  const Script next_due_ = MakeScript(redis_queue::kNextDue);
  const Script depth_ = MakeScript(redis_queue::kDepth);
  Mutex rng_mu_;
  std::mt19937_64 rng_ KG_GUARDED_BY(rng_mu_){std::random_device{}()};
  // Subscribers kept subscribed between waits, per provider; a waiter takes one for its wait.
  Mutex subs_mu_;
  std::map<std::string, std::vector<std::unique_ptr<redis::Connection>>> subs_ KG_GUARDED_BY(subs_mu_);
  // Per provider, the monotonic moment after a refused SUBSCRIBE before which no wait tries again.
  std::map<std::string, int64_t> resubscribe_at_ KG_GUARDED_BY(subs_mu_);
};

}  // namespace

Result<std::unique_ptr<Queue>> OpenRedisQueue(const RedisEndpoint& at, QueueOptions options) {
  if (at.host.empty()) return Status::Invalid("redis queue: no host");
  if (at.ns.empty() || at.ns.find_first_of("{}") != std::string::npos) {
    return Status::Invalid("redis queue: namespace must be non-empty and without braces");
  }
  auto q = std::make_unique<RedisQueue>(at, std::move(options));
  KG_RETURN_IF_ERROR(q->Ping().With("open redis queue"));
  return std::unique_ptr<Queue>(std::move(q));
}

}  // namespace kg
