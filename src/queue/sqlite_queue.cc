// Embedded queue on SQLite. Each transition is one IMMEDIATE transaction whose WHERE
// clause checks the state and token, so concurrent processes cannot both win.
#include <poll.h>
#include <sys/inotify.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <random>

#include "common/mutex.h"
#include "common/util.h"
#include "config/config.h"
#include "queue/queue.h"
#include "sqlite/db.h"

namespace kg {
namespace {

constexpr int kReady = static_cast<int>(ChunkState::kReady);
constexpr int kLeased = static_cast<int>(ChunkState::kLeased);
constexpr int kDone = static_cast<int>(ChunkState::kDone);
constexpr int kDead = static_cast<int>(ChunkState::kDead);
constexpr int kCancelled = static_cast<int>(ChunkState::kCancelled);

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS chunks(
  id TEXT PRIMARY KEY, task_id TEXT NOT NULL, provider TEXT NOT NULL, idx INTEGER NOT NULL,
  payload TEXT NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  crashes INTEGER NOT NULL DEFAULT 0, available_at INTEGER NOT NULL, owner TEXT, token TEXT,
  deadline INTEGER, last_error TEXT, updated_at INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
  leased_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sequences(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO sequences(name, value) VALUES('lease_generation', 0);
CREATE INDEX IF NOT EXISTS chunks_ready ON chunks(provider, state, available_at);
CREATE INDEX IF NOT EXISTS chunks_task ON chunks(task_id, state);
CREATE INDEX IF NOT EXISTS chunks_owner ON chunks(owner, state);
CREATE INDEX IF NOT EXISTS chunks_deadline ON chunks(state, deadline);
-- Hands out chunks in order without sorting a task's whole ready set (one document of 50 000
-- chunks shares one available_at, so ORDER BY available_at, idx sorted them all per lease).
CREATE INDEX IF NOT EXISTS chunks_lease ON chunks(provider, state, crashes, available_at, idx);
)sql";

// Per-task chunk counts by state, kept by triggers in the transaction of every insert and
// state change, so Counts() (read after every ack) is a lookup of at most five rows instead
// of a count over all of a task's chunks: per-chunk work does not grow with the document.
constexpr const char* kCountsSchema = R"sql(
CREATE TABLE task_counts(task_id TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY(task_id, state)) WITHOUT ROWID;
CREATE TRIGGER chunks_counts_insert AFTER INSERT ON chunks BEGIN
  INSERT INTO task_counts(task_id, state, n) VALUES(NEW.task_id, NEW.state, 1)
    ON CONFLICT(task_id, state) DO UPDATE SET n=n+1;
END;
CREATE TRIGGER chunks_counts_state AFTER UPDATE OF state ON chunks WHEN OLD.state IS NOT NEW.state BEGIN
  UPDATE task_counts SET n=n-1 WHERE task_id=OLD.task_id AND state=OLD.state;
  INSERT INTO task_counts(task_id, state, n) VALUES(NEW.task_id, NEW.state, 1)
    ON CONFLICT(task_id, state) DO UPDATE SET n=n+1;
END;
CREATE TRIGGER chunks_counts_delete AFTER DELETE ON chunks BEGIN
  UPDATE task_counts SET n=n-1 WHERE task_id=OLD.task_id AND state=OLD.state;
END;
INSERT INTO task_counts(task_id, state, n) SELECT task_id, state, COUNT(*) FROM chunks GROUP BY task_id, state;
)sql";

// Gives a leased chunk back without penalty (the attempt is not counted); callers add the WHERE
// clause and bind (1) state=ready, (2) available_at, (3) updated_at first.
constexpr const char* kGiveBack =
    "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, attempts=MAX(attempts-1,0), "
    "available_at=?, updated_at=? ";

class SqliteQueue final : public Queue {
 public:
  SqliteQueue(std::unique_ptr<sqlite::Db> db, QueueOptions o) : db_(std::move(db)), o_(std::move(o)) {
    if (!o_.now_ms) o_.now_ms = NowMs;
    wal_name_ = std::filesystem::path(db_->path()).filename().string() + "-wal";
  }

  // A queue already in the current shape (every open but the first after an upgrade) is
  // checked with reads only: kSchema writes (the sequence row), so running it would make
  // every open wait for the write lock behind whatever a worker is committing.
  Status Init() {
    KG_ASSIGN_OR_RETURN(const bool current, IsCurrent());
    if (current) return Status::Ok();
    KG_RETURN_IF_ERROR(db_->Exec(kSchema));
    // Databases made before lease generations existed gain the column.
    KG_RETURN_IF_ERROR(db_->AddColumnIfMissing("chunks", "generation", "INTEGER NOT NULL DEFAULT 0"));
    // And those made before lease times were kept (their chunks read 0: never leased).
    KG_RETURN_IF_ERROR(db_->AddColumnIfMissing("chunks", "leased_at", "INTEGER NOT NULL DEFAULT 0"));
    return InitCounts();
  }

  // Whether every table, index, trigger, column and row that Init makes is there.
  Result<bool> IsCurrent() {
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE name IN ('chunks', 'sequences', 'chunks_ready', "
          "'chunks_task', 'chunks_owner', 'chunks_deadline', 'chunks_lease', 'task_counts', 'chunks_counts_insert', "
          "'chunks_counts_state', 'chunks_counts_delete'))=11 AND "
          "(SELECT COUNT(*) FROM pragma_table_info('chunks') WHERE name IN ('generation', 'leased_at'))=2"));
      bool tables = q->Step() && q->Int(0) != 0;
      KG_RETURN_IF_ERROR(q->status());
      if (!tables) return false;
    }
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT 1 FROM sequences WHERE name='lease_generation'"));
    bool row = q->Step();
    KG_RETURN_IF_ERROR(q->status());
    return row;
  }

  // Creates the count table with its triggers and fills it from the chunks already there
  // (a queue made before it existed), in one write transaction: processes opening the
  // queue together must not both create it, and no chunk may change state in between.
  Status InitCounts() {
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    bool exists = false;
    {
      KG_ASSIGN_OR_RETURN(auto t, db_->Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='task_counts'"));
      exists = t->Step();
      KG_RETURN_IF_ERROR(t->status());
    }
    if (!exists) KG_RETURN_IF_ERROR(db_->Exec(kCountsSchema).With("create task_counts"));
    return tx.Commit();
  }

  Status Enqueue(const std::vector<ChunkItem>& items) override {
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "INSERT OR IGNORE INTO chunks(id,task_id,provider,idx,payload,state,available_at,updated_at) "
        "VALUES(?,?,?,?,?,?,?,?)"));
    int64_t now = o_.now_ms();
    for (const auto& it : items) {
      st->Bind(1, it.id).Bind(2, it.task_id).Bind(3, it.provider).Bind(4, it.idx).Bind(5, it.payload);
      st->Bind(6, kReady).Bind(7, now).Bind(8, now);
      KG_RETURN_IF_ERROR(st->Run().With("enqueue " + it.id));
    }
    return tx.Commit();
  }

  Result<std::vector<Lease>> LeaseChunks(const std::string& provider, const std::string& owner, int max,
                                         int64_t lease_ms, bool allow_suspect) override {
    std::vector<Lease> out;
    if (max <= 0) return out;
    int64_t now = o_.now_ms();
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    // Leases of this provider that reached their deadline are free again from now on.
    KG_RETURN_IF_ERROR(ReclaimIn(now, &provider).status());
    std::vector<std::string> ids;
    if (allow_suspect) {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "SELECT id FROM chunks WHERE provider=? AND state=? AND available_at<=? AND crashes>0 "
          "ORDER BY available_at, idx LIMIT 1"));
      q->Bind(1, provider).Bind(2, kReady).Bind(3, now);
      if (q->Step()) ids.push_back(q->Text(0));
      KG_RETURN_IF_ERROR(q->status());
    }
    if (ids.empty()) {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "SELECT id FROM chunks WHERE provider=? AND state=? AND available_at<=? AND crashes=0 "
          "ORDER BY available_at, idx LIMIT ?"));
      q->Bind(1, provider).Bind(2, kReady).Bind(3, now).Bind(4, max);
      while (q->Step()) ids.push_back(q->Text(0));
      KG_RETURN_IF_ERROR(q->status());
    }
    if (ids.empty()) {
      KG_RETURN_IF_ERROR(tx.Commit());
      return out;
    }
    // One draw from the queue-wide sequence covers the whole batch. The sequence never falls
    // behind the clock (in microseconds), so a new or wiped queue.db cannot hand out
    // generations below those a kept graph already holds.
    KG_ASSIGN_OR_RETURN(auto seq, db_->Prepare(
        "UPDATE sequences SET value=MAX(value, ?2)+?1 WHERE name='lease_generation' RETURNING value"));
    seq->Bind(1, static_cast<int64_t>(ids.size())).Bind(2, now * 1000);
    if (!seq->Step()) {
      KG_RETURN_IF_ERROR(seq->status());
      return Status::Internal("lease generation sequence missing in " + db_->path());
    }
    int64_t generation = seq->Int(0) - static_cast<int64_t>(ids.size());
    KG_RETURN_IF_ERROR(seq->Run());
    seq.reset();
    KG_ASSIGN_OR_RETURN(auto upd, db_->Prepare(
        "UPDATE chunks SET state=?, owner=?, token=?, deadline=?, attempts=attempts+1, updated_at=?5, leased_at=?5, "
        "generation=?6 WHERE id=?7 RETURNING task_id, provider, idx, payload, attempts, crashes"));
    for (const auto& id : ids) {
      Lease l;
      l.chunk_id = id;
      l.token = RandomId("L");
      l.deadline_ms = now + lease_ms;
      l.generation = ++generation;
      upd->Bind(1, kLeased).Bind(2, owner).Bind(3, l.token).Bind(4, l.deadline_ms).Bind(5, now);
      upd->Bind(6, l.generation).Bind(7, id);
      if (upd->Step()) {
        l.task_id = upd->Text(0);
        l.provider = upd->Text(1);
        l.idx = static_cast<int>(upd->Int(2));
        l.payload = upd->Text(3);
        l.attempt = static_cast<int>(upd->Int(4));
        l.crashes = static_cast<int>(upd->Int(5));
        out.push_back(std::move(l));
      }
      KG_RETURN_IF_ERROR(upd->Run());
    }
    KG_RETURN_IF_ERROR(tx.Commit());
    return out;
  }

  Status Renew(const std::string& chunk_id, const std::string& token, int64_t lease_ms) override {
    int64_t now = o_.now_ms();
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE chunks SET deadline=?, updated_at=? WHERE id=? AND state=? AND token=? AND deadline>=?"));
    st->Bind(1, now + lease_ms).Bind(2, now).Bind(3, chunk_id).Bind(4, kLeased).Bind(5, token).Bind(6, now);
    return Fenced(st->Run(), chunk_id, "renew");
  }

  Status Ack(const std::string& chunk_id, const std::string& token) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, updated_at=? "
        "WHERE id=? AND state=? AND token=?"));
    st->Bind(1, kDone).Bind(2, o_.now_ms()).Bind(3, chunk_id).Bind(4, kLeased).Bind(5, token);
    return Fenced(st->Run(), chunk_id, "ack");
  }

  Status Nack(const std::string& chunk_id, const std::string& token, const std::string& error,
              bool retryable) override {
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT attempts FROM chunks WHERE id=? AND state=? AND token=?"));
    q->Bind(1, chunk_id).Bind(2, kLeased).Bind(3, token);
    if (!q->Step()) {
      KG_RETURN_IF_ERROR(q->status());
      return Status::Conflict("nack " + chunk_id + ": lease is stale or gone");
    }
    int attempts = static_cast<int>(q->Int(0));
    int64_t now = o_.now_ms();
    bool dead = !retryable || attempts >= o_.max_attempts;
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, available_at=?, last_error=?, "
        "updated_at=? WHERE id=?"));
    std::string err = dead && retryable ? error + " (after " + std::to_string(attempts) + " attempts)" : error;
    st->Bind(1, dead ? kDead : kReady).Bind(2, dead ? now : now + Backoff(attempts)).Bind(3, err);
    st->Bind(4, now).Bind(5, chunk_id);
    KG_RETURN_IF_ERROR(st->Run());
    return tx.Commit();
  }

  Status Release(const std::string& chunk_id, const std::string& token) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(std::string(kGiveBack) + "WHERE id=? AND state=? AND token=?"));
    int64_t now = o_.now_ms();
    st->Bind(1, kReady).Bind(2, now).Bind(3, now).Bind(4, chunk_id).Bind(5, kLeased).Bind(6, token);
    return Fenced(st->Run(), chunk_id, "release");
  }

  Result<int> ReleaseOwner(const std::string& owner, bool crashed, const std::string& reason) override {
    int64_t now = o_.now_ms();
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    int n = 0;
    if (crashed) {
      KG_ASSIGN_OR_RETURN(auto poison, db_->Prepare(
          "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, crashes=crashes+1, "
          "last_error=?, updated_at=? WHERE owner=? AND state=? AND (crashes+1>=? OR attempts>=?)"));
      poison->Bind(1, kDead)
          .Bind(2, "poison: " + std::to_string(o_.poison_crashes) + " workers died holding this chunk; last: " + reason)
          .Bind(3, now).Bind(4, owner).Bind(5, kLeased).Bind(6, o_.poison_crashes).Bind(7, o_.max_attempts);
      KG_RETURN_IF_ERROR(poison->Run());
      n += static_cast<int>(db_->Changes());
      KG_ASSIGN_OR_RETURN(auto back, db_->Prepare(
          "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, crashes=crashes+1, "
          "available_at=?, last_error=?, updated_at=? WHERE owner=? AND state=?"));
      back->Bind(1, kReady).Bind(2, now).Bind(3, "worker died: " + reason).Bind(4, now).Bind(5, owner).Bind(6, kLeased);
      KG_RETURN_IF_ERROR(back->Run());
      n += static_cast<int>(db_->Changes());
    } else {
      KG_ASSIGN_OR_RETURN(auto back, db_->Prepare(std::string(kGiveBack) + "WHERE owner=? AND state=?"));
      back->Bind(1, kReady).Bind(2, now).Bind(3, now).Bind(4, owner).Bind(5, kLeased);
      KG_RETURN_IF_ERROR(back->Run());
      n += static_cast<int>(db_->Changes());
    }
    KG_RETURN_IF_ERROR(tx.Commit());
    return n;
  }

  Result<int> ReleaseOwnersWithPrefix(const std::string& prefix) override {
    int64_t now = o_.now_ms();
    KG_ASSIGN_OR_RETURN(auto back, db_->Prepare(std::string(kGiveBack) + "WHERE state=? AND substr(owner, 1, length(?))=?"));
    back->Bind(1, kReady).Bind(2, now).Bind(3, now).Bind(4, kLeased).Bind(5, prefix).Bind(6, prefix);
    KG_RETURN_IF_ERROR(back->Run());
    return static_cast<int>(db_->Changes());
  }

  Result<int> ReclaimExpired() override {
    sqlite::Db::Tx tx(*db_);
    KG_RETURN_IF_ERROR(tx.Begin());
    auto n = ReclaimIn(o_.now_ms(), nullptr);
    if (!n.ok()) return n.status();
    KG_RETURN_IF_ERROR(tx.Commit());
    return n;
  }

  Result<int> CancelTask(const std::string& task_id) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, last_error='cancelled', "
        "updated_at=? WHERE task_id=? AND state IN (?,?)"));
    st->Bind(1, kCancelled).Bind(2, o_.now_ms()).Bind(3, task_id).Bind(4, kReady).Bind(5, kLeased);
    KG_RETURN_IF_ERROR(st->Run());
    return static_cast<int>(db_->Changes());
  }

  Result<int> RetryTask(const std::string& task_id) override {
    int64_t now = o_.now_ms();
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE chunks SET state=?, attempts=0, crashes=0, available_at=?, last_error=NULL, updated_at=? "
        "WHERE task_id=? AND state IN (?,?)"));
    st->Bind(1, kReady).Bind(2, now).Bind(3, now).Bind(4, task_id).Bind(5, kDead).Bind(6, kCancelled);
    KG_RETURN_IF_ERROR(st->Run());
    return static_cast<int>(db_->Changes());
  }

  Result<TaskCounts> Counts(const std::string& task_id) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT state, n FROM task_counts WHERE task_id=?"));
    q->Bind(1, task_id);
    TaskCounts c;
    while (q->Step()) {
      int n = static_cast<int>(q->Int(1));
      c.total += n;
      switch (static_cast<int>(q->Int(0))) {
        case kReady: c.ready = n; break;
        case kLeased: c.leased = n; break;
        case kDone: c.done = n; break;
        case kDead: c.dead = n; break;
        case kCancelled: c.cancelled = n; break;
      }
    }
    KG_RETURN_IF_ERROR(q->status());
    return c;
  }

  Result<std::map<std::string, ProviderDepth>> Depths() override {
    // Leasable is available_at <= now, as LeaseChunks has it; the rest of the ready ones are delayed.
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT provider, state, COUNT(*), SUM(available_at>?) FROM chunks "
                                             "GROUP BY provider, state"));
    q->Bind(1, o_.now_ms());
    std::map<std::string, ProviderDepth> out;
    while (q->Step()) {
      auto& d = out[q->Text(0)];
      int64_t n = q->Int(2);
      switch (static_cast<int>(q->Int(1))) {
        case kReady:
          d.delayed = q->Int(3);
          d.ready = n - d.delayed;
          break;
        case kLeased: d.leased = n; break;
        case kDone: d.done = n; break;
        case kDead: d.dead = n; break;
      }
    }
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

  Result<ChunkInfo> Get(const std::string& chunk_id) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(kInfoSql + std::string(" WHERE id=?")));
    q->Bind(1, chunk_id);
    if (!q->Step()) {
      KG_RETURN_IF_ERROR(q->status());
      return Status::NotFound("chunk " + chunk_id + " not found");
    }
    return Info(*q);
  }

  Result<std::vector<ChunkInfo>> ListFirstChunks(const std::string& task_id, int64_t max_chunks) override {
    // LIMIT -1 is no limit in SQLite.
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(kInfoSql + std::string(" WHERE task_id=? ORDER BY idx LIMIT ?")));
    q->Bind(1, task_id).Bind(2, max_chunks < 0 ? int64_t{-1} : max_chunks);
    std::vector<ChunkInfo> out;
    while (q->Step()) out.push_back(Info(*q));
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

  void WaitForWork(const std::string& provider, int max_wait_ms, int wake_fd, bool include_suspect) override {
    int64_t now = o_.now_ms();
    int64_t wait = max_wait_ms;
    {
      // The next moment something may become leasable: a ready chunk's backoff ends or a
      // lease reaches its deadline.
      auto q = db_->Prepare(
          "SELECT MIN(t) FROM (SELECT MIN(available_at) AS t FROM chunks WHERE provider=?1 AND state=?2 AND "
          "(?3 OR crashes=0) UNION ALL SELECT MIN(deadline) + 1 FROM chunks WHERE provider=?1 AND state=?4)");
      if (!q.ok()) return;  // the caller's next lease call reports the error
      (*q)->Bind(1, provider).Bind(2, kReady).Bind(3, include_suspect ? 1 : 0).Bind(4, kLeased);
      if ((*q)->Step() && !(*q)->IsNull(0)) wait = std::min<int64_t>(wait, std::max<int64_t>(0, (*q)->Int(0) - now));
    }
    if (wait <= 0) return;
    MutexLock lock(watch_mu_);
    if (!inotify_.valid()) {
      inotify_.Reset(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
      std::string dir = std::filesystem::path(db_->path()).parent_path().string();
      if (dir.empty()) dir = ".";
      if (inotify_.valid()) inotify_add_watch(inotify_.get(), dir.c_str(), IN_MODIFY | IN_CREATE);
    }
    int64_t deadline = MonoMs() + wait;
    while (true) {
      int64_t left = deadline - MonoMs();
      if (left <= 0) return;
      pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      int n = ::poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(left));
      if (n <= 0) return;
      if (fds[1].revents & POLLIN) return;
      if (fds[0].revents & POLLIN && DrainSawWal()) return;
    }
  }

 private:
  static constexpr const char* kInfoSql =
      "SELECT id, task_id, state, attempts, crashes, COALESCE(owner,''), COALESCE(last_error,''), available_at, "
      "idx, leased_at, updated_at FROM chunks";

  static ChunkInfo Info(sqlite::Stmt& q) {
    ChunkInfo c;
    c.id = q.Text(0);
    c.task_id = q.Text(1);
    c.state = static_cast<ChunkState>(q.Int(2));
    c.attempts = static_cast<int>(q.Int(3));
    c.crashes = static_cast<int>(q.Int(4));
    c.owner = q.Text(5);
    c.last_error = q.Text(6);
    c.available_at_ms = q.Int(7);
    c.idx = static_cast<int>(q.Int(8));
    c.leased_at_ms = q.Int(9);
    c.updated_at_ms = q.Int(10);
    return c;
  }

  // Inside a transaction: expired leases (of `provider`, or of all providers) count as a
  // failed attempt; those out of attempts are dead-lettered, the rest are ready at once.
  Result<int> ReclaimIn(int64_t now, const std::string* provider) {
    KG_ASSIGN_OR_RETURN(auto dead, db_->Prepare(
        "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, "
        "last_error='lease expired after ' || attempts || ' attempts', updated_at=? "
        "WHERE state=? AND deadline<? AND attempts>=? AND (?6 IS NULL OR provider=?6)"));
    dead->Bind(1, kDead).Bind(2, now).Bind(3, kLeased).Bind(4, now).Bind(5, o_.max_attempts);
    if (provider) dead->Bind(6, *provider); else dead->BindNull(6);
    KG_RETURN_IF_ERROR(dead->Run());
    int n = static_cast<int>(db_->Changes());
    dead.reset();
    KG_ASSIGN_OR_RETURN(auto back, db_->Prepare(
        "UPDATE chunks SET state=?, owner=NULL, token=NULL, deadline=NULL, available_at=?, "
        "last_error='lease expired', updated_at=? WHERE state=? AND deadline<? AND (?6 IS NULL OR provider=?6)"));
    back->Bind(1, kReady).Bind(2, now).Bind(3, now).Bind(4, kLeased).Bind(5, now);
    if (provider) back->Bind(6, *provider); else back->BindNull(6);
    KG_RETURN_IF_ERROR(back->Run());
    n += static_cast<int>(db_->Changes());
    return n;
  }

  // A write that matched no row means the caller's lease is no longer current.
  Status Fenced(Status s, const std::string& chunk_id, const char* op) {
    KG_RETURN_IF_ERROR(s);
    if (db_->Changes() == 0) return Status::Conflict(std::string(op) + " " + chunk_id + ": lease is stale or gone");
    return Status::Ok();
  }

  bool DrainSawWal() KG_REQUIRES(watch_mu_) {
    alignas(inotify_event) char buf[4096];
    bool saw = false;
    while (true) {
      ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->len && wal_name_ == ev->name) saw = true;
        p += sizeof(inotify_event) + ev->len;
      }
    }
    return saw;
  }

  int64_t Backoff(int attempts) {
    MutexLock lock(rng_mu_);
    return BackoffMs(o_, attempts, std::uniform_real_distribution<double>(0, 1)(rng_));
  }

  std::unique_ptr<sqlite::Db> db_;
  QueueOptions o_;
  std::string wal_name_;
  Mutex watch_mu_;
  UniqueFd inotify_ KG_GUARDED_BY(watch_mu_);
  Mutex rng_mu_;
  std::mt19937_64 rng_ KG_GUARDED_BY(rng_mu_){std::random_device{}()};
};

}  // namespace

const char* ChunkStateName(ChunkState s) {
  switch (s) {
    case ChunkState::kReady: return "ready";
    case ChunkState::kLeased: return "leased";
    case ChunkState::kDone: return "done";
    case ChunkState::kDead: return "dead";
    case ChunkState::kCancelled: return "cancelled";
  }
  return "?";
}

int64_t BackoffMs(const QueueOptions& o, int attempt, double unit_random) {
  double base = static_cast<double>(o.backoff_base_ms) * std::pow(2.0, std::max(0, attempt - 1));
  base = std::min(base, static_cast<double>(o.backoff_max_ms));
  double factor = 1.0 + o.jitter * (2.0 * unit_random - 1.0);
  return static_cast<int64_t>(base * factor);
}

Result<std::unique_ptr<Queue>> OpenSqliteQueue(const std::string& path, QueueOptions options) {
  auto db = sqlite::Db::Open(path);
  if (!db.ok()) return db.status();
  auto q = std::make_unique<SqliteQueue>(std::move(db).value(), std::move(options));
  KG_RETURN_IF_ERROR(q->Init().With("init queue " + path));
  return std::unique_ptr<Queue>(std::move(q));
}

}  // namespace kg
