#include "mysql/mysql.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <thread>
#include <unordered_map>

#include "common/util.h"

namespace kg::mysql {
namespace {

// Server errnos that mean the session is gone (reconnect before the next statement).
bool IsLost(int e) {
  return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_SERVER_LOST_EXTENDED ||
         e == ER_CONNECTION_KILLED || e == ER_SERVER_SHUTDOWN || e == 4031 /* MySQL 8: idle disconnect */ ||
         e == CR_COMMANDS_OUT_OF_SYNC;  // our state and the server's disagree: start over
}

// Errnos that mean the server cannot be reached at all.
bool IsUnreachable(int e) {
  return e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR || e == CR_UNKNOWN_HOST || e == ER_CON_COUNT_ERROR ||
         e == 1203 /* too many connections of the user */ || e == CR_IPSOCK_ERROR || e == CR_SOCKET_CREATE_ERROR;
}

bool IsRetryableInTx(int e) { return e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT || IsLost(e); }

Code CodeFor(int e) {
  if (IsLost(e) || IsUnreachable(e) || e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT) return Code::kUnavailable;
  if (e == ER_DUP_ENTRY) return Code::kConflict;
  // A refused login or database is the configuration's (DB_USER, DB_PASSWORD, DB_NAME), not an
  // outage: nothing waits for it to pass, and a node exits 2.
  if (e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR) return Code::kInvalidArgument;
  // Other client-side errors (2000-2999) are about the transport too.
  if (e >= 2000 && e < 3000) return Code::kUnavailable;
  return Code::kInternal;
}

void LibraryInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (mysql_library_init(0, nullptr, nullptr) != 0) {
      spdlog::critical("mysql: mysql_library_init failed");
      std::abort();  // nothing MySQL can work; a broken install, not a runtime condition
    }
  });
}

// What a statement is, for messages: its first words (SQL text is ours, never values).
std::string Brief(std::string_view sql) {
  std::string s(sql.substr(0, 60));
  std::replace(s.begin(), s.end(), '\n', ' ');
  return sql.size() > 60 ? s + "..." : s;
}

// Outage state per endpoint, process-wide, so that many connections and pools log a server
// that went away once, and its return once.
class OutageBook {
 public:
  static OutageBook& Get() {
    static OutageBook* b = new OutageBook();  // never destroyed: used from any thread until exit
    return *b;
  }
  void Down(const std::string& who, const std::string& why) {
    MutexLock lock(mu_);
    Entry& e = map_[who];
    if (e.down) return;
    e.down = true;
    ++e.outages;
    ++down_count_;
    any_down_.store(true, std::memory_order_relaxed);
    spdlog::warn("mysql {}: server unreachable: {} (logged once per outage)", who, why);
  }
  void Up(const std::string& who) {
    if (!any_down_.load(std::memory_order_relaxed)) return;  // the common case: one atomic read
    MutexLock lock(mu_);
    auto it = map_.find(who);
    if (it == map_.end() || !it->second.down) return;
    it->second.down = false;
    if (--down_count_ == 0) any_down_.store(false, std::memory_order_relaxed);
    spdlog::info("mysql {}: server reachable again", who);
  }
  OutageStats Stats(const std::string& who) {
    MutexLock lock(mu_);
    auto it = map_.find(who);
    if (it == map_.end()) return {};
    return {it->second.outages, it->second.down};
  }

 private:
  struct Entry {
    int64_t outages = 0;
    bool down = false;
  };
  Mutex mu_;
  std::map<std::string, Entry> map_ KG_GUARDED_BY(mu_);
  int down_count_ KG_GUARDED_BY(mu_) = 0;
  std::atomic<bool> any_down_{false};
};

int64_t ParseInt(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || errno == ERANGE) return 0;
  return v;
}

constexpr size_t kStmtCacheSize = 64;
constexpr size_t kMaxPlaceholders = 65535;

}  // namespace

// ---------------------------------------------------------------------------------------
// Value, Row

int64_t Value::AsInt() const {
  if (auto* i = std::get_if<int64_t>(&v_)) return *i;
  if (auto* d = std::get_if<double>(&v_)) return static_cast<int64_t>(*d);
  if (auto* s = std::get_if<std::string>(&v_)) return ParseInt(*s);
  return 0;
}

double Value::AsDouble() const {
  if (auto* i = std::get_if<int64_t>(&v_)) return static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&v_)) return *d;
  if (auto* s = std::get_if<std::string>(&v_)) return std::strtod(s->c_str(), nullptr);
  return 0;
}

std::string Value::AsString() const {
  if (auto* i = std::get_if<int64_t>(&v_)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v_)) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", *d);
    return buf;
  }
  if (auto* s = std::get_if<std::string>(&v_)) return *s;
  return "";
}

size_t Value::WireSize() const {
  if (auto* s = std::get_if<std::string>(&v_)) return s->size() + 9;  // length prefix
  return 9;
}

const Value& Row::At(size_t col) const {
  if (col >= cells_.size()) {
    spdlog::critical("mysql: column {} read of a row of {}", col, cells_.size());
    std::abort();  // a bug in the caller's SELECT list or its reading
  }
  return cells_[col];
}

std::string Describe(const MysqlEndpoint& e) {
  return e.user + "@" + e.host + ":" + std::to_string(e.port) + "/" + e.database;
}

Status Validate(const MysqlEndpoint& e) {
  static const std::regex kName("^[A-Za-z0-9_]{1,64}$");
  std::string who = "mysql " + Describe(e);
  if (!std::regex_match(e.database, kName))
    return Status::Invalid(who + ": database name '" + e.database +
                           "' must be 1 to 64 characters of A-Z, a-z, 0-9 and _");
  if (e.host.empty()) return Status::Invalid(who + ": host is empty");
  if (e.port < 1 || e.port > 65535) return Status::Invalid(who + ": port must be 1..65535");
  if (e.pool_size < 1) return Status::Invalid(who + ": pool_size must be at least 1");
  if (e.connect_timeout_ms < 1 || e.io_timeout_s < 1) return Status::Invalid(who + ": timeouts must be positive");
  return Status::Ok();
}

OutageStats Outages(const MysqlEndpoint& e) { return OutageBook::Get().Stats(Describe(e)); }

// ---------------------------------------------------------------------------------------
// Connection

struct Connection::Impl {
  MysqlEndpoint endpoint;
  std::string who;  // Describe(endpoint)
  MYSQL* m = nullptr;
  bool broken = false;
  bool in_tx = false;  // inside InTransaction (a nested START TRANSACTION would commit the outer one)
  int err = 0;  // errno of the last Error()
  int64_t last_used_ms = 0;
  // Prepared statements by SQL text, least recently used first.
  std::list<std::pair<std::string, MYSQL_STMT*>> lru;
  std::unordered_map<std::string, std::list<std::pair<std::string, MYSQL_STMT*>>::iterator> cache;

  ~Impl() { Close(); }

  void Close() {
    for (auto& [sql, st] : lru) mysql_stmt_close(st);
    lru.clear();
    cache.clear();
    if (m) mysql_close(m);
    m = nullptr;
  }

  Status Error(std::string_view what, const char* text, int e) {
    err = e;
    if (IsLost(e) || IsUnreachable(e)) {
      broken = true;
      OutageBook::Get().Down(who, std::string(text) + " (" + std::to_string(e) + ")");
    }
    return Status(CodeFor(e), "mysql " + who + ": " + std::string(what) + ": " + text + " (" + std::to_string(e) + ")");
  }

  void Used() {
    last_used_ms = MonoMs();
    OutageBook::Get().Up(who);
  }

  // Opens the session: options, connect, database, session settings.
  Status Connect() {
    Close();
    broken = true;
    LibraryInit();
    m = mysql_init(nullptr);
    if (!m) return Status::Unavailable("mysql " + who + ": mysql_init: out of memory");
    unsigned int connect_s = static_cast<unsigned int>(std::max(1, (endpoint.connect_timeout_ms + 999) / 1000));
    unsigned int io_s = static_cast<unsigned int>(endpoint.io_timeout_s);
    my_bool off = 0, on = 1;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &io_s);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);  // a silent reconnect would drop locks and transactions
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(m, MYSQL_REPORT_DATA_TRUNCATION, &on);
    if (!mysql_real_connect(m, endpoint.host.c_str(), endpoint.user.c_str(), endpoint.password.c_str(), nullptr,
                            static_cast<unsigned int>(endpoint.port), nullptr, 0)) {
      return Error("connect", mysql_error(m), static_cast<int>(mysql_errno(m)));
    }
    // The name matched ^[A-Za-z0-9_]{1,64}$ (Validate): an identifier cannot be bound.
    std::string create = "CREATE DATABASE IF NOT EXISTS `" + endpoint.database +
                         "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
    if (mysql_real_query(m, create.data(), create.size()) != 0)
      return Error("create database", mysql_error(m), static_cast<int>(mysql_errno(m)));
    if (mysql_select_db(m, endpoint.database.c_str()) != 0)
      return Error("use database", mysql_error(m), static_cast<int>(mysql_errno(m)));
    broken = false;
    // A lock wait must end as 1205 (retried by InTransaction) before the client's read
    // timeout ends it as a lost connection.
    int64_t lock_wait = std::clamp<int64_t>(endpoint.io_timeout_s * 2 / 3, 1, 50);
    MYSQL_STMT* st = nullptr;
    Status s = Prepared("SET SESSION innodb_lock_wait_timeout=?", &st);
    if (!s.ok()) return s;
    MYSQL_BIND b{};
    b.buffer_type = MYSQL_TYPE_LONGLONG;
    b.buffer = &lock_wait;
    if (mysql_stmt_bind_param(st, &b) || mysql_stmt_execute(st))
      return Error("set innodb_lock_wait_timeout", mysql_stmt_error(st), static_cast<int>(mysql_stmt_errno(st)));
    // The graph's fence and its orphan deletes rely on REPEATABLE READ (locking reads of
    // the NOT EXISTS subqueries, next-key locks); a server whose default a DBA set to READ
    // COMMITTED must not weaken them. Every session is made here, reconnects included.
    constexpr std::string_view kIsolation = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";
    if (mysql_real_query(m, kIsolation.data(), kIsolation.size()) != 0)
      return Error("set isolation level", mysql_error(m), static_cast<int>(mysql_errno(m)));
    Used();
    return Status::Ok();
  }

  Status EnsureOpen() {
    if (!broken && m) return Status::Ok();
    return Connect();
  }

  // The cached statement for `sql`, prepared when missing.
  Status Prepared(std::string_view sql, MYSQL_STMT** out) {
    std::string key(sql);
    auto it = cache.find(key);
    if (it != cache.end()) {
      lru.splice(lru.end(), lru, it->second);
      *out = it->second->second;
      return Status::Ok();
    }
    MYSQL_STMT* st = mysql_stmt_init(m);
    if (!st) return Error("prepare " + Brief(sql), mysql_error(m), static_cast<int>(mysql_errno(m)));
    if (mysql_stmt_prepare(st, key.data(), key.size()) != 0) {
      Status s = Error("prepare " + Brief(sql), mysql_stmt_error(st), static_cast<int>(mysql_stmt_errno(st)));
      mysql_stmt_close(st);
      return s;
    }
    if (lru.size() >= kStmtCacheSize) {
      mysql_stmt_close(lru.front().second);
      cache.erase(lru.front().first);
      lru.pop_front();
    }
    lru.emplace_back(key, st);
    cache[key] = std::prev(lru.end());
    *out = st;
    return Status::Ok();
  }

  void Forget(std::string_view sql) {
    auto it = cache.find(std::string(sql));
    if (it == cache.end()) return;
    mysql_stmt_close(it->second->second);
    lru.erase(it->second);
    cache.erase(it);
  }
};

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::~Connection() = default;

Result<std::unique_ptr<Connection>> Connection::Open(const MysqlEndpoint& e) {
  KG_RETURN_IF_ERROR(Validate(e));
  auto impl = std::make_unique<Impl>();
  impl->endpoint = e;
  impl->who = Describe(e);
  KG_RETURN_IF_ERROR(impl->Connect());
  return std::unique_ptr<Connection>(new Connection(std::move(impl)));
}

bool Connection::broken() const { return impl_->broken; }
const MysqlEndpoint& Connection::endpoint() const { return impl_->endpoint; }
int64_t Connection::last_used_ms() const { return impl_->last_used_ms; }

Status Connection::Ready() {
  impl_->err = 0;
  Status s = impl_->EnsureOpen();
  if (!s.ok()) last_errno_ = impl_->err ? impl_->err : CR_CONNECTION_ERROR;
  return s;
}

Status Connection::Run(std::string_view sql) {
  KG_RETURN_IF_ERROR(Ready());
  if (mysql_real_query(impl_->m, sql.data(), sql.size()) != 0) {
    last_errno_ = static_cast<int>(mysql_errno(impl_->m));
    return impl_->Error(Brief(sql), mysql_error(impl_->m), last_errno_);
  }
  // Drain any result (Run is for statements without one, but do not leave the session out of sync).
  if (MYSQL_RES* r = mysql_store_result(impl_->m)) mysql_free_result(r);
  last_errno_ = 0;
  impl_->Used();
  return Status::Ok();
}

Status Connection::Ping() {
  KG_RETURN_IF_ERROR(Ready());
  if (mysql_ping(impl_->m) != 0) {
    last_errno_ = static_cast<int>(mysql_errno(impl_->m));
    Status e = impl_->Error("ping", mysql_error(impl_->m), last_errno_);
    impl_->broken = true;  // whatever the errno: do not hand out a session that failed a ping
    return e;
  }
  impl_->Used();
  return Status::Ok();
}

namespace {

// Result buffers for one column.
struct Column {
  enum_field_types type = MYSQL_TYPE_STRING;
  std::string buf;
  int64_t i = 0;
  double d = 0;
  unsigned long length = 0;
  my_bool is_null = 0;
  my_bool error = 0;
};

}  // namespace

Status Connection::QueryEach(std::string_view sql, const Params& params,
                             const std::function<Status(const Row&)>& each) {
  last_insert_id_ = 0;
  last_affected_ = 0;
  Status s = Ready();
  if (!s.ok()) return s;
  Impl& im = *impl_;
  MYSQL_STMT* st = nullptr;
  for (int attempt = 0;; ++attempt) {
    s = im.Prepared(sql, &st);
    if (!s.ok()) {
      last_errno_ = im.err;
      return s;
    }
    if (mysql_stmt_param_count(st) != params.size()) {
      last_errno_ = 0;
      return Status::Internal("mysql " + im.who + ": " + Brief(sql) + ": " + std::to_string(params.size()) +
                              " params for " + std::to_string(mysql_stmt_param_count(st)) + " placeholders");
    }
    std::vector<MYSQL_BIND> binds(params.size());
    std::vector<unsigned long> lengths(params.size());
    std::vector<int64_t> ints(params.size());
    std::vector<double> doubles(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      MYSQL_BIND& b = binds[i];
      if (v.is_null()) {
        b.buffer_type = MYSQL_TYPE_NULL;
      } else if (v.is_int()) {
        ints[i] = v.AsInt();
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = &ints[i];
      } else if (v.is_double()) {
        doubles[i] = v.AsDouble();
        b.buffer_type = MYSQL_TYPE_DOUBLE;
        b.buffer = &doubles[i];
      } else {
        const std::string* str = v.string_ptr();
        b.buffer_type = v.is_binary() ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING;
        b.buffer = const_cast<char*>(str->data());  // read only: the library sends it
        b.buffer_length = str->size();
        lengths[i] = str->size();
        b.length = &lengths[i];
      }
    }
    if ((!binds.empty() && mysql_stmt_bind_param(st, binds.data())) || mysql_stmt_execute(st)) {
      last_errno_ = static_cast<int>(mysql_stmt_errno(st));
      if (last_errno_ == ER_NEED_REPREPARE && attempt == 0) {  // the table changed under a cached statement
        im.Forget(sql);
        continue;
      }
      // A statement whose server-side handle died with the session is dropped with the cache
      // on reconnect (Impl::Close); one that failed on its own is kept.
      return im.Error(Brief(sql), mysql_stmt_error(st), last_errno_);
    }
    break;
  }
  last_insert_id_ = mysql_stmt_insert_id(st);
  last_affected_ = mysql_stmt_affected_rows(st);
  if (last_affected_ == static_cast<uint64_t>(-1)) last_affected_ = 0;  // a statement with rows
  MYSQL_RES* meta = mysql_stmt_result_metadata(st);
  if (!meta) {  // no result set
    last_errno_ = 0;
    im.Used();
    return Status::Ok();
  }
  unsigned int n = mysql_num_fields(meta);
  MYSQL_FIELD* fields = mysql_fetch_fields(meta);
  std::vector<Column> cols(n);
  std::vector<MYSQL_BIND> out(n);
  for (unsigned int c = 0; c < n; ++c) {
    Column& col = cols[c];
    MYSQL_BIND& b = out[c];
    b.is_null = &col.is_null;
    b.length = &col.length;
    b.error = &col.error;
    switch (fields[c].type) {
      case MYSQL_TYPE_TINY:
      case MYSQL_TYPE_SHORT:
      case MYSQL_TYPE_LONG:
      case MYSQL_TYPE_INT24:
      case MYSQL_TYPE_LONGLONG:
      case MYSQL_TYPE_YEAR:
        col.type = MYSQL_TYPE_LONGLONG;
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = &col.i;
        b.is_unsigned = (fields[c].flags & UNSIGNED_FLAG) ? 1 : 0;
        break;
      case MYSQL_TYPE_FLOAT:
      case MYSQL_TYPE_DOUBLE:
        col.type = MYSQL_TYPE_DOUBLE;
        b.buffer_type = MYSQL_TYPE_DOUBLE;
        b.buffer = &col.d;
        break;
      default:
        col.type = MYSQL_TYPE_STRING;
        col.buf.resize(256);
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = col.buf.data();
        b.buffer_length = col.buf.size();
        break;
    }
  }
  mysql_free_result(meta);
  Status result;
  if (mysql_stmt_bind_result(st, out.data())) {
    last_errno_ = static_cast<int>(mysql_stmt_errno(st));
    result = im.Error("bind result of " + Brief(sql), mysql_stmt_error(st), last_errno_);
  }
  while (result.ok()) {
    int rc = mysql_stmt_fetch(st);
    if (rc == MYSQL_NO_DATA) break;
    if (rc == 1) {
      // An error the server sends in the middle of an unbuffered result (1038 out of sort
      // memory, 1242 a subquery of many rows, 1317 interrupted) is on the connection
      // handle, not on the statement's.
      last_errno_ = static_cast<int>(mysql_stmt_errno(st));
      std::string text = mysql_stmt_error(st);
      if (last_errno_ == 0) {
        last_errno_ = static_cast<int>(mysql_errno(im.m));
        text = mysql_error(im.m);
      }
      if (last_errno_ == 0) {
        last_errno_ = CR_UNKNOWN_ERROR;
        text = "fetch failed without an error from the client library";
      }
      result = im.Error("fetch " + Brief(sql), text.c_str(), last_errno_);
      break;
    }
    std::vector<Value> cells(n);
    for (unsigned int c = 0; c < n && result.ok(); ++c) {
      Column& col = cols[c];
      if (col.is_null) continue;
      if (col.type == MYSQL_TYPE_LONGLONG) {
        cells[c] = Value(col.i);
      } else if (col.type == MYSQL_TYPE_DOUBLE) {
        cells[c] = Value(col.d);
      } else if (col.length <= col.buf.size()) {
        cells[c] = Value(std::string(col.buf.data(), col.length));
      } else {  // longer than the buffer: read the whole value now
        std::string big(col.length, '\0');
        MYSQL_BIND b{};
        unsigned long len = 0;
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = big.data();
        b.buffer_length = big.size();
        b.length = &len;
        if (mysql_stmt_fetch_column(st, &b, c, 0)) {
          last_errno_ = static_cast<int>(mysql_stmt_errno(st));
          result = im.Error("fetch column of " + Brief(sql), mysql_stmt_error(st), last_errno_);
          break;
        }
        big.resize(std::min<size_t>(len, big.size()));
        cells[c] = Value(std::move(big));
      }
    }
    if (!result.ok()) break;
    result = each(Row(std::move(cells)));
  }
  mysql_stmt_free_result(st);
  if (!result.ok()) {
    // Unread rows stay on the wire: reset the statement so the session is usable.
    if (!im.broken && mysql_stmt_reset(st)) im.broken = true;
    return result;
  }
  last_errno_ = 0;
  im.Used();
  return Status::Ok();
}

Result<uint64_t> Connection::Exec(std::string_view sql, const Params& params) {
  KG_RETURN_IF_ERROR(QueryEach(sql, params, [](const Row&) { return Status::Ok(); }));
  return last_affected_;
}

Result<std::vector<Row>> Connection::Query(std::string_view sql, const Params& params) {
  std::vector<Row> rows;
  Status s = QueryEach(sql, params, [&](const Row& r) {
    rows.push_back(r);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return rows;
}

Result<std::optional<Row>> Connection::QueryOne(std::string_view sql, const Params& params) {
  KG_ASSIGN_OR_RETURN(auto rows, Query(sql, params));
  if (rows.empty()) return std::optional<Row>();
  return std::optional<Row>(std::move(rows.front()));
}

Status Connection::InTransaction(const std::function<Status(Connection&)>& body, const RetryPolicy& policy) {
  if (impl_->in_tx)
    return Status::Internal("mysql " + impl_->who + ": InTransaction called inside InTransaction (not supported)");
  struct InTx {
    bool& flag;
    explicit InTx(bool& f) : flag(f) { flag = true; }
    ~InTx() { flag = false; }
  } in_tx(impl_->in_tx);
  thread_local std::mt19937_64 rng(std::random_device{}());
  Status last;
  auto delay = policy.initial;
  for (int attempt = 1; attempt <= policy.max_attempts; ++attempt) {
    if (attempt > 1) {
      auto lo = delay.count() / 2;
      std::uniform_int_distribution<int64_t> jitter(lo, std::max<int64_t>(lo, delay.count()));
      std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
      delay = std::min(policy.max, delay * 2);
    }
    last_errno_ = 0;
    Status s = Run("START TRANSACTION");
    if (s.ok()) {
      s = body(*this);
      if (s.ok()) {
        s = Run("COMMIT");
        if (s.ok()) return s;
      }
    }
    int e = last_errno_;
    if (!impl_->broken) {
      // 1205 leaves the transaction open, and a body may fail on its own: always roll back.
      int kept = last_errno_;
      if (!Run("ROLLBACK").ok()) impl_->broken = true;
      last_errno_ = kept;
    }
    if (!IsRetryableInTx(e) && !(IsUnreachable(e) && impl_->broken)) return s;
    last = s;
  }
  return last.With("gave up after " + std::to_string(policy.max_attempts) + " attempts");
}

// ---------------------------------------------------------------------------------------
// Pool

PooledConnection::~PooledConnection() {
  if (pool_ && c_) pool_->Return(std::move(c_));
}

PooledConnection& PooledConnection::operator=(PooledConnection&& o) noexcept {
  if (this != &o) {
    if (pool_ && c_) pool_->Return(std::move(c_));
    pool_ = o.pool_;
    c_ = std::move(o.c_);
    o.pool_ = nullptr;
  }
  return *this;
}

Result<std::unique_ptr<Pool>> Pool::Open(const MysqlEndpoint& e) {
  KG_RETURN_IF_ERROR(Validate(e));
  std::unique_ptr<Pool> pool(new Pool(e));
  KG_ASSIGN_OR_RETURN(auto first, Connection::Open(e));
  {
    MutexLock lock(pool->mu_);
    pool->idle_.push_back(std::move(first));
    pool->open_ = 1;
  }
  return pool;
}

Pool::~Pool() {
  MutexLock lock(mu_);
  if (in_use_ != 0) {
    spdlog::critical("mysql {}: pool destroyed with {} connections borrowed", Describe(endpoint_), in_use_);
    std::abort();  // a borrowed connection would return into freed memory
  }
  idle_.clear();
}

Result<PooledConnection> Pool::Borrow(std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_ptr<Connection> c;
  {
    MutexLock lock(mu_);
    while (idle_.empty() && open_ >= endpoint_.pool_size) {
      if (!cv_.WaitUntil(lock, deadline) && std::chrono::steady_clock::now() >= deadline) {
        if (idle_.empty() && open_ >= endpoint_.pool_size) {
          ++borrow_timeouts_;
          return Status::Unavailable("mysql " + Describe(endpoint_) + ": " + std::to_string(in_use_) + " of " +
                                     std::to_string(endpoint_.pool_size) + " connections in use for " +
                                     std::to_string(wait.count()) + " ms");
        }
      }
    }
    ++in_use_;
    if (!idle_.empty()) {
      c = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++open_;
    }
  }
  // Connect or check outside the lock (they take up to the timeouts).
  Status s;
  if (!c) {
    auto opened = Connection::Open(endpoint_);
    if (opened.ok()) c = std::move(opened).value();
    else s = opened.status();
  } else if (c->broken() || MonoMs() - c->last_used_ms() > kPingAfterIdleMs) {
    s = c->Ping();  // reconnects a broken one first
    if (!s.ok() && c->broken()) s = c->Ping();  // the server went away since: one fresh session
  }
  if (!s.ok()) {
    c.reset();
    MutexLock lock(mu_);
    --in_use_;
    --open_;
    cv_.NotifyOne();
    return s;
  }
  return PooledConnection(this, std::move(c));
}

void Pool::Return(std::unique_ptr<Connection> c) {
  MutexLock lock(mu_);
  --in_use_;
  if (c->broken()) {
    --open_;  // reopened on demand, where its failure is reported to the borrower
    c.reset();
  } else {
    idle_.push_back(std::move(c));
  }
  cv_.NotifyOne();
}

PoolStats Pool::stats() const {
  MutexLock lock(mu_);
  return {open_, in_use_, borrow_timeouts_};
}

Status Pool::InTransaction(const std::function<Status(Connection&)>& body, const RetryPolicy& policy,
                           std::chrono::milliseconds wait) {
  KG_ASSIGN_OR_RETURN(auto c, Borrow(wait));
  return c->InTransaction(body, policy);
}

// ---------------------------------------------------------------------------------------
// Batches

Result<std::vector<Batch>> BuildBatches(std::string_view head, std::string_view tail, size_t columns,
                                        const std::vector<Params>& rows, size_t byte_budget) {
  std::vector<Batch> out;
  if (columns == 0) return Status::Internal("mysql batch: zero columns");
  std::string tuple = "(";
  for (size_t c = 0; c < columns; ++c) tuple += c ? ",?" : "?";
  tuple += ")";
  size_t max_rows = kMaxPlaceholders / columns;
  size_t i = 0;
  while (i < rows.size()) {
    // As many rows as fit the budget, then down to a power of two.
    size_t bytes = head.size() + tail.size();
    size_t n = 0;
    while (i + n < rows.size() && n < max_rows) {
      const Params& r = rows[i + n];
      if (r.size() != columns)
        return Status::Internal("mysql batch: row " + std::to_string(i + n) + " has " + std::to_string(r.size()) +
                                " values for " + std::to_string(columns) + " columns");
      size_t row_bytes = tuple.size() + 1;
      for (const Value& v : r) row_bytes += v.WireSize();
      if (n > 0 && bytes + row_bytes > byte_budget) break;
      bytes += row_bytes;
      ++n;
    }
    size_t p = 1;
    while (p * 2 <= n) p *= 2;
    Batch b;
    b.rows = p;
    b.sql.reserve(head.size() + tail.size() + p * (tuple.size() + 1));
    b.sql.append(head);
    for (size_t k = 0; k < p; ++k) {
      if (k) b.sql += ',';
      b.sql += tuple;
      const Params& r = rows[i + k];
      b.params.insert(b.params.end(), r.begin(), r.end());
    }
    b.sql.append(tail);
    out.push_back(std::move(b));
    i += p;
  }
  return out;
}

Result<uint64_t> ExecBatches(Connection& c, const std::vector<Batch>& batches) {
  uint64_t affected = 0;
  for (const Batch& b : batches) {
    KG_ASSIGN_OR_RETURN(uint64_t n, c.Exec(b.sql, b.params));
    affected += n;
  }
  return affected;
}

// ---------------------------------------------------------------------------------------
// Migrations

namespace {

constexpr const char* kMigrationsTable =
    "CREATE TABLE IF NOT EXISTS kg_schema_migrations("
    "component VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, version INT NOT NULL, "
    "dirty TINYINT NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY(component, version)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

Status MigrateLocked(Connection& c, const std::string& who, const std::string& component,
                     const std::vector<Migration>& migrations) {
  KG_RETURN_IF_ERROR(c.Run(kMigrationsTable));
  KG_ASSIGN_OR_RETURN(auto dirty, c.Query("SELECT version, applied_at FROM kg_schema_migrations "
                                          "WHERE component=? AND dirty<>0 ORDER BY version",
                                          {component}));
  // A dirty version that is re-runnable is forgotten and applied again below (a lost
  // connection or a server restart mid-migration must not need a human); any other refuses.
  for (const Row& d : dirty) {
    const int64_t v = d.Int(0);
    auto m = std::find_if(migrations.begin(), migrations.end(), [&](const Migration& x) { return x.version == v; });
    if (m == migrations.end() || !m->rerunnable) {
      return Status::Internal(
          "mysql " + who + ": migration " + std::to_string(v) + " of '" + component +
          "' is marked dirty in kg_schema_migrations (it failed part-way at " + std::to_string(d.Int(1)) +
          " ms since the epoch) and is not re-runnable" + (m == migrations.end() ? " (unknown to this version)" : "") +
          "; refusing to start. Repair the schema by hand, then either DELETE that row "
          "(to run the migration again) or set its dirty=0 (if it did complete)");
    }
  }
  for (const Row& d : dirty) {
    spdlog::warn("mysql {}: migration {} of '{}' was left dirty at {} ms since the epoch; it is re-runnable: "
                 "running it again",
                 who, d.Int(0), component, d.Int(1));
    KG_ASSIGN_OR_RETURN(auto gone, c.Exec("DELETE FROM kg_schema_migrations WHERE component=? AND version=? "
                                          "AND dirty<>0",
                                          {component, d.Int(0)}));
    (void)gone;
  }
  KG_ASSIGN_OR_RETURN(auto applied_rows,
                      c.Query("SELECT version FROM kg_schema_migrations WHERE component=?", {component}));
  std::vector<int64_t> applied;
  for (const Row& r : applied_rows) applied.push_back(r.Int(0));
  for (const Migration& m : migrations) {
    if (std::find(applied.begin(), applied.end(), m.version) != applied.end()) continue;
    std::string what = "migration " + std::to_string(m.version) + " of '" + component + "'";
    KG_ASSIGN_OR_RETURN(auto ins, c.Exec("INSERT INTO kg_schema_migrations(component,version,dirty,applied_at) "
                                         "VALUES(?,?,1,?)",
                                         {component, m.version, NowMs()}));
    (void)ins;
    for (size_t i = 0; i < m.statements.size(); ++i) {
      Status s = c.Run(m.statements[i]);
      if (!s.ok())
        return s.With(what + ", statement " + std::to_string(i + 1) + " of " + std::to_string(m.statements.size()) +
                      " (left marked dirty)");
    }
    KG_ASSIGN_OR_RETURN(auto upd, c.Exec("UPDATE kg_schema_migrations SET dirty=0, applied_at=? "
                                         "WHERE component=? AND version=?",
                                         {NowMs(), component, m.version}));
    (void)upd;
    spdlog::info("mysql {}: applied {}", who, what);
  }
  return Status::Ok();
}

}  // namespace

Status Migrate(Pool& pool, const std::string& component, const std::vector<Migration>& migrations) {
  const std::string who = Describe(pool.endpoint());
  if (component.empty() || component.size() > 64)
    return Status::Invalid("mysql " + who + ": migration component must be 1 to 64 characters");
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version <= 0 || (i > 0 && migrations[i].version <= migrations[i - 1].version))
      return Status::Internal("mysql " + who + ": migrations of '" + component +
                              "' must have positive, increasing versions");
  }
  // A dedicated session: the named lock lives and dies with it, so it must never reconnect
  // silently; its reads outlast the 30 s lock wait.
  MysqlEndpoint e = pool.endpoint();
  e.io_timeout_s = std::max(e.io_timeout_s, 45);
  KG_ASSIGN_OR_RETURN(auto c, Connection::Open(e));
  // MySQL 8 limits lock names to 64 characters.
  std::string lock_name = e.database + ".kg_migrate";
  if (lock_name.size() > 64) lock_name = "kg_migrate." + Sha256Hex(e.database).substr(0, 40);
  KG_ASSIGN_OR_RETURN(auto got, c->QueryOne("SELECT GET_LOCK(?, 30)", {lock_name}));
  if (!got || got->IsNull(0) || got->Int(0) != 1) {
    return Status::Unavailable("mysql " + who + ": migrate '" + component + "': could not take the lock '" +
                               lock_name + "' within 30 s; another kgflow process is migrating this database "
                               "(or holds the lock): see SELECT IS_USED_LOCK('" + lock_name + "')");
  }
  Status s = MigrateLocked(*c, who, component, migrations);
  if (!c->broken()) {
    auto released = c->QueryOne("SELECT RELEASE_LOCK(?)", {lock_name});
    (void)released;  // closing the session releases it anyway
  }
  return s;
}

}  // namespace kg::mysql
