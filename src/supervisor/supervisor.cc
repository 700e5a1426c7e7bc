#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <deque>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "common/mutex.h"
#include "common/outage_log.h"
#include "common/util.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/node_registry.h"
#include "supervisor/proc_stats.h"
#include "supervisor/reaper.h"
#include "supervisor/restart_policy.h"
#include "supervisor/spawner.h"
#include "supervisor/store_effects.h"
#include "supervisor/worker_accounts.h"
#include "worker/exit_codes.h"

namespace kg {

namespace {

constexpr int64_t kBusyTickMs = 2000;   // RSS/CPU sampling while a worker is busy
constexpr int64_t kIdleTickMs = Supervisor::kGuardMaxIdleTurnMs;  // ... and while all are idle (memory does not grow)

RestartPolicyOptions PolicyOptions(const Config& c) {
  RestartPolicyOptions o;
  o.quarantine_ms = c.quarantine_seconds * 1000LL;
  o.spawn_budget_per_minute = std::max(60, 4 * c.max_total_processes);
  return o;
}

}  // namespace

void BlockSupervisorSignals() {
  // A shell starts background jobs with SIGINT ignored; an ignored signal is never
  // pending, so restore the defaults before blocking (sigwaitinfo then receives them).
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) signal(s, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

std::map<std::string, int> ApplyProcessCaps(const Config& c, const std::map<std::string, int>& wanted) {
  std::map<std::string, int> want, got;
  for (const auto& p : c.enabled_providers) {
    auto it = wanted.find(p);
    want[p] = std::min(it == wanted.end() ? 0 : it->second, c.max_processes_per_provider);
    got[p] = 0;
  }
  int total = 0;
  bool progress = true;
  while (progress && total < c.max_total_processes) {
    progress = false;
    for (const auto& p : c.enabled_providers) {
      if (got[p] < want[p] && total < c.max_total_processes) {
        ++got[p];
        ++total;
        progress = true;
      }
    }
  }
  return got;
}

CapBinding BindingCap(const Config& c, const std::map<std::string, int>& wanted, const std::string& provider) {
  CapBinding b;
  auto it = wanted.find(provider);
  int asked = it == wanted.end() ? 0 : it->second;
  int got = ApplyProcessCaps(c, wanted)[provider];
  if (got >= asked) return b;
  // The total alone (as if there were no per-provider cap): if it gives no more than the
  // target, the total binds, also when the per-provider cap has the same value (it defaults
  // to the total); otherwise the per-provider cap does.
  Config total_only = c;
  total_only.max_processes_per_provider = c.max_total_processes;
  int by_total = ApplyProcessCaps(total_only, wanted)[provider];
  int others = 0;
  for (const auto& p : c.enabled_providers) {
    if (p != provider) others += ApplyProcessCaps(c, wanted)[p];
  }
  if (by_total <= got) {
    b.cap = "KG_MAX_TOTAL_PROCESSES";
    b.value = c.max_total_processes;
    b.reason = fmt::format("KG_MAX_TOTAL_PROCESSES={}", c.max_total_processes);
    if (others > 0) b.reason += fmt::format(" ({} taken by other providers)", others);
  } else {
    b.cap = "KG_MAX_PROCESSES_PER_PROVIDER";
    b.value = c.max_processes_per_provider;
    b.reason = fmt::format("KG_MAX_PROCESSES_PER_PROVIDER={}", c.max_processes_per_provider);
  }
  return b;
}

class Supervisor::Impl {
 public:
  Impl(const Config& c, std::string exe, std::unique_ptr<Queue> q, std::unique_ptr<TaskStore> s, UniqueFd lock)
      : c_(c),
        exe_(std::move(exe)),
        queue_(std::move(q)),
        store_(std::move(s)),
        registry_(c, *store_),
        lock_(std::move(lock)),
        // Node registry, expired-lease reclaim, settings: every KG_HEARTBEAT_SECONDS on the store thread.
        effects_(*queue_, *store_, [this] { Heartbeat(); }, c.heartbeat_seconds * 1000LL,
                 [this](const std::string& p, uint64_t seq) { Persisted(p, seq); }),
        policy_(PolicyOptions(c), [] { return MonoMs(); }),
        accounts_(c.enabled_providers) {
    wake_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    for (const auto& p : c_.enabled_providers) {
      auto& ps = providers_[p];
      auto stored = store_->GetSetting(ScaleSettingKey(p));
      if (stored.ok() && stored->has_value()) {
        if (auto n = ParseScaleSetting(**stored)) {
          ps.override_per_node = *n;
          if (*n != c_.workers_per_provider) {
            spdlog::warn("  provider {}: runtime override in force: {} per node (stored by `kgflow scale`), not the "
                         "configured KG_WORKERS_PER_PROVIDER={}; `kgflow scale {} --reset` returns to it",
                         p, *n, c_.workers_per_provider, p);
          }
        }
      }
    }
  }

  ~Impl() {
    Stop(true);
    Wait();
  }

  void Start(std::function<void(const Status&)> on_name_lost) {
    {
      MutexLock l(mu_);
      if (started_) {
        spdlog::warn("supervisor: the guard is already running; not starting another");
        return;
      }
      started_ = true;
      on_name_lost_ = std::move(on_name_lost);
    }
    // The name is this process's before anything runs under it (a node has claimed it already:
    // this claim only rewrites our own record). Beats never claim it: they stop the node once
    // the record is not ours. A live holder elsewhere: nothing of its is given back, no worker runs.
    if (Status claimed = registry_.Claim(); claimed.code() == Code::kConflict) {
      std::function<void(const Status&)> on_lost;
      {
        MutexLock l(mu_);
        name_lost_ = true;
        stop_requested_ = true;
        on_lost = on_name_lost_;
      }
      spdlog::error("supervisor: {}", claimed.message());
      if (on_lost) on_lost(claimed);
    } else {
      if (!claimed.ok()) spdlog::warn("supervisor: node registry: {}", claimed.message());
      // Before any worker of this run exists (their owners share the prefix); not under mu_.
      auto freed = queue_->ReleaseOwnersWithPrefix(c_.node_name + "/");
      if (freed.ok() && *freed > 0) {
        spdlog::warn("supervisor: gave back {} chunks held by workers of a previous run of node {}", *freed,
                     c_.node_name);
      }
    }
    effects_.Start();
    last_turn_ms_.store(MonoMs());
    MutexLock j(join_mu_);
    thread_ = std::thread([this] { Loop(); });
    pthread_setname_np(thread_.native_handle(), "kg-guard");
  }

  Result<ScaleResult> Scale(const std::string& provider, int per_node) {
    if (per_node < 0) return Status::Invalid("per_node must be 0 or more");
    ScaleResult r;
    uint64_t seq = 0;
    {
      MutexLock l(mu_);
      if (!providers_.count(provider)) return Status::NotFound("provider " + provider + " is not enabled on this node");
      auto& ps = providers_.at(provider);
      ps.override_per_node = per_node;
      ++ps.scale_seq;  // a settings read started before this call must not undo it
      seq = ps.scale_seq;
      r.provider = provider;
      r.configured = c_.workers_per_provider;
      r.override_per_node = per_node;
      r.requested = per_node;
      r.per_node = DesiredLocked()[provider];
      NameBindingCapLocked(provider, &r);
      r.clamped = r.per_node < per_node;
    }
    effects_.PersistScale(provider, per_node, seq);  // so that a slow store does not hold up the caller
    Wake();
    return r;
  }

  Result<ScaleResult> ResetScale(const std::string& provider) {
    ScaleResult r;
    uint64_t seq = 0;
    {
      MutexLock l(mu_);
      if (!providers_.count(provider)) return Status::NotFound("provider " + provider + " is not enabled on this node");
      auto& ps = providers_.at(provider);
      ps.override_per_node.reset();
      ++ps.scale_seq;
      seq = ps.scale_seq;
      r.provider = provider;
      r.requested = c_.workers_per_provider;
      r.configured = c_.workers_per_provider;
      r.per_node = DesiredLocked()[provider];
      r.clamped = r.per_node < r.requested;
      NameBindingCapLocked(provider, &r);
    }
    effects_.PersistScale(provider, std::nullopt, seq);  // removed from the store
    Wake();
    spdlog::info("supervisor: provider {}: runtime override removed; back to KG_WORKERS_PER_PROVIDER={}", provider,
                 c_.workers_per_provider);
    return r;
  }

  std::vector<ProviderScale> Scales() const {
    MutexLock l(mu_);
    auto desired = DesiredLocked();
    std::vector<ProviderScale> out;
    for (const auto& p : c_.enabled_providers) {
      const auto& ps = providers_.at(p);
      out.push_back({p, c_.workers_per_provider, ps.override_per_node, desired[p]});
    }
    return out;
  }

  std::vector<ProcessView> Snapshot() const {
    MutexLock l(mu_);
    std::vector<ProcessView> out;
    for (const auto& [pid, ch] : children_) {
      ProcessView v;
      v.pid = pid;
      v.provider = ch.provider;
      v.state = ch.stop_sent ? "stopping" : ch.state;
      v.rss_bytes = ch.stats.rss_bytes;
      v.cpu_seconds = ch.stats.cpu_seconds;
      v.chunks_done = ch.chunks_done;
      const auto& ps = providers_.at(ch.provider);
      v.restarts = ch.restarts;
      v.last_exit = ch.last_exit;
      v.provider_restarts = ps.restarts;
      v.spawns = ps.spawns;
      out.push_back(v);
    }
    for (const auto& [name, ps] : providers_) {
      bool quarantined = policy_.Quarantined(name);
      bool backoff = policy_.BackingOff(name);
      if (!quarantined && !backoff) continue;
      bool running = false;
      for (const auto& kv : children_) running = running || kv.second.provider == name;
      if (running && !quarantined) continue;
      ProcessView v;
      v.provider = name;
      v.state = quarantined ? "quarantined" : "backoff";
      // Backing off: the slot waiting for its replacement; quarantined: the provider's history.
      bool slot = !quarantined && !ps.vacancies.empty();
      v.restarts = slot ? ps.vacancies.front().restarts : ps.restarts;
      v.last_exit = slot ? ps.vacancies.front().last_exit : ps.last_exit;
      v.provider_restarts = ps.restarts;
      v.spawns = ps.spawns;
      out.push_back(v);
    }
    return out;
  }

  std::map<std::string, ProviderTelemetry> Telemetry() const {
    MutexLock l(mu_);
    auto stats = accounts_.Stats();
    std::map<std::string, ProviderTelemetry> out;
    for (const auto& p : c_.enabled_providers) {
      auto& t = out[p];
      t.stats = stats[p];
      t.exits = accounts_.Exits().at(p);
      t.spawns = providers_.at(p).spawns;
      t.restarts = providers_.at(p).restarts;
      t.quarantined = policy_.Quarantined(p);
      t.quarantine_remaining_seconds = t.quarantined ? policy_.QuarantineRemainingMs(p) / 1000.0 : 0;
    }
    return out;
  }

  std::vector<QuarantineView> Quarantines() const {
    MutexLock l(mu_);
    std::vector<QuarantineView> out;
    for (const auto& p : c_.enabled_providers) {
      if (policy_.Quarantined(p)) out.push_back({p, policy_.QuarantineRemainingMs(p) / 1000.0});
    }
    return out;
  }

  std::string SnapshotJson() const {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& v : Snapshot()) {
      arr.push_back({{"pid", v.pid}, {"provider", v.provider}, {"state", v.state}, {"rss_bytes", v.rss_bytes},
                     {"cpu_seconds", v.cpu_seconds}, {"chunks_done", v.chunks_done}, {"restarts", v.restarts},
                     {"last_exit", v.last_exit}});
    }
    return arr.dump();
  }

  void Stop(bool cold) {
    {
      MutexLock l(mu_);
      stop_requested_ = true;
      cold_ = cold_ || cold;
    }
    Wake();
  }

  void Wait() {
    MutexLock l(join_mu_);
    if (thread_.joinable()) thread_.join();
    effects_.Join();
  }

  int64_t LastTurnMs() const { return last_turn_ms_.load(); }

 private:
  struct Child {
    std::string provider;
    std::string owner;
    UniqueFd status;  // read end of the worker's status pipe
    std::string buf;
    std::string state = "starting";
    int64_t started_at = 0;
    int64_t chunks_done = 0;
    bool stop_sent = false;
    std::string stop_reason;
    bool rss_reported = false;
    bool bad_line_reported = false;  // a status line it wrote was not understood (logged once)
    ProcStats stats;
    int64_t restarts = 0;   // of this process slot: replacements before this process
    std::string last_exit;  // how the slot's previous process ended; "" for a first process
  };
  // A process slot whose process ended and was not asked to go away (a crash, a recycle):
  // its replacement takes it over, with its history.
  struct Vacancy {
    int64_t restarts = 0;  // including the replacement to come
    std::string last_exit;
  };
  // What the supervisor shows and wants per provider; the restart policy has the rest.
  struct ProviderState {
    std::optional<int> override_per_node;  // stored by `scale`; none: KG_WORKERS_PER_PROVIDER
    uint64_t scale_seq = 0;                // bumped by Scale() and ResetScale()
    uint64_t persisted_seq = 0;            // the scale_seq whose setting the store holds
    int64_t restarts = 0;   // replacements of this provider's processes since start
    int64_t spawns = 0;
    std::string last_exit;  // the provider's last process exit (shown while quarantined)
    std::string last_refusal;
    std::deque<Vacancy> vacancies;  // slots waiting for their replacement, oldest first
  };
  // The processes per node a provider is set to: its override, else the configuration.
  int Setting(const ProviderState& ps) const { return ps.override_per_node.value_or(c_.workers_per_provider); }

  using Release = StoreEffects::Release;

  void Wake() {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
  }

  // Which cap (or quarantine) holds `provider` below its setting, into `r`.
  void NameBindingCapLocked(const std::string& provider, ScaleResult* r) const KG_REQUIRES(mu_) {
    if (policy_.Quarantined(provider)) {
      if (r->per_node >= r->requested) return;
      r->binding_cap = "quarantine";
      r->reason = "provider is quarantined";
      return;
    }
    std::map<std::string, int> wanted;
    for (const auto& p : c_.enabled_providers) wanted[p] = Setting(providers_.at(p));
    CapBinding bind = BindingCap(c_, wanted, provider);
    r->binding_cap = bind.cap;
    r->binding_value = bind.value;
    r->reason = bind.reason;
  }

  // Desired processes per provider after both caps; quarantined providers get none.
  std::map<std::string, int> DesiredLocked() const KG_REQUIRES(mu_) {
    std::map<std::string, int> want;
    for (const auto& p : c_.enabled_providers) want[p] = policy_.Quarantined(p) ? 0 : Setting(providers_.at(p));
    return ApplyProcessCaps(c_, want);
  }

  void LogRefusals(const std::map<std::string, int>& desired) KG_REQUIRES(mu_) {
    for (auto& [p, ps] : providers_) {
      std::string msg;
      if (Setting(ps) > c_.max_processes_per_provider) {
        msg = fmt::format("provider {}: KG_MAX_PROCESSES_PER_PROVIDER={} refuses {} of {} requested processes", p,
                          c_.max_processes_per_provider, Setting(ps) - c_.max_processes_per_provider, Setting(ps));
      } else if (desired.at(p) < Setting(ps) && !policy_.Quarantined(p)) {
        msg = fmt::format("provider {}: KG_MAX_TOTAL_PROCESSES={} refuses {} of {} requested processes", p,
                          c_.max_total_processes, Setting(ps) - desired.at(p), Setting(ps));
      }
      if (msg != ps.last_refusal) {
        if (!msg.empty()) spdlog::error("supervisor: {}", msg);
        ps.last_refusal = msg;
      }
    }
  }

  int CountLocked(const std::string& provider, bool include_stopping) const KG_REQUIRES(mu_) {
    int n = 0;
    for (const auto& [_, ch] : children_) {
      if ((provider.empty() || ch.provider == provider) && (include_stopping || !ch.stop_sent)) ++n;
    }
    return n;
  }

  void Reconcile() KG_REQUIRES(mu_) {
    for (const auto& p : policy_.TakeEndedQuarantines()) {
      spdlog::warn("supervisor: quarantine of provider {} is over; starting its workers again", p);
    }
    auto desired = DesiredLocked();
    LogRefusals(desired);
    for (const auto& p : c_.enabled_providers) {
      int live = CountLocked(p, false);
      int target = desired[p];
      // Scale down: stop idle processes first, then the newest.
      while (live > target) {
        Child* pick = nullptr;
        pid_t pick_pid = 0;
        for (auto& [pid, ch] : children_) {
          if (ch.provider != p || ch.stop_sent) continue;
          if (!pick || (ch.state == "idle" && pick->state != "idle") ||
              (ch.state == pick->state && ch.started_at > pick->started_at)) {
            pick = &ch;
            pick_pid = pid;
          }
        }
        if (!pick) break;
        StopChild(pick_pid, *pick, "scaled down", SIGTERM);
        --live;
      }
      // A scale-down (or quarantine) removes slots: vacancies beyond the target go with them.
      auto& vacant = providers_.at(p).vacancies;
      while (static_cast<int>(vacant.size()) > std::max(0, target - live)) vacant.pop_back();
      while (live < target) {
        if (policy_.BackingOff(p)) break;
        if (CountLocked("", true) >= c_.max_total_processes || CountLocked(p, true) >= c_.max_processes_per_provider) {
          break;  // a stopping process still holds the slot; it frees on reap
        }
        if (!policy_.BudgetAllows()) {
          if (policy_.TakeBudgetExhaustedReport()) {
            spdlog::error("supervisor: {} spawns in the last minute; holding spawns",
                          policy_.options().spawn_budget_per_minute);
          }
          break;
        }
        if (!Spawn(p)) {
          RecordFailure(p, "spawn failed", MonoMs());
          break;
        }
        ++live;
      }
    }
  }

  bool Spawn(const std::string& provider) KG_REQUIRES(mu_) {
    std::string owner = fmt::format("{}/{}/{}", c_.node_name, getpid(), ++spawn_seq_);
    auto spawned = SpawnWithStatusPipe(exe_, {exe_, "__worker", "--provider", provider, "--owner", owner,
                                              "--parent-pid", std::to_string(getpid()), "--status-fd", "3"});
    if (!spawned.ok()) {
      spdlog::error("supervisor: spawn of a {} worker failed: {}", provider, spawned.status().message());
      return false;
    }
    pid_t pid = spawned->pid;
    reaper_.Track(pid);
    Child ch;
    ch.provider = provider;
    ch.owner = owner;
    ch.status = std::move(spawned->status);
    ch.started_at = MonoMs();
    policy_.RecordSpawn();
    auto& ps = providers_.at(provider);
    ++ps.spawns;
    if (!ps.vacancies.empty()) {  // a replacement: the slot's history goes on
      ch.restarts = ps.vacancies.front().restarts;
      ch.last_exit = ps.vacancies.front().last_exit;
      ps.vacancies.pop_front();
    }
    children_.emplace(pid, std::move(ch));
    spdlog::info("supervisor: spawned worker pid={} provider={} owner={}", pid, provider, owner);
    return true;
  }

  void StopChild(pid_t pid, Child& ch, const std::string& reason, int sig) KG_REQUIRES(mu_) {
    if (!ch.stop_sent) spdlog::info("supervisor: stopping worker pid={} provider={}: {}", pid, ch.provider, reason);
    ch.stop_sent = true;
    ch.stop_reason = reason;
    ::kill(pid, sig);
  }

  void RecordFailure(const std::string& provider, const std::string& reason, int64_t started_at) KG_REQUIRES(mu_) {
    auto v = policy_.OnFailure(provider, started_at);
    const auto& o = policy_.options();
    if (v.quarantined) {
      spdlog::error("supervisor: provider {} quarantined for {} s after {} failures within {} s (last: {})", provider,
                    c_.quarantine_seconds, o.quarantine_failures, o.failure_window_ms / 1000, reason);
    } else if (v.backoff_ms > 0) {
      spdlog::warn("supervisor: provider {} backing off {} ms after {} consecutive failures", provider, v.backoff_ms,
                   v.consecutive);
    }
  }

  // Reaps exited workers; returns what they held, to give back after mu_ is released.
  std::vector<Release> ReapAll() KG_REQUIRES(mu_) {
    std::vector<Release> releases;
    for (const auto& [pid, exit] : reaper_.ReapExited()) {
      auto it = children_.find(pid);
      if (it == children_.end()) continue;
      Child& ch = it->second;
      ReadStatus(pid, ch);  // the last lines it wrote
      std::string how = exit.Describe();
      bool clean_code = exit.exited && (exit.code == kWorkerExitStopped || exit.code == kWorkerExitRecycled);
      // A worker we did not ask to stop that exits uncleanly crashed: what it held counts a crash.
      bool crashed = !clean_code && !ch.stop_sent;
      std::string reason = ch.stop_sent ? ch.stop_reason + " (" + how + ")"
                           : exit.exited && exit.code == kWorkerExitRecycled
                               ? "recycled after " + std::to_string(ch.chunks_done) + " chunks"
                               : how;
      auto& ps = providers_.at(ch.provider);
      ps.last_exit = reason;
      // Replaced in its slot: a crash or a recycle (by count, or asked for by the RSS limit);
      // a process stopped for a scale-down or the node's stop leaves no slot behind.
      bool replaced = !ch.stop_sent || ch.stop_reason.rfind("recycled", 0) == 0;
      if (replaced) {
        ++ps.restarts;
        ps.vacancies.push_back({ch.restarts + 1, reason});
      }
      bool recycled = (exit.exited && exit.code == kWorkerExitRecycled) || ch.stop_reason.rfind("recycled", 0) == 0;
      accounts_.Ended(pid, ch.provider, crashed ? kExitCrashed : recycled ? kExitRecycled : kExitStopped);
      if (crashed) {
        spdlog::error("supervisor: worker pid={} provider={} died: {}", pid, ch.provider, how);
        RecordFailure(ch.provider, how, ch.started_at);
      } else {
        spdlog::info("supervisor: worker pid={} provider={} exited: {}", pid, ch.provider, reason);
        policy_.OnCleanExit(ch.provider, ch.started_at);
      }
      releases.push_back({pid, ch.provider, ch.owner, crashed, how});
      children_.erase(it);
    }
    return releases;
  }

  void ReadStatus(pid_t pid, Child& ch) KG_REQUIRES(mu_) {
    char buf[1024];
    ssize_t n;
    while ((n = ::read(ch.status.get(), buf, sizeof buf)) > 0) ch.buf.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = ch.buf.find('\n')) != std::string::npos) {
      std::string line = ch.buf.substr(0, nl);
      ch.buf.erase(0, nl + 1);
      std::istringstream in(line);
      std::string word;
      int64_t inflight = 0, done = 0;
      in >> word >> inflight >> done;
      if (word == "ready") {
        ch.state = "idle";
        ReadProcStats(pid, false, &ch.stats);  // visible at once, not after the next tick
      } else if (word == "busy" || word == "idle") {
        // A worker became busy: sample on the busy cadence from now on.
        if (word == "busy" && ch.state != "busy") next_tick_ = std::min(next_tick_, MonoMs() + kBusyTickMs);
        ch.state = word;
        ch.chunks_done = done;
      } else if (word == "stats") {
        Status s = accounts_.Record(pid, ch.provider, std::string_view(line).substr(word.size()));
        if (!s.ok()) BadLine(pid, ch, s.message());
      } else {
        BadLine(pid, ch, "unknown status line");
      }
    }
  }

  // A status line the supervisor does not understand: ignored, logged once per process.
  void BadLine(pid_t pid, Child& ch, const std::string& why) KG_REQUIRES(mu_) {
    if (ch.bad_line_reported) return;
    ch.bad_line_reported = true;
    spdlog::warn("supervisor: worker pid={} provider={}: ignoring a status line: {} (reported once per process)", pid,
                 ch.provider, why);
  }

  void SampleStats() KG_REQUIRES(mu_) {
    for (auto& [pid, ch] : children_) {
      if (!ReadProcStats(pid, false, &ch.stats)) continue;
      if (c_.max_rss_mb <= 0 || ch.stop_sent) continue;
      if (ch.stats.rss_bytes <= static_cast<int64_t>(c_.max_rss_mb) * 1024 * 1024) continue;
      if (ch.chunks_done == 0) {
        if (!ch.rss_reported) {
          spdlog::error("supervisor: worker pid={} provider={} uses {} MB right after start, above KG_MAX_RSS_MB={}; "
                        "not recycling it (a replacement would be no smaller)",
                        pid, ch.provider, ch.stats.rss_bytes >> 20, c_.max_rss_mb);
          ch.rss_reported = true;
        }
        continue;
      }
      StopChild(pid, ch, fmt::format("recycled: RSS {} MB above KG_MAX_RSS_MB={}", ch.stats.rss_bytes >> 20,
                                     c_.max_rss_mb),
                SIGTERM);
    }
  }

  // Runs on the store thread: the node record, expired leases, and the settings other
  // nodes (or `kgflow scale` through a web node) stored. mu_ only around memory.
  // On the store thread: the setting of `provider` made at `seq` is stored.
  void Persisted(const std::string& provider, uint64_t seq) {
    MutexLock l(mu_);
    auto it = providers_.find(provider);
    if (it != providers_.end()) it->second.persisted_seq = std::max(it->second.persisted_seq, seq);
  }

  void Heartbeat() {
    std::function<void(const Status&)> on_lost;
    {
      MutexLock l(mu_);
      if (name_lost_) return;  // the name is another node's: no more beats, reclaims or settings
    }
    Status s = registry_.Beat(SnapshotJson(), Quarantines());
    if (s.code() == Code::kConflict) {
      {
        MutexLock l(mu_);
        name_lost_ = true;
        on_lost = on_name_lost_;
      }
      spdlog::error("supervisor: {}; stopping this node's workers (graceful), no more leases", s.message());
      Stop(false);
      if (on_lost) on_lost(s);
      return;
    }
    beat_outage_.Record(s);
    auto reclaimed = queue_->ReclaimExpired();
    if (reclaimed.ok() && *reclaimed > 0) spdlog::warn("supervisor: reclaimed {} chunks with expired leases", *reclaimed);
    std::map<std::string, uint64_t> seq;
    {
      MutexLock l(mu_);
      for (const auto& [p, ps] : providers_) seq[p] = ps.scale_seq;
    }
    std::map<std::string, std::optional<int>> stored;  // nullopt: no override (reset elsewhere)
    for (const auto& [p, _] : seq) {
      auto v = store_->GetSetting(ScaleSettingKey(p));
      if (!v.ok()) continue;
      if (!v->has_value()) {
        stored[p] = std::nullopt;
      } else if (auto n = ParseScaleSetting(**v)) {
        stored[p] = *n;
      }
    }
    bool changed = false;
    {
      MutexLock l(mu_);
      for (const auto& [p, n] : stored) {
        auto& ps = providers_.at(p);
        // A Scale() or reset since the read, or one not yet stored, wins over what was read.
        if (ps.scale_seq != seq[p] || ps.persisted_seq != ps.scale_seq) continue;
        changed = changed || ps.override_per_node != n;
        ps.override_per_node = n;
      }
    }
    if (changed) Wake();
  }

  void Loop() {
    {
      MutexLock l(mu_);
      next_tick_ = MonoMs() + kBusyTickMs;
    }
    int64_t stop_deadline = 0;
    bool stopping = false, killed = false;
    while (true) {
      int64_t now = MonoMs();
      last_turn_ms_.store(now);
      std::vector<pollfd> fds;
      std::vector<Release> releases;
      bool all_stopped = false;
      {
        MutexLock l(mu_);
        releases = ReapAll();
        if (stop_requested_ && !stopping) {
          stopping = true;
          stop_deadline = now + c_.stop_timeout_seconds * 1000LL + 2000;
          spdlog::info("supervisor: stopping {} workers ({})", children_.size(), cold_ ? "cold" : "graceful");
          for (auto& [pid, ch] : children_) StopChild(pid, ch, "node stopping", SIGTERM);
        }
        if (stopping && !killed && (cold_ || now >= stop_deadline)) {
          killed = true;
          for (auto& [pid, ch] : children_) {
            spdlog::warn("supervisor: SIGKILL worker pid={} provider={}", pid, ch.provider);
            ch.stop_sent = true;
            ::kill(-pid, SIGKILL);
            ::kill(pid, SIGKILL);
          }
        }
        all_stopped = stopping && children_.empty();
        if (!stopping) Reconcile();
        if (now >= next_tick_) {
          SampleStats();
          spdlog::debug("supervisor: sampled {} workers", children_.size());  // a marker tests count
          bool busy = std::any_of(children_.begin(), children_.end(),
                                  [](const auto& kv) { return kv.second.state != "idle"; });
          next_tick_ = now + (busy ? kBusyTickMs : kIdleTickMs);
        }
        fds.push_back({wake_.get(), POLLIN, 0});
        for (int fd : reaper_.PollFds()) fds.push_back({fd, POLLIN, 0});  // readable when that child exits
        for (auto& [pid, ch] : children_) fds.push_back({ch.status.get(), POLLIN, 0});
      }
      effects_.GiveBack(std::move(releases));  // after mu_, on the store thread
      if (all_stopped) break;
      int64_t timeout;
      {
        MutexLock l(mu_);
        timeout = std::min(next_tick_, policy_.NextDeadline()) - now;
      }
      if (stopping || reaper_.NeedsPolling()) timeout = std::min<int64_t>(timeout, 100);
      ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(0, timeout)));
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        while (::read(wake_.get(), &v, sizeof v) > 0) {
        }
      }
      MutexLock l(mu_);
      for (auto& [pid, ch] : children_) ReadStatus(pid, ch);
    }
    effects_.Finish();  // what the last reaped workers held, and a last heartbeat
    spdlog::info("supervisor: all workers stopped");
  }

  const Config& c_;
  const std::string exe_;
  // The supervisor's own connections, not the API's: a store call that waits out a lock
  // holds its connection, and must not hold up the API's requests meanwhile.
  const std::unique_ptr<Queue> queue_;
  const std::unique_ptr<TaskStore> store_;
  NodeRegistry registry_;
  UniqueFd lock_;   // flock on the node lock file, held for our lifetime
  UniqueFd wake_;   // eventfd: Scale/Stop wake the loop
  Reaper reaper_;   // the loop's thread only
  Mutex join_mu_;
  std::thread thread_ KG_GUARDED_BY(join_mu_);  // the loop: spawns, reaps, samples
  StoreEffects effects_;                        // every store call of the guard, on its thread
  std::atomic<int64_t> last_turn_ms_{0};        // MonoMs() at the loop's last turn (LastTurnMs)

  // The one mutex of the guard's state. No store call is made while it is held.
  mutable Mutex mu_;
  bool started_ KG_GUARDED_BY(mu_) = false;
  bool name_lost_ KG_GUARDED_BY(mu_) = false;  // a beat found the name taken over
  OutageLog beat_outage_{"supervisor: heartbeat"};
  std::function<void(const Status&)> on_name_lost_ KG_GUARDED_BY(mu_);
  bool stop_requested_ KG_GUARDED_BY(mu_) = false;
  bool cold_ KG_GUARDED_BY(mu_) = false;
  std::map<pid_t, Child> children_ KG_GUARDED_BY(mu_);
  std::map<std::string, ProviderState> providers_ KG_GUARDED_BY(mu_);
  RestartPolicy policy_ KG_GUARDED_BY(mu_);
  WorkerAccounts accounts_ KG_GUARDED_BY(mu_);  // what the workers counted, how they ended
  int64_t next_tick_ KG_GUARDED_BY(mu_) = 0;  // next RSS/CPU sample (monotonic ms)
  int64_t spawn_seq_ KG_GUARDED_BY(mu_) = 0;
};

Result<std::unique_ptr<Supervisor>> Supervisor::Create(const Config& config, std::string exe) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  std::string path = config.data_dir + "/supervisor-" + config.node_name + ".lock";
  UniqueFd lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return Status::Unavailable("open " + path + ": " + std::strerror(errno));
  if (flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    (void)!::pread(lock.get(), buf, sizeof buf - 1, 0);
    return Status::Conflict(fmt::format("another supervisor for node '{}' is running here (pid {}; lock {})",
                                        config.node_name, std::string(buf).substr(0, std::string(buf).find('\n')), path));
  }
  std::string pid = std::to_string(getpid()) + "\n";
  (void)!::ftruncate(lock.get(), 0);
  (void)!::pwrite(lock.get(), pid.data(), pid.size(), 0);
  auto own_queue = OpenQueue(config);
  if (!own_queue.ok()) return own_queue.status().With("supervisor");
  auto own_store = OpenTaskStore(config);
  if (!own_store.ok()) return own_store.status().With("supervisor");
  auto impl = std::make_unique<Impl>(config, std::move(exe), std::move(own_queue).value(), std::move(own_store).value(),
                                     std::move(lock));
  return std::unique_ptr<Supervisor>(new Supervisor(std::move(impl)));
}

Supervisor::Supervisor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Supervisor::~Supervisor() = default;
void Supervisor::Start(std::function<void(const Status&)> on_name_lost) { impl_->Start(std::move(on_name_lost)); }
Result<ScaleResult> Supervisor::Scale(const std::string& p, int n) { return impl_->Scale(p, n); }
Result<ScaleResult> Supervisor::ResetScale(const std::string& p) { return impl_->ResetScale(p); }
std::vector<ProviderScale> Supervisor::Scales() const { return impl_->Scales(); }
std::vector<ProcessView> Supervisor::Snapshot() const { return impl_->Snapshot(); }
std::string Supervisor::SnapshotJson() const { return impl_->SnapshotJson(); }
std::vector<QuarantineView> Supervisor::Quarantines() const { return impl_->Quarantines(); }
std::map<std::string, ProviderTelemetry> Supervisor::Telemetry() const { return impl_->Telemetry(); }
void Supervisor::Stop(bool cold) { impl_->Stop(cold); }
void Supervisor::Wait() { impl_->Wait(); }
int64_t Supervisor::LastTurnMs() const { return impl_->LastTurnMs(); }

}  // namespace kg
