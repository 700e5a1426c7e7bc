// The per-process connection pool: a hard cap on open connections, a health check (RESET) on
// borrow for a connection idle a while or suspect after an error, routing for neo4j:// (a
// table from ROUTE, refreshed on its TTL and after a routing failure), and InTransaction's
// retries with jittered exponential backoff.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "bolt/bolt.h"
#include "common/mutex.h"
#include "common/outage_log.h"
#include "common/util.h"

namespace kg::bolt {

namespace {

// An idle connection older than this is checked with RESET before it is lent: the server (or
// a firewall) may have closed it meanwhile.
constexpr int64_t kCheckAfterIdleMs = 5000;

// "HOST:PORT" or "[V6]:PORT" -> host, port.
bool SplitAddress(const std::string& a, std::string& host, int& port) {
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon + 1 == a.size()) return false;
  host = a.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  port = 0;
  for (size_t i = colon + 1; i < a.size(); ++i) {
    if (a[i] < '0' || a[i] > '9' || port > 65535) return false;
    port = port * 10 + (a[i] - '0');
  }
  return !host.empty() && port > 0 && port <= 65535;
}

// The server named is not (or no longer) the writer: the routing table is out of date. A lost
// or unreachable server is the other routing failure; the caller knows that one (`lost`), not
// the Status: a read timeout or a full pool is kUnavailable without a code too, and says
// nothing about the routing table.
bool RoutingCode(const Status& s) {
  std::string code = Neo4jCode(s);
  return code == "Neo.ClientError.Cluster.NotALeader" || code == "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase";
}

// The outage log of an endpoint, one for the whole process: the pools a process opens again
// and again while a server is away (a node waiting for it at start) log its outage once.
class OutageLogs {
 public:
  static OutageLog& Of(const std::string& name) {
    static OutageLogs* logs = new OutageLogs();  // never destroyed: used from any thread until exit
    MutexLock l(logs->mu_);
    std::unique_ptr<OutageLog>& log = logs->by_name_[name];
    if (!log) log = std::make_unique<OutageLog>("neo4j " + name);
    return *log;
  }

 private:
  Mutex mu_;
  std::map<std::string, std::unique_ptr<OutageLog>> by_name_ KG_GUARDED_BY(mu_);
};

}  // namespace

struct Pool::Impl {
  explicit Impl(const Neo4jEndpoint& endpoint)
      : e(endpoint), name(Describe(endpoint)), routing(endpoint.scheme == "neo4j"), outage(OutageLogs::Of(name)) {
    initial = HostPort(e.host, e.port);
  }

  const Neo4jEndpoint e;
  const std::string name;     // bolt://HOST:PORT, for messages
  const bool routing;         // neo4j://
  std::string initial;        // the configured server as "HOST:PORT"
  OutageLog& outage;

  struct Idle {
    std::unique_ptr<Connection> c;
    int64_t since_ms = 0;
    bool suspect = false;
  };
  mutable Mutex mu;
  CondVar freed;  // a connection came back or a slot was given up
  std::deque<Idle> idle KG_GUARDED_BY(mu);  // most recently returned at the back
  int open KG_GUARDED_BY(mu) = 0;    // connections that exist (idle, lent, or being opened)
  int in_use KG_GUARDED_BY(mu) = 0;  // lent (or being opened / checked for a borrower)
  Connection::RoutingTable table KG_GUARDED_BY(mu);
  int64_t table_expires_ms KG_GUARDED_BY(mu) = 0;  // MonoMs; 0: none or stale
  uint64_t next_reader KG_GUARDED_BY(mu) = 0;
  int64_t refreshes KG_GUARDED_BY(mu) = 0;
  int waiters KG_GUARDED_BY(mu) = 0;      // Acquire calls waiting at the cap
  std::string bookmark KG_GUARDED_BY(mu);  // the latest COMMIT's or auto-commit query's
  std::mt19937_64 rng KG_GUARDED_BY(mu){std::random_device{}()};

  // Gives up a slot taken for a borrower (the connection it held, if any, is already gone).
  void DropSlot() {
    MutexLock l(mu);
    --open;
    --in_use;
    freed.NotifyOne();
  }

  // A connection to one of `targets` ("HOST:PORT"): an idle one (checked if idle long or
  // suspect), else a new one to targets[0] while below the cap (closing an idle connection to
  // another server if that is what holds the slot), else waits for one up to `deadline`.
  // `*lost` (if given) is set when the failure was the server: it could not be reached.
  Result<std::unique_ptr<Connection>> Acquire(const std::vector<std::string>& targets, int64_t deadline,
                                              bool* lost = nullptr) {
    for (;;) {
      std::unique_ptr<Connection> got, victim;
      bool check = false;
      {
        MutexLock l(mu);
        for (;;) {
          for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
            if (std::find(targets.begin(), targets.end(), it->c->address()) == targets.end()) continue;
            check = it->suspect || MonoMs() - it->since_ms > kCheckAfterIdleMs || it->c->unsolicited_input();
            got = std::move(it->c);
            idle.erase(std::next(it).base());
            break;
          }
          if (got) break;
          if (open < e.pool_size) {
            ++open;
            break;
          }
          if (!idle.empty()) {  // at the cap, but an idle connection to another server holds a slot
            victim = std::move(idle.front().c);
            idle.pop_front();
            break;
          }
          int64_t left = deadline - MonoMs();
          if (left <= 0) {
            return Status::Unavailable("neo4j " + name + ": pool exhausted (" + std::to_string(in_use) + " of " +
                                       std::to_string(e.pool_size) + " in use; waited " +
                                       std::to_string(e.borrow_timeout_ms) + " ms; KG_NEO4J_POOL_SIZE)");
          }
          ++waiters;
          freed.WaitUntil(l, std::chrono::steady_clock::now() + std::chrono::milliseconds(left));
          --waiters;
        }
        ++in_use;
      }
      victim.reset();  // GOODBYE outside the lock
      if (got) {
        if (!check) return got;
        Status s = got->Reset();
        if (s.ok()) return got;
        spdlog::debug("neo4j {}: an idle connection failed its check, replaced: {}", name, s.message());
        got.reset();
        DropSlot();
        continue;
      }
      std::string host;
      int port = 0;
      if (!SplitAddress(targets.at(0), host, port)) {
        DropSlot();
        return Status::Internal("neo4j " + name + ": a malformed server address '" + targets[0] + "'");
      }
      Result<std::unique_ptr<Connection>> c = Connection::Open(e, host, port);
      outage.Record(c.ok() ? Status::Ok() : c.status());
      if (!c.ok()) {
        DropSlot();
        if (lost != nullptr) *lost = c.status().code() == Code::kUnavailable && Neo4jCode(c.status()).empty();
        return c.status();
      }
      (*c)->set_bookmark_hooks(Connection::BookmarkHooks{
          [this] {
            MutexLock l(mu);
            return bookmark.empty() ? std::vector<std::string>{} : std::vector<std::string>{bookmark};
          },
          [this](const std::string& b) {
            MutexLock l(mu);
            bookmark = b;
          }});
      return c;
    }
  }

  void Release(std::unique_ptr<Connection> c) {
    // Left inside a transaction (the borrower returned early) or broken: close it.
    bool keep = c != nullptr && !c->broken() && !c->in_transaction();
    {
      MutexLock l(mu);
      --in_use;
      if (keep) {
        idle.push_back(Idle{std::move(c), MonoMs(), false});
      } else {
        --open;
      }
      freed.NotifyOne();
    }
    c.reset();
  }

  // After a transport error: every idle connection may be dead too (a restarted server).
  void MarkIdleSuspect() {
    MutexLock l(mu);
    for (Idle& i : idle) i.suspect = true;
  }
  void InvalidateRouting() {
    MutexLock l(mu);
    table_expires_ms = 0;
  }

  // Asks the known routers, then the configured server, for a new routing table.
  Status RefreshRouting(int64_t deadline) {
    std::vector<std::string> routers;
    {
      MutexLock l(mu);
      routers = table.routers;
    }
    if (std::find(routers.begin(), routers.end(), initial) == routers.end()) routers.push_back(initial);
    Status last;
    for (const std::string& r : routers) {
      Result<std::unique_ptr<Connection>> c = Acquire({r}, deadline);
      if (!c.ok()) {
        last = c.status();
        if (last.code() == Code::kInvalidArgument) return last;  // credentials: no other router helps
        continue;
      }
      Result<Connection::RoutingTable> t = (*c)->Route();
      Release(std::move(*c));
      if (!t.ok()) {
        last = t.status();
        continue;
      }
      if (t->writers.empty() && t->readers.empty()) {
        last = Status::Unavailable("neo4j " + name + ": the routing table from " + r + " names no server");
        continue;
      }
      MutexLock l(mu);
      table = std::move(*t);
      table_expires_ms = MonoMs() + std::max<int64_t>(table.ttl_seconds, 1) * 1000;
      ++refreshes;
      return Status::Ok();
    }
    return last.With("routing table");
  }

  // The servers a connection for `mode` may go to ("HOST:PORT"), the preferred one first.
  Result<std::vector<std::string>> Targets(AccessMode mode, int64_t deadline) {
    if (!routing) return std::vector<std::string>{initial};
    bool fresh;
    {
      MutexLock l(mu);
      fresh = table_expires_ms != 0 && MonoMs() < table_expires_ms;
    }
    if (!fresh) KG_RETURN_IF_ERROR(RefreshRouting(deadline));
    MutexLock l(mu);
    std::vector<std::string> out = mode == AccessMode::kWrite || table.readers.empty() ? table.writers : table.readers;
    if (out.empty()) return Status::Unavailable("neo4j " + name + ": the routing table names no writer");
    if (mode == AccessMode::kRead) std::rotate(out.begin(), out.begin() + (next_reader++ % out.size()), out.end());
    return out;
  }

  std::chrono::milliseconds Jitter(std::chrono::milliseconds d) {
    MutexLock l(mu);
    std::uniform_int_distribution<int64_t> pick(d.count() / 2, d.count());
    return std::chrono::milliseconds(pick(rng));
  }
};

Pool::Pool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pool::~Pool() {
  // A Lease outliving its pool would return a connection into freed memory: a bug, loudly.
  int in_use;
  {
    MutexLock l(impl_->mu);
    in_use = impl_->in_use;
  }
  if (in_use != 0) {
    std::fprintf(stderr, "neo4j %s: the pool is destroyed with %d connection(s) still borrowed\n",
                 impl_->name.c_str(), in_use);
    std::abort();
  }
}  // the idle connections say GOODBYE

Result<std::unique_ptr<Pool>> Pool::Open(const Neo4jEndpoint& e) {
  if (e.scheme != "bolt" && e.scheme != "neo4j") {
    return Status::Invalid("neo4j: unknown scheme '" + e.scheme + "' (expected bolt or neo4j)");
  }
  if (e.pool_size < 1) return Status::Invalid("neo4j " + Describe(e) + ": KG_NEO4J_POOL_SIZE must be at least 1");
  auto impl = std::make_unique<Impl>(e);
  int64_t deadline = MonoMs() + e.connect_timeout_ms;
  if (impl->routing) {
    KG_RETURN_IF_ERROR(impl->RefreshRouting(deadline));
  } else {
    KG_ASSIGN_OR_RETURN(std::unique_ptr<Connection> c, impl->Acquire({impl->initial}, deadline));
    impl->Release(std::move(c));
  }
  return std::unique_ptr<Pool>(new Pool(std::move(impl)));
}

Result<Pool::Lease> Pool::Borrow(AccessMode mode) {
  bool lost = false;
  return BorrowFor(mode, &lost);
}

Result<Pool::Lease> Pool::BorrowFor(AccessMode mode, bool* lost) {
  *lost = false;
  int64_t deadline = MonoMs() + impl_->e.borrow_timeout_ms;
  KG_ASSIGN_OR_RETURN(std::vector<std::string> targets, impl_->Targets(mode, deadline));
  Result<std::unique_ptr<Connection>> c = impl_->Acquire(targets, deadline, lost);
  if (!c.ok()) {
    // The server could not be reached: the table may name one that is gone. A full pool
    // ("pool exhausted") says nothing about the table.
    if (impl_->routing && *lost) impl_->InvalidateRouting();
    return c.status();
  }
  return Lease(this, std::move(*c), mode);
}

Status Pool::InTransaction(AccessMode mode, const std::function<Status(Connection&)>& fn, const RetryPolicy& policy) {
  std::chrono::milliseconds delay = policy.initial;
  const auto give_up = std::chrono::steady_clock::now() + policy.max_total;
  for (int attempt = 1;; ++attempt) {
    Status s;
    bool lost = false;  // the server went away or could not be reached
    {
      Result<Lease> lease = BorrowFor(mode, &lost);
      if (!lease.ok()) {
        s = lease.status();
      } else {
        Connection& c = **lease;
        s = c.Begin(mode);
        if (s.ok()) s = fn(c);
        if (s.ok()) s = c.Commit();
        if (!s.ok() && c.in_transaction() && !c.broken()) {
          Status r = c.Rollback();
          if (!r.ok()) spdlog::debug("{}", r.message());
        }
        // A transport error (not a timeout, not a FAILURE that closed it): the server may be gone.
        if (!s.ok() && c.broken() && !c.timed_out() && Neo4jCode(s).empty()) lost = true;
      }
    }  // the connection goes back before the wait
    if (s.ok() || s.code() != Code::kUnavailable || attempt >= policy.max_attempts) return s;
    if (lost) impl_->MarkIdleSuspect();
    if (impl_->routing && (lost || RoutingCode(s))) impl_->InvalidateRouting();
    std::chrono::milliseconds wait = impl_->Jitter(delay);
    if (std::chrono::steady_clock::now() + wait > give_up) {
      spdlog::debug("neo4j {}: attempt {} failed, no retry within {} ms: {}", impl_->name, attempt,
                    policy.max_total.count(), s.message());
      return s;
    }
    spdlog::debug("neo4j {}: attempt {} of {} failed, retrying: {}", impl_->name, attempt, policy.max_attempts,
                  s.message());
    std::this_thread::sleep_for(wait);
    delay = std::min(delay * 2, policy.max);
  }
}

Pool::Stats Pool::stats() const {
  MutexLock l(impl_->mu);
  return Stats{impl_->open, impl_->in_use, impl_->e.pool_size, impl_->refreshes, impl_->waiters, impl_->bookmark};
}

Pool::Lease::Lease(Pool* pool, std::unique_ptr<Connection> c, AccessMode mode)
    : pool_(pool), c_(std::move(c)), mode_(mode) {}
Pool::Lease::Lease(Lease&& o) noexcept : pool_(o.pool_), c_(std::move(o.c_)), mode_(o.mode_) {}
Pool::Lease& Pool::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    if (c_) pool_->impl_->Release(std::move(c_));
    pool_ = o.pool_;
    c_ = std::move(o.c_);
    mode_ = o.mode_;
  }
  return *this;
}
Pool::Lease::~Lease() {
  if (c_) pool_->impl_->Release(std::move(c_));
}
Connection& Pool::Lease::operator*() const { return *c_; }
Connection* Pool::Lease::operator->() const { return c_.get(); }

}  // namespace kg::bolt
