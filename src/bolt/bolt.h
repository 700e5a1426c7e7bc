#pragma once
// A Bolt client for Neo4j 5 (and 4.4 as a last resort): one connection, a pool with a hard
// cap per process, and routing for neo4j:// URIs. Written here because no maintained C++
// driver exists in Debian. Protocol facts: ../shared/docs/NEO4J-NOTES.md section 2.
//
// Errors are Status values whose message reads
//   "neo4j HOST:PORT: <what>: <Neo4j code>: <Neo4j message>"
// (the password never appears; Neo4jCode() gives the code back). Codes:
//   kUnavailable      transport errors, timeouts, a closed connection, a full pool, every
//                     Neo.TransientError.* (deadlocks, lock timeouts, leader switches), the
//                     routing failures Neo.ClientError.Cluster.NotALeader and
//                     Neo.ClientError.General.ForbiddenOnReadOnlyDatabase, and expired
//                     credentials (Neo.ClientError.Security.AuthorizationExpired and
//                     .TokenExpired, which also close the connection): retry;
//   kInvalidArgument  refused credentials (other Neo.ClientError.Security.*), a bad endpoint, an
//                     unknown database (Neo.ClientError.Database.DatabaseNotFound), no common
//                     protocol version: a configuration error, do not retry;
//   kConflict         Neo.ClientError.Schema.ConstraintValidationFailed;
//   kInternal         every other FAILURE (syntax errors included), malformed replies and a
//                     message over 256 MiB.
// A FAILURE is recovered with RESET on the same connection (the connection stays usable); a
// transport error or a FAILURE in reply to HELLO, LOGON or RESET closes it (broken()).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bolt/endpoint.h"
#include "bolt/packstream.h"
#include "common/status.h"

namespace kg::bolt {

// The Neo4j status code a Status carries ("Neo.TransientError.Transaction.DeadlockDetected"),
// or "" when it did not come from a FAILURE.
std::string Neo4jCode(const Status& s);

// Parses NEO4J_URI: bolt://HOST[:PORT] or neo4j://HOST[:PORT] (default port 7687; an IPv6
// literal in brackets). The +s / +ssc schemes (TLS) are refused with kInvalidArgument saying so.
// Fills scheme, host and port of `into`.
Status ParseUri(std::string_view uri, Neo4jEndpoint& into);
// "bolt://HOST:PORT" (or neo4j://), never with credentials: how logs name an endpoint.
std::string Describe(const Neo4jEndpoint& e);
// "HOST:PORT", or "[V6]:PORT" for an IPv6 literal: how Bolt names a server (routing tables,
// the routing context).
std::string HostPort(std::string_view host, int port);

enum class AccessMode { kWrite, kRead };

// The summary of a query: the metadata of PULL's last SUCCESS ("stats", "type", "bookmark", ...).
struct Summary {
  Map metadata;
  // A counter of "stats" ("nodes-created", "relationships-deleted", "properties-set", ...);
  // 0 when absent (the server omits zero counters).
  int64_t Counter(std::string_view name) const;
};

struct QueryResult {
  std::vector<std::string> fields;
  std::vector<List> records;
  Summary summary;
};

// One session with a server, used by one thread at a time.
class Connection {
 public:
  // Connects to `host`:`port` (the endpoint's, or a router's pick), negotiates the version
  // (5.8..5.6, 5.4..5.0, then 4.4), says HELLO (user agent "kgflow/<version>", bolt_agent,
  // routing context for neo4j://) and LOGON (basic with user/password, or none).
  static Result<std::unique_ptr<Connection>> Open(const Neo4jEndpoint& e, const std::string& host, int port);
  static Result<std::unique_ptr<Connection>> Open(const Neo4jEndpoint& e) { return Open(e, e.host, e.port); }
  ~Connection();  // GOODBYE (best effort) and close
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int major() const;
  int minor() const;
  const std::string& server_agent() const;  // "Neo4j/5.26.30"
  std::string address() const;              // "HOST:PORT"

  // RUN + PULL all: every record in memory. Outside a transaction this is an auto-commit
  // query on the endpoint's database in `mode`; inside one, part of it.
  Result<QueryResult> Run(std::string_view cypher, const Map& params = {}, AccessMode mode = AccessMode::kWrite);
  // RUN, then PULL `batch` records at a time, calling `each` per record (fields in
  // `fields` order): memory stays bounded. A non-OK Status from `each` stops the stream
  // (the rest is discarded) and is returned.
  Result<Summary> RunEach(std::string_view cypher, const Map& params,
                          const std::function<Status(const std::vector<std::string>& fields, const List& record)>& each,
                          AccessMode mode = AccessMode::kRead, int64_t batch = 1000);

  Status Begin(AccessMode mode = AccessMode::kWrite);
  Status Commit();
  Status Rollback();
  bool in_transaction() const;

  // Back to READY after a FAILURE (an open transaction is rolled back by the server).
  Status Reset();
  // True once the connection cannot be used again (transport error, failed RESET).
  bool broken() const;
  // Without a round trip: true when the server sent something or closed the socket while no
  // request was outstanding (a restart, an idle timeout): the pool checks such a connection
  // before lending it.
  bool unsolicited_input() const;
  // True when the connection broke on an I/O timeout (a slow query, a busy server), not on a
  // lost server: the pool does not take it for a routing failure.
  bool timed_out() const;

  // Causal consistency (set by the pool): `source` gives the bookmarks sent with BEGIN and
  // auto-commit RUN in kRead; `sink` receives the bookmark of each COMMIT and auto-commit
  // query. Either may be empty.
  struct BookmarkHooks {
    std::function<std::vector<std::string>()> source;
    std::function<void(const std::string&)> sink;
  };
  void set_bookmark_hooks(BookmarkHooks hooks);
  // The bookmarks the last BEGIN or auto-commit RUN sent, and the last bookmark received.
  const std::vector<std::string>& sent_bookmarks() const;
  const std::string& last_bookmark() const;

  // The routing table for the endpoint's database (ROUTE; 4.4+).
  struct RoutingTable {
    int64_t ttl_seconds = 0;
    std::vector<std::string> routers, writers, readers;  // "HOST:PORT"
    std::string database;
  };
  Result<RoutingTable> Route();

 private:
  struct Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// How InTransaction retries: attempts in all, and a backoff doubling from `initial` up to
// `max`, each wait drawn at random from [d/2, d] (jitter); no wait that would end more than
// `max_total` after the first attempt began (the last error is returned instead).
struct RetryPolicy {
  int max_attempts = 8;
  std::chrono::milliseconds initial{20};
  std::chrono::milliseconds max{2000};
  std::chrono::milliseconds max_total{30000};
};

// Connections to one endpoint for one process, at most `pool_size` open at once. Opened
// lazily in the process that uses them (a pool is never inherited across fork/exec: the
// worker opens its own after exec). Thread-safe.
class Pool {
 public:
  // Checks the endpoint and opens one connection (to learn the routing table for neo4j://
  // and to fail fast on refused credentials). kUnavailable when the server cannot be reached.
  static Result<std::unique_ptr<Pool>> Open(const Neo4jEndpoint& e);
  ~Pool();  // every Lease must have been returned first (aborts otherwise)

  // A borrowed connection, returned to the pool when destroyed (closed instead when broken
  // or left inside a transaction).
  class Lease {
   public:
    Lease(Lease&&) noexcept;
    Lease& operator=(Lease&&) noexcept;
    ~Lease();
    Connection& operator*() const;
    Connection* operator->() const;

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> c, AccessMode mode);
    Pool* pool_;
    std::unique_ptr<Connection> c_;
    AccessMode mode_;
  };
  // An idle healthy connection to a server fit for `mode` (the writer for kWrite under
  // routing), or a new one while below the cap; waits up to borrow_timeout_ms at the cap,
  // then kUnavailable "pool exhausted". A connection idle for a while is checked (RESET)
  // before it is handed out. Reads (kRead) carry the pool's latest bookmark (causal
  // consistency: a read sees every write this pool committed before it).
  Result<Lease> Borrow(AccessMode mode = AccessMode::kWrite);

  // Runs `fn` inside BEGIN ... COMMIT on a borrowed connection; on kUnavailable (transient
  // errors, a lost connection, a routing failure, which also refreshes the routing table)
  // rolls back and runs it again, per `policy`. A routing failure is a server lost or
  // unreachable (not a timeout, not a full pool), NotALeader or ForbiddenOnReadOnlyDatabase. Any other error rolls back and is returned.
  // `fn` may therefore run several times: it must not keep state between attempts.
  Status InTransaction(AccessMode mode, const std::function<Status(Connection&)>& fn, const RetryPolicy& policy = {});

  struct Stats {
    int open = 0;    // connections open now
    int in_use = 0;  // of which borrowed
    int cap = 0;     // pool_size
    int64_t routing_refreshes = 0;  // routing tables fetched (neo4j://): on open, TTL, failures
    int waiters = 0;                // Borrow calls waiting at the cap now
    std::string bookmark;           // the latest bookmark (sent with reads); "" before any
  };
  Stats stats() const;

 private:
  struct Impl;
  explicit Pool(std::unique_ptr<Impl> impl);
  // Borrow, telling whether a failure was a lost or unreachable server (`*lost`).
  Result<Lease> BorrowFor(AccessMode mode, bool* lost);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kg::bolt
