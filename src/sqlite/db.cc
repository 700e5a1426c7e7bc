#include "sqlite/db.h"

#include "common/util.h"


namespace kg::sqlite {

Code CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_FULL:
      return Code::kUnavailable;
    default:
      return Code::kInternal;
  }
}

bool Stmt::Step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE && status_.ok()) status_ = Status(CodeFor(rc), std::string("sqlite: ") + sqlite3_errmsg(db_));
  return false;
}

Status Stmt::Run() {
  while (Step()) {
  }
  Status s = status_;
  Reset();
  status_ = Status::Ok();
  return s;
}

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close_v2(raw);
    return Status::Unavailable("open " + path + ": " + msg);
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // Switching a fresh database to WAL can answer SQLITE_BUSY without consulting the busy
  // handler while another process is creating or switching it too (two nodes started at
  // once on one data dir): retried like any transient failure.
  Status s = RetryTransient(
      [&] { return db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"); });
  if (!s.ok()) return s.With("open " + path);
  return db;
}

Status Db::AddColumnIfMissing(std::string_view table, std::string_view column, std::string_view decl) {
  // Check and alter in one write transaction: processes starting together (a node and its
  // workers) must not both see the column missing and both add it.
  Tx tx(*this);
  KG_RETURN_IF_ERROR(tx.Begin());
  bool table_exists = false, has_column = false;
  {
    KG_ASSIGN_OR_RETURN(auto t, Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"));
    table_exists = t->Bind(1, table).Step();
    KG_RETURN_IF_ERROR(t->status());
  }
  if (!table_exists) return tx.Commit();
  {
    KG_ASSIGN_OR_RETURN(auto c, Prepare("SELECT 1 FROM pragma_table_info(?) WHERE name=?"));
    has_column = c->Bind(1, table).Bind(2, column).Step();
    KG_RETURN_IF_ERROR(c->status());
  }
  if (has_column) return tx.Commit();
  KG_RETURN_IF_ERROR(
      Exec("ALTER TABLE " + std::string(table) + " ADD COLUMN " + std::string(column) + " " + std::string(decl)));
  return tx.Commit();
}

Db::~Db() {
  for (auto& [_, c] : cache_) sqlite3_finalize(c.stmt);
  sqlite3_close_v2(db_);
}

Status Db::Exec(std::string_view sql) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  char* err = nullptr;
  std::string owned(sql);
  int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return Status(CodeFor(rc), "sqlite " + path_ + ": " + msg);
}

Stmt::~Stmt() {
  if (cache_) {
    cache_->Return(s_);
  } else {
    sqlite3_finalize(s_);
  }
}

void Db::Return(sqlite3_stmt* s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  cache_[cache_keys_[s]].in_use = false;
}

Result<std::unique_ptr<Stmt>> Db::Prepare(std::string_view sql) {
  std::unique_lock<std::recursive_mutex> lock(mu_);
  std::string key(sql);
  auto it = cache_.find(key);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return std::make_unique<Stmt>(db_, it->second.stmt, std::move(lock), this);
  }
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc == SQLITE_OK) {
    if (it != cache_.end()) return std::make_unique<Stmt>(db_, s, std::move(lock));  // the cached one is busy
    cache_[key] = Cached{s, true};
    cache_keys_[s] = key;
    return std::make_unique<Stmt>(db_, s, std::move(lock), this);
  }
  sqlite3_finalize(s);
  std::string head(sql.substr(0, 60));
  return Status(CodeFor(rc), "sqlite " + path_ + ": prepare \"" + head + (sql.size() > 60 ? "...\"" : "\"") + ": " +
                                 sqlite3_errmsg(db_));
}

Db::Tx::Tx(Db& db) : db_(db), lock_(db.mu_) { begin_ = db_.Exec("BEGIN IMMEDIATE"); }

Db::Tx::~Tx() {
  if (begin_.ok() && !done_) (void)db_.Exec("ROLLBACK");
}

Status Db::Tx::Commit() {
  KG_RETURN_IF_ERROR(begin_);
  Status s = db_.Exec("COMMIT");
  if (s.ok()) done_ = true;
  return s;
}

}  // namespace kg::sqlite
