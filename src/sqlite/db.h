#pragma once
// A thin RAII layer over one SQLite connection, shared by the embedded backends.
// Values are always bound as parameters; SQL text is constant.
//
// Thread safety: a Db may be used from several threads. A live Stmt and a Tx each hold
// the connection's (recursive) mutex for their whole lifetime, so another thread's
// statements can never run inside this thread's transaction, nor write while this
// thread's read statement holds a snapshot open. A Stmt belongs to one thread.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace kg::sqlite {

// The Status code for an SQLite result code: busy, locked, I/O and memory errors are
// kUnavailable (worth retrying), everything else kInternal.
Code CodeFor(int sqlite_rc);

class Db;

class Stmt {
 public:
  // `cache` (may be null) takes the statement back, reset, instead of finalizing it.
  Stmt(sqlite3* db, sqlite3_stmt* s, std::unique_lock<std::recursive_mutex> lock, Db* cache = nullptr)
      : lock_(std::move(lock)), db_(db), s_(s), cache_(cache) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }

  // Advances: true with a row, false when done. Errors land in status().
  bool Step();
  // Runs to completion; returns the first error.
  Status Run();
  const Status& status() const { return status_; }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  double Double(int col) const { return sqlite3_column_double(s_, col); }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, col))
             : std::string();
  }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

 private:
  std::unique_lock<std::recursive_mutex> lock_;  // the connection, for this statement's life
  sqlite3* db_;
  sqlite3_stmt* s_;
  Db* cache_;
  Status status_;
};

class Db {
 public:
  // Opens (creating) the database at `path` in WAL mode with a busy timeout.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, int busy_timeout_ms = 10000);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status Exec(std::string_view sql);
  // Prepares `sql`. A transient failure (busy, locked, I/O, out of memory) is kUnavailable,
  // which callers may retry (RetryTransient) without holding the connection meanwhile;
  // anything else (a missing table in a damaged database, say) is kInternal. Never aborts:
  // one failed request must not take the API, the guard and the workers with it.
  Result<std::unique_ptr<Stmt>> Prepare(std::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  // Schema migration for a database made by an older kgflow: adds `column` (`decl` is its
  // type and default) to `table` when the table exists without it. Names are our constants,
  // never input.
  Status AddColumnIfMissing(std::string_view table, std::string_view column, std::string_view decl);
  const std::string& path() const { return path_; }

  // BEGIN IMMEDIATE ... COMMIT, rolled back unless Commit() succeeds. Holds the
  // connection's transaction lock, so one Db serialises its own transactions.
  class Tx {
   public:
    explicit Tx(Db& db);
    ~Tx();
    Status Begin() const { return begin_; }
    Status Commit();

   private:
    Db& db_;
    std::unique_lock<std::recursive_mutex> lock_;
    Status begin_;
    bool done_ = false;
  };

 private:
  friend class Stmt;
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // Called by a cached Stmt's destructor, with mu_ held.
  void Return(sqlite3_stmt* s);

  sqlite3* db_;
  std::string path_;
  std::recursive_mutex mu_;  // held by every live Stmt and Tx of this connection
  // Prepared statements by SQL text, kept for reuse (our SQL is constant, so the set is
  // small); one in use is not handed out twice: a second user gets a fresh statement.
  // Guarded by mu_ (a recursive mutex, which the annotations cannot express).
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  std::unordered_map<std::string, Cached> cache_;
  std::unordered_map<sqlite3_stmt*, std::string> cache_keys_;
};

}  // namespace kg::sqlite
