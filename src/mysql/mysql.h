#pragma once
// A small client for MySQL 8 and MariaDB over MariaDB Connector/C (Debian libmariadb), shared
// by the MySQL backends (the task store, the graph store).
//
// - Values are always bound: Exec/Query take SQL text with `?` placeholders and a Params
//   list; nothing a caller passes is ever spliced into SQL. Statements without parameters
//   and without a result (DDL, transaction control) may go through Run.
// - Errors are Status values, with the message "mysql USER@HOST:PORT/DB: <what>: <server
//   error text> (<errno>)"; the password never appears. Codes: kUnavailable for transport
//   errors, a lost connection, too many connections, deadlock (1213) and lock wait timeout
//   (1205), all worth retrying; kConflict for a duplicate key (1062); kInvalidArgument for a
//   bad endpoint (a database name outside [A-Za-z0-9_]{1,64}); kInternal for the rest.
// - A server that goes away is logged once per outage (warn, per endpoint and process) and
//   its return once (info), never per attempt.
// - Affected rows are changed rows (no CLIENT_FOUND_ROWS): an UPDATE that matches a row but
//   changes nothing reports 0, and a multi-row INSERT ... ON DUPLICATE KEY UPDATE counts 1
//   per inserted row, 2 per updated row and 0 per unchanged row.
// - Sessions use utf8mb4 and REPEATABLE READ (set on every session, whatever the server's
//   default: the graph's fence and orphan deletes depend on its locking reads), with
//   innodb_lock_wait_timeout set below the I/O timeout so a lock wait ends as 1205 rather
//   than as a client read timeout.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "mysql/endpoint.h"

namespace kg {


namespace mysql {

// "USER@HOST:PORT/DB": how messages and logs name an endpoint (never with the password).
std::string Describe(const MysqlEndpoint& e);

// Checks what can be checked without a server: a database name of [A-Za-z0-9_]{1,64}
// (identifiers cannot be bound, so this is what keeps it out of SQL injection), a host, a
// port in 1..65535, pool_size >= 1, positive timeouts. kInvalidArgument naming the field.
Status Validate(const MysqlEndpoint& e);

// A parameter or a column value: NULL, a 64-bit integer, a double or a byte string (text in
// utf8mb4, or binary with Blob()).
class Value {
 public:
  Value() = default;  // NULL
  Value(std::nullptr_t) {}                        // NOLINT: implicit by design
  Value(int64_t v) : v_(v) {}                     // NOLINT
  Value(int v) : v_(static_cast<int64_t>(v)) {}   // NOLINT
  Value(double v) : v_(v) {}                      // NOLINT
  Value(std::string v) : v_(std::move(v)) {}      // NOLINT
  Value(std::string_view v) : v_(std::string(v)) {}  // NOLINT
  Value(const char* v) : v_(std::string(v)) {}    // NOLINT
  Value(const std::optional<std::string>& v) {    // NOLINT: nullopt is NULL
    if (v) v_ = *v;
  }
  Value(const std::optional<int64_t>& v) {        // NOLINT: nullopt is NULL
    if (v) v_ = *v;
  }
  // Bytes sent as a binary string (for VARBINARY/BLOB columns).
  static Value Blob(std::string bytes) {
    Value v(std::move(bytes));
    v.binary_ = true;
    return v;
  }

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_binary() const { return binary_; }
  // Conversions: an integer column read as a string gives its decimal digits, a string
  // (e.g. DECIMAL) read as an integer is parsed (0 when it does not parse); NULL is 0 / "".
  int64_t AsInt() const;
  double AsDouble() const;
  std::string AsString() const;
  const std::string* string_ptr() const { return std::get_if<std::string>(&v_); }
  // Bytes this value adds to a statement on the wire (for batch budgets).
  size_t WireSize() const;

 private:
  std::variant<std::monostate, int64_t, double, std::string> v_;
  bool binary_ = false;
};

using Params = std::vector<Value>;

// One result row; columns by 0-based position in the SELECT list. Reading a column past
// the end is a bug (it aborts).
class Row {
 public:
  Row() = default;
  explicit Row(std::vector<Value> cells) : cells_(std::move(cells)) {}
  size_t size() const { return cells_.size(); }
  bool IsNull(size_t col) const { return At(col).is_null(); }
  int64_t Int(size_t col) const { return At(col).AsInt(); }
  double Double(size_t col) const { return At(col).AsDouble(); }
  std::string Str(size_t col) const { return At(col).AsString(); }
  std::optional<int64_t> OptInt(size_t col) const {
    return IsNull(col) ? std::nullopt : std::optional<int64_t>(Int(col));
  }
  std::optional<std::string> OptStr(size_t col) const {
    return IsNull(col) ? std::nullopt : std::optional<std::string>(Str(col));
  }
  const Value& At(size_t col) const;

 private:
  std::vector<Value> cells_;
};

// How InTransaction retries: attempts in all (the first included), and a backoff doubling
// from `initial` up to `max`, each wait drawn at random from [d/2, d].
struct RetryPolicy {
  int max_attempts = 6;
  std::chrono::milliseconds initial{20};
  std::chrono::milliseconds max{1000};
};

// One session with the server, owned by one thread at a time (a MYSQL* is not
// thread-safe). Prepared statements are cached by SQL text (bounded, least recently used
// closed first) and prepared again after a reconnect.
//
// A connection that lost its server (2006/2013, or killed) reconnects on its next use; the
// statement that failed is NOT replayed (it may have been applied): the caller gets
// kUnavailable. InTransaction is the place where whole units of work are replayed.
class Connection {
 public:
  // Connects (connect_timeout_ms, io_timeout_s for reads and writes, utf8mb4, no
  // auto-reconnect), creates the endpoint's database when missing and uses it.
  static Result<std::unique_ptr<Connection>> Open(const MysqlEndpoint& e);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs a statement that takes no parameters and returns no rows, over the text protocol
  // (CREATE TABLE, ALTER, START TRANSACTION, COMMIT, ...). Never pass text built from values.
  Status Run(std::string_view sql);
  // Prepares (or takes from the cache) and executes `sql` with `params` bound in order;
  // returns the affected rows. A wrong number of params is kInternal (a bug).
  Result<uint64_t> Exec(std::string_view sql, const Params& params = {});
  // The same for a statement returning rows; all rows are read into memory.
  Result<std::vector<Row>> Query(std::string_view sql, const Params& params = {});
  // The first row, or nullopt when there is none.
  Result<std::optional<Row>> QueryOne(std::string_view sql, const Params& params = {});
  // Streams rows to `each` without holding them all; `each` returning an error stops the
  // read and that error is returned. `each` must not use this connection.
  Status QueryEach(std::string_view sql, const Params& params, const std::function<Status(const Row&)>& each);
  // AUTO_INCREMENT id of the last Exec that generated one.
  uint64_t LastInsertId() const { return last_insert_id_; }
  // The server errno of the last failed call (0 after a success), e.g. 1062 for a duplicate key.
  int last_errno() const { return last_errno_; }

  // Runs `body` inside START TRANSACTION ... COMMIT. When the body or the commit fails with
  // a deadlock (1213), a lock wait timeout (1205) or a lost connection (2006/2013), the
  // transaction is rolled back (a 1205 leaves it open, so ROLLBACK always comes first), the
  // connection re-established if needed, and the whole body run again after a capped,
  // jittered backoff, up to policy.max_attempts. Any other failure rolls back and is
  // returned as is. So `body` may run more than once and must keep no effects outside the
  // database between attempts. A commit whose answer was lost may have been applied: make
  // bodies idempotent (upserts, compare-and-set) where that matters. Not nestable: a call
  // from inside a body is kInternal.
  Status InTransaction(const std::function<Status(Connection&)>& body, const RetryPolicy& policy = {});

  // mysql_ping; on failure the connection is marked for reconnection and the error returned.
  Status Ping();
  // True when the session is known lost (it reconnects on next use).
  bool broken() const;
  const MysqlEndpoint& endpoint() const;
  // Monotonic ms of the last successful round trip (the pool's health check reads it).
  int64_t last_used_ms() const;

 private:
  struct Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  // Sets last_errno_ from a failed (re)connect and returns its Status; Ok when usable.
  Status Ready();
  uint64_t last_insert_id_ = 0;
  uint64_t last_affected_ = 0;
  int last_errno_ = 0;
};

class Pool;

// A connection borrowed from a Pool; gives it back when destroyed. Movable, not copyable.
// Use it from one thread at a time.
class PooledConnection {
 public:
  PooledConnection() = default;
  PooledConnection(Pool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
  ~PooledConnection();
  PooledConnection(PooledConnection&& o) noexcept = default;
  PooledConnection& operator=(PooledConnection&& o) noexcept;
  PooledConnection(const PooledConnection&) = delete;
  PooledConnection& operator=(const PooledConnection&) = delete;

  Connection& operator*() const { return *c_; }
  Connection* operator->() const { return c_.get(); }
  Connection& get() const { return *c_; }

 private:
  Pool* pool_ = nullptr;
  std::unique_ptr<Connection> c_;
};

struct PoolStats {
  int open = 0;     // connections that exist (idle + in use); never above pool_size
  int in_use = 0;   // borrowed now
  int64_t borrow_timeouts = 0;  // borrows that waited past their deadline
};

// At most endpoint.pool_size connections, opened on demand. Thread-safe. The pool must
// outlive every PooledConnection borrowed from it.
class Pool {
 public:
  // Validates the endpoint and opens one connection (so a wrong password, an unreachable
  // server or a bad database name fail here, and the database exists afterwards).
  static Result<std::unique_ptr<Pool>> Open(const MysqlEndpoint& e);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // An idle connection (pinged first when idle for more than kPingAfterIdleMs), or a new
  // one while fewer than pool_size exist; otherwise waits until `wait` has passed:
  // kUnavailable ("N of N connections in use"). A server that cannot be reached is
  // kUnavailable at once (within connect_timeout_ms).
  Result<PooledConnection> Borrow(std::chrono::milliseconds wait = std::chrono::milliseconds(10000));
  // Borrow + Connection::InTransaction.
  Status InTransaction(const std::function<Status(Connection&)>& body, const RetryPolicy& policy = {},
                       std::chrono::milliseconds wait = std::chrono::milliseconds(10000));
  PoolStats stats() const;
  const MysqlEndpoint& endpoint() const { return endpoint_; }

  static constexpr int64_t kPingAfterIdleMs = 3000;

 private:
  friend class PooledConnection;
  explicit Pool(MysqlEndpoint e) : endpoint_(std::move(e)) {}
  void Return(std::unique_ptr<Connection> c);

  const MysqlEndpoint endpoint_;
  mutable Mutex mu_;
  CondVar cv_;
  std::vector<std::unique_ptr<Connection>> idle_ KG_GUARDED_BY(mu_);  // most recently used last
  int open_ KG_GUARDED_BY(mu_) = 0;
  int in_use_ KG_GUARDED_BY(mu_) = 0;
  int64_t borrow_timeouts_ KG_GUARDED_BY(mu_) = 0;
};

// Builds multi-row statements: `head` + "(?,?,..),(?,?,..)" + `tail`, e.g. head "INSERT INTO
// t(a,b) VALUES " and tail " ON DUPLICATE KEY UPDATE b=VALUES(b)". Rows are split into
// statements of at most `byte_budget` bytes of SQL and values (default 4 MiB, well under
// the 16 MiB max_allowed_packet) and 65535 placeholders; within that, a batch's row count
// is a power of two (so a connection caches a handful of statement shapes, not one per
// count). A single row larger than the budget goes alone. Every row must have `columns`
// values (else kInternal).
struct Batch {
  std::string sql;
  Params params;
  size_t rows = 0;
};
Result<std::vector<Batch>> BuildBatches(std::string_view head, std::string_view tail, size_t columns,
                                        const std::vector<Params>& rows, size_t byte_budget = 4u << 20);
// Executes `batches` in order on `c` (inside the caller's transaction, if any); the sum of
// their affected rows, or the first failure.
Result<uint64_t> ExecBatches(Connection& c, const std::vector<Batch>& batches);

// A schema change of one component: `statements` run in order over the text protocol (no
// parameters). Versions are positive and increasing within a component.
struct Migration {
  int version = 0;
  std::vector<std::string> statements;
  // Every statement is safe to run again after any prefix of them ran (CREATE TABLE IF NOT
  // EXISTS, ...): a version left dirty by a lost connection or a server restart is then
  // applied again at the next Migrate instead of refusing to start. Off unless a migration
  // says so, because a re-run of anything else (an INSERT, an ALTER) is not harmless.
  bool rerunnable = false;
};

// Brings `component`'s schema up to date, once across every process sharing the database:
// on one dedicated connection, takes GET_LOCK('<db>.kg_migrate', 30) (not got: kUnavailable
// saying who to look for), creates kg_schema_migrations(component, version, dirty,
// applied_at) when missing, applies each missing version marking it dirty before and clean
// after, and releases the lock. DDL commits implicitly, so a version that failed part-way
// (a bad statement, a lost connection, a server restart) stays dirty: the next Migrate runs
// a dirty re-runnable version again (logging a warning) and refuses (kInternal, saying what
// to do by hand) when a dirty version is not re-runnable or not in `migrations`.
Status Migrate(Pool& pool, const std::string& component, const std::vector<Migration>& migrations);

// Outages of an endpoint seen by this process (for /metrics and tests).
struct OutageStats {
  int64_t outages = 0;  // times the endpoint went from reachable to unreachable
  bool down = false;    // unreachable now (as last seen)
};
OutageStats Outages(const MysqlEndpoint& e);

}  // namespace mysql
}  // namespace kg
