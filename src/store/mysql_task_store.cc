// The TaskStore in MySQL 8 / MariaDB (src/mysql): the same contract as the SQLite store
// (tests/store/task_store_contract_test.cc), for nodes that share task state.
//
// Portability: no MariaDB-only syntax (no RETURNING, no ?N placeholders); upserts use
// ON DUPLICATE KEY UPDATE col=VALUES(col), which both servers accept (MySQL 8.0.20+
// deprecates VALUES() in favour of a row alias that MariaDB 10.11 rejects). Keys compared
// exactly (ids, setting names, node names) are utf8mb4_bin.
//
// Every call runs in Pool::InTransaction, so a deadlock, a lock wait timeout or a lost
// connection is retried as a whole. Each write is one statement and idempotent (counts only
// grow, settings are last-writer-wins, node writes are compare-and-set), so a replay after
// a commit whose answer was lost changes nothing; Create's replay finds its own row and
// succeeds (a different task under the id is kConflict). AddUsage, which adds, is the
// exception: it is replayed only when it failed before COMMIT.

#include <algorithm>

#include "common/util.h"
#include "mysql/mysql.h"
#include "store/task_store.h"
#include "store/usage_sql.h"

namespace kg {
namespace {

using mysql::Connection;
using mysql::Params;
using mysql::Row;

const std::vector<mysql::Migration>& Migrations() {
  static const std::vector<mysql::Migration> m = {
      {1,
       {"CREATE TABLE IF NOT EXISTS tasks("
        "id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
        "title MEDIUMTEXT NOT NULL, provider VARCHAR(255) NOT NULL, doc_id VARCHAR(255) NOT NULL, "
        "source MEDIUMTEXT NOT NULL, status VARCHAR(16) NOT NULL, "
        "chunks_total INT NOT NULL, chunks_done INT NOT NULL, chunks_failed INT NOT NULL, "
        "error MEDIUMTEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, "
        "epoch BIGINT NOT NULL DEFAULT 0, "
        "KEY tasks_status(status, created_at), KEY tasks_created(created_at)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS settings("
        "name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
        "value MEDIUMTEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        // `writes` grows with every write, so a compare-and-set that matched always counts as
        // one changed row, even when it rewrites the same values.
        "CREATE TABLE IF NOT EXISTS nodes("
        "name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
        "role VARCHAR(32) NOT NULL, host VARCHAR(255) NOT NULL, pid BIGINT NOT NULL, "
        "heartbeat_at BIGINT NOT NULL, processes MEDIUMTEXT NOT NULL, heartbeat_ms BIGINT NOT NULL DEFAULT 5000, "
        "writes BIGINT NOT NULL DEFAULT 0, KEY nodes_heartbeat(heartbeat_at)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"},
       /*rerunnable=*/true},  // every statement IF NOT EXISTS
      // The LLM response cache and the token/cost ledger (TaskStore::AddUsage). `key` is a
      // reserved word, hence the quotes.
      {2,
       {"CREATE TABLE IF NOT EXISTS llm_cache("
        "`key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
        "content MEDIUMTEXT NOT NULL, created_at_ms BIGINT NOT NULL) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS llm_usage("
        "task_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
        "chunk_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
        "provider VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
        "prompt_tokens BIGINT NOT NULL DEFAULT 0, completion_tokens BIGINT NOT NULL DEFAULT 0, "
        "requests BIGINT NOT NULL DEFAULT 0, cached_chunks BIGINT NOT NULL DEFAULT 0, cost DOUBLE NOT NULL DEFAULT 0, "
        "PRIMARY KEY(task_id, chunk_id), KEY llm_usage_provider(provider)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"},
       /*rerunnable=*/true},
      // A task's token budget (0: no limit, what every older task had). One statement, not
      // re-runnable (MySQL 8 has no ADD COLUMN IF NOT EXISTS): left dirty, Migrate says so.
      {3, {"ALTER TABLE tasks ADD COLUMN token_budget BIGINT NOT NULL DEFAULT 0"}},
      // What the console shows of a node (NodeRecord::info_json). NULL, not a default: MySQL 8
      // gives a TEXT column no literal default; an older record's NULL reads "{}".
      {4, {"ALTER TABLE nodes ADD COLUMN info MEDIUMTEXT NULL"}},
  };
  return m;
}

// The status after an update (the SQLite store's kStatusSql): terminal states stay; only
// Reopen leaves them. Its placeholders, in order, come from AddStatusParams. It reads the
// counts only as GREATEST(col, new), which is the same before and after the counts are
// assigned, so it does not matter that MySQL and MariaDB evaluate SET assignments left to
// right with the new values of columns already assigned (SQLite uses the old ones).
constexpr const char* kStatusSql =
    "CASE WHEN status IN ('cancelled','done','failed') THEN status "
    "WHEN chunks_total>0 AND GREATEST(chunks_done, ?)>=chunks_total THEN 'done' "
    "WHEN chunks_total>0 AND ?>0 AND GREATEST(chunks_done, ?)+GREATEST(chunks_failed, ?)+?>=chunks_total "
    "THEN 'cancelled' "
    "WHEN chunks_total>0 AND GREATEST(chunks_done, ?)+GREATEST(chunks_failed, ?)>=chunks_total "
    "AND GREATEST(chunks_failed, ?)>0 THEN 'failed' "
    "WHEN status='running' OR ?<>0 THEN 'running' ELSE 'queued' END";

void AddStatusParams(Params& p, const TaskCounts& c) {
  int64_t started = (c.done + c.leased + c.dead) > 0 ? 1 : 0;
  for (const mysql::Value& v : {mysql::Value(c.done), mysql::Value(c.cancelled), mysql::Value(c.done),
                                mysql::Value(c.dead), mysql::Value(c.cancelled), mysql::Value(c.done),
                                mysql::Value(c.dead), mysql::Value(c.dead), mysql::Value(started)})
    p.push_back(v);
}

// When an update with error (one placeholder) keeps the stored error: it brings none, or the
// task is cancelled with a reason (MarkStopped's) that a chunk's later failure must not replace.
constexpr const char* kKeepError = "(?='' OR (status='cancelled' AND error<>''))";

using store_sql::kIdsPerStatement;

constexpr const char* kSelect =
    "SELECT id,title,provider,doc_id,source,status,chunks_total,chunks_done,chunks_failed,error,created_at,"
    "updated_at,epoch,token_budget FROM tasks";

TaskRecord TaskRow(const Row& r) {
  TaskRecord t;
  t.id = r.Str(0);
  t.title = r.Str(1);
  t.provider = r.Str(2);
  t.doc_id = r.Str(3);
  t.source = r.Str(4);
  t.status = r.Str(5);
  t.chunks_total = static_cast<int>(r.Int(6));
  t.chunks_done = static_cast<int>(r.Int(7));
  t.chunks_failed = static_cast<int>(r.Int(8));
  t.error = r.Str(9);
  t.created_at_ms = r.Int(10);
  t.updated_at_ms = r.Int(11);
  t.epoch = r.Int(12);
  t.token_budget = r.Int(13);
  return t;
}

// The sums of llm_usage columns (NULL, read as 0, over no row).
constexpr const char* kUsageSums =
    "SUM(prompt_tokens),SUM(completion_tokens),SUM(requests),SUM(cached_chunks),SUM(cost)";

// Five usage columns from `first`.
UsageTotals UsageRow(const Row& r, size_t first) {
  UsageTotals u;
  u.prompt_tokens = r.Int(first);
  u.completion_tokens = r.Int(first + 1);
  u.requests = r.Int(first + 2);
  u.cached_chunks = r.Int(first + 3);
  u.cost = r.Double(first + 4);
  return u;
}

constexpr const char* kNodeSelect =
    "SELECT name,role,host,pid,heartbeat_at,processes,heartbeat_ms,COALESCE(info,'{}') FROM nodes";

NodeRecord NodeRow(const Row& r) {
  NodeRecord n;
  n.name = r.Str(0);
  n.role = r.Str(1);
  n.host = r.Str(2);
  n.pid = r.Int(3);
  n.heartbeat_at_ms = r.Int(4);
  n.processes_json = r.Str(5);
  n.heartbeat_ms = r.Int(6);
  n.info_json = r.Str(7);
  return n;
}

class MysqlTaskStore final : public TaskStore {
 public:
  explicit MysqlTaskStore(std::unique_ptr<mysql::Pool> pool) : pool_(std::move(pool)) {}

  // Idempotent: when the id is taken by the same task (a replay after a COMMIT whose answer
  // was lost, or a caller's retry), it succeeds and changes nothing; a different task under
  // the id is kConflict. "The same task" is what the caller creates it with: title,
  // provider, document, source, chunk count and, when given, created_at; the status, counts
  // and error may have moved on since (a worker's progress), and are left as they are.
  Status Create(const TaskRecord& t) override {
    int64_t now = NowMs();
    return pool_
        ->InTransaction([&](Connection& c) -> Status {
          auto inserted =
              c.Exec("INSERT INTO tasks(id,title,provider,doc_id,source,status,chunks_total,chunks_done,"
                     "chunks_failed,error,created_at,updated_at,token_budget) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     {t.id, t.title, t.provider, t.doc_id, t.source, t.status, t.chunks_total, t.chunks_done,
                      t.chunks_failed, t.error, t.created_at_ms ? t.created_at_ms : now, now, t.token_budget});
          if (inserted.ok() || inserted.status().code() != Code::kConflict) return inserted.status();
          KG_ASSIGN_OR_RETURN(auto row, c.QueryOne(std::string(kSelect) + " WHERE id=?", {t.id}));
          if (!row) return inserted.status();  // taken by another key? (only the id is unique)
          const TaskRecord held = TaskRow(*row);
          if (held.title == t.title && held.provider == t.provider && held.doc_id == t.doc_id &&
              held.source == t.source && held.chunks_total == t.chunks_total &&
              (t.created_at_ms == 0 || held.created_at_ms == t.created_at_ms)) {
            return Status::Ok();
          }
          return Status::Conflict("task id " + t.id + " is taken by a different task (document " + held.doc_id +
                                  ", provider " + held.provider + ")");
        })
        .With("create task " + t.id);
  }

  Result<TaskRecord> Get(const std::string& id) override {
    std::optional<TaskRecord> out;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      KG_ASSIGN_OR_RETURN(auto row, c.QueryOne(std::string(kSelect) + " WHERE id=?", {id}));
      if (row) out = TaskRow(*row);
      return Status::Ok();
    }));
    if (!out) return Status::NotFound("task " + id + " not found");
    return std::move(*out);
  }

  Result<std::vector<TaskRecord>> List(const std::string& status, int limit) override {
    std::vector<TaskRecord> out;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      out.clear();
      // Two statements rather than (?='' OR status=?), so each can use its index.
      std::string sql = std::string(kSelect) + (status.empty() ? "" : " WHERE status=?") +
                        " ORDER BY created_at DESC, id LIMIT ?";
      Params p;
      if (!status.empty()) p.push_back(status);
      p.push_back(std::max(0, limit));
      return c.QueryEach(sql, p, [&](const Row& r) {
        out.push_back(TaskRow(r));
        return Status::Ok();
      });
    }));
    return out;
  }

  Result<TaskPage> ListFiltered(const TaskFilter& f) override {
    // Only the tests asked for are in the WHERE (as in List, so each can use an index); every
    // value is bound.
    std::string where;
    Params p;
    auto add = [&](const char* test) { where += where.empty() ? " WHERE " : " AND "; where += test; };
    if (!f.status.empty()) {
      add("status=?");
      p.push_back(f.status);
    }
    if (!f.provider.empty()) {
      add("provider=?");
      p.push_back(f.provider);
    }
    if (!f.text.empty()) {
      // The columns' collation is binary: LOWER on both sides makes the match case-insensitive.
      add("(LOWER(title) LIKE LOWER(?) ESCAPE '!' OR LOWER(id) LIKE LOWER(?) ESCAPE '!')");
      std::string pattern = LikeContains(f.text);
      p.push_back(pattern);
      p.push_back(pattern);
    }
    TaskPage page;
    // One transaction: the page and the total come from one snapshot.
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      page = TaskPage{};
      Params paged = p;
      paged.push_back(std::max(0, f.limit));
      paged.push_back(std::max(0, f.offset));
      KG_RETURN_IF_ERROR(c.QueryEach(std::string(kSelect) + where + " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                                     paged, [&](const Row& r) {
                                       page.tasks.push_back(TaskRow(r));
                                       return Status::Ok();
                                     }));
      KG_ASSIGN_OR_RETURN(auto n, c.QueryOne("SELECT COUNT(*) FROM tasks" + where, p));
      if (n) page.total = n->Int(0);
      return Status::Ok();
    }));
    return page;
  }

  Status UpdateProgress(const std::string& id, const TaskCounts& c, const std::string& error, int64_t epoch) override {
    // Counts only grow and the status is derived in the same statement from the grown counts
    // (kStatusSql); a row with nothing new is not written at all (the list heals rows often).
    // The error is assigned first, so it reads the status before this update (as SQLite does):
    // a cancelled task keeps the reason it was stopped for (MarkStopped).
    static const std::string sql =
        std::string("UPDATE tasks SET error=CASE WHEN ") + kKeepError + " THEN error ELSE ? END, status=" +
        kStatusSql +
        ", chunks_done=GREATEST(chunks_done, ?), chunks_failed=GREATEST(chunks_failed, ?), updated_at=? "
        "WHERE id=? AND (?<0 OR epoch=?) AND (chunks_done<? OR chunks_failed<? OR NOT (" + kKeepError +
        " OR error=?) OR status<>" + kStatusSql + ")";
    Params p = {error, error};
    AddStatusParams(p, c);
    for (const mysql::Value& v : {mysql::Value(c.done), mysql::Value(c.dead), mysql::Value(NowMs()), mysql::Value(id),
                                  mysql::Value(epoch), mysql::Value(epoch), mysql::Value(c.done), mysql::Value(c.dead),
                                  mysql::Value(error), mysql::Value(error)})
      p.push_back(v);
    AddStatusParams(p, c);
    return pool_->InTransaction([&](Connection& conn) { return conn.Exec(sql, p).status(); })
        .With("task " + id + " progress");
  }

  Status MarkCancelled(const std::string& id) override {
    return WriteExisting(id, "UPDATE tasks SET status='cancelled', updated_at=? WHERE id=?");
  }

  Status Reopen(const std::string& id) override {
    return WriteExisting(
        id, "UPDATE tasks SET status='queued', error='', chunks_failed=0, epoch=epoch+1, updated_at=? WHERE id=?");
  }

  Status PutSetting(const std::string& key, const std::string& value) override {
    return pool_->InTransaction([&](Connection& c) {
      return c
          .Exec("INSERT INTO settings(name,value) VALUES(?,?) ON DUPLICATE KEY UPDATE value=VALUES(value)",
                {key, value})
          .status();
    });
  }

  Result<std::optional<std::string>> GetSetting(const std::string& key) override {
    std::optional<std::string> out;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      KG_ASSIGN_OR_RETURN(auto row, c.QueryOne("SELECT value FROM settings WHERE name=?", {key}));
      out = row ? std::optional<std::string>(row->Str(0)) : std::nullopt;
      return Status::Ok();
    }));
    return out;
  }

  Status DeleteSetting(const std::string& key) override {
    return pool_->InTransaction(
        [&](Connection& c) { return c.Exec("DELETE FROM settings WHERE name=?", {key}).status(); });
  }

  Result<bool> PutNodeIf(const NodeRecord& n, const std::optional<NodeRecord>& expected) override {
    uint64_t changed = 0;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      Result<uint64_t> r = Status::Ok();
      if (!expected) {
        // One statement: the primary key lets exactly one of several concurrent claims insert;
        // the others match the existing row and change nothing (0 rows).
        r = c.Exec("INSERT INTO nodes(name,role,host,pid,heartbeat_at,processes,heartbeat_ms,info) "
                   "VALUES(?,?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE name=name",
                   {n.name, n.role, n.host, n.pid, n.heartbeat_at_ms, n.processes_json, n.heartbeat_ms, n.info_json});
      } else {
        r = c.Exec("UPDATE nodes SET role=?, host=?, pid=?, heartbeat_at=?, processes=?, heartbeat_ms=?, info=?, "
                   "writes=writes+1 WHERE name=? AND host=? AND pid=? AND (?=0 OR heartbeat_at=?)",
                   {n.role, n.host, n.pid, n.heartbeat_at_ms, n.processes_json, n.heartbeat_ms, n.info_json, n.name,
                    expected->host, expected->pid, expected->heartbeat_at_ms, expected->heartbeat_at_ms});
      }
      if (!r.ok()) return r.status();
      changed = *r;
      return Status::Ok();
    }));
    return changed == 1;
  }

  Result<std::optional<NodeRecord>> GetNode(const std::string& name) override {
    std::optional<NodeRecord> out;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      KG_ASSIGN_OR_RETURN(auto row, c.QueryOne(std::string(kNodeSelect) + " WHERE name=?", {name}));
      out = row ? std::optional<NodeRecord>(NodeRow(*row)) : std::nullopt;
      return Status::Ok();
    }));
    return out;
  }

  Status RemoveNode(const std::string& name, const std::string& host, int64_t pid) override {
    return pool_->InTransaction([&](Connection& c) {
      return c.Exec("DELETE FROM nodes WHERE name=? AND host=? AND pid=?", {name, host, pid}).status();
    });
  }

  Status PutCachedResponse(const std::string& key, const std::string& content) override {
    return pool_
        ->InTransaction([&](Connection& c) {
          return c
              .Exec("INSERT INTO llm_cache(`key`,content,created_at_ms) VALUES(?,?,?) "
                    "ON DUPLICATE KEY UPDATE content=VALUES(content), created_at_ms=VALUES(created_at_ms)",
                    {key, content, NowMs()})
              .status();
        })
        .With("cache response");
  }

  Result<std::optional<std::string>> GetCachedResponse(const std::string& key) override {
    std::optional<std::string> out;
    KG_RETURN_IF_ERROR(pool_
                           ->InTransaction([&](Connection& c) -> Status {
                             KG_ASSIGN_OR_RETURN(auto row,
                                                 c.QueryOne("SELECT content FROM llm_cache WHERE `key`=?", {key}));
                             out = row ? std::optional<std::string>(row->Str(0)) : std::nullopt;
                             return Status::Ok();
                           })
                           .With("cached response"));
    return out;
  }

  // One statement, an upsert that adds: concurrent adds to one row serialise on its lock and
  // each lands. Not idempotent, so it is replayed only when an attempt failed before COMMIT
  // (a deadlock, a lock wait timeout, a connection lost mid-statement: rolled back, nothing
  // added); a COMMIT whose answer was lost may have been applied and is kUnavailable, not
  // replayed (the ledger must not count one attempt's spending twice).
  // The row keeps the provider it was first written with (a task has one provider).
  Status AddUsage(const std::string& task_id, const std::string& chunk_id, const std::string& provider,
                  const UsageTotals& u) override {
    bool reached_commit = false;
    return pool_
        ->InTransaction([&](Connection& c) -> Status {
          if (reached_commit) {
            return Status::Unavailable("the answer to COMMIT was lost; not replayed, it may have been applied");
          }
          KG_RETURN_IF_ERROR(
              c.Exec("INSERT INTO llm_usage(task_id,chunk_id,provider,prompt_tokens,completion_tokens,requests,"
                     "cached_chunks,cost) VALUES(?,?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE "
                     "prompt_tokens=prompt_tokens+VALUES(prompt_tokens), "
                     "completion_tokens=completion_tokens+VALUES(completion_tokens), "
                     "requests=requests+VALUES(requests), cached_chunks=cached_chunks+VALUES(cached_chunks), "
                     "cost=cost+VALUES(cost)",
                     {task_id, chunk_id, provider, u.prompt_tokens, u.completion_tokens, u.requests,
                      u.cached_chunks, u.cost})
                  .status());
          reached_commit = true;  // the body succeeded: a failure from here on is COMMIT's
          return Status::Ok();
        })
        .With("usage of task " + task_id);
  }

  Result<UsageTotals> TaskUsage(const std::string& task_id) override {
    UsageTotals out;
    KG_RETURN_IF_ERROR(pool_
                           ->InTransaction([&](Connection& c) -> Status {
                             KG_ASSIGN_OR_RETURN(auto row, c.QueryOne(std::string("SELECT ") + kUsageSums +
                                                                          " FROM llm_usage WHERE task_id=?",
                                                                      {task_id}));
                             out = row ? UsageRow(*row, 0) : UsageTotals{};
                             return Status::Ok();
                           })
                           .With("usage of task " + task_id));
    return out;
  }

  Result<std::map<std::string, UsageTotals>> ChunkUsage(const std::string& task_id) override {
    std::map<std::string, UsageTotals> out;
    KG_RETURN_IF_ERROR(pool_
                           ->InTransaction([&](Connection& c) -> Status {
                             out.clear();
                             return c.QueryEach(
                                 "SELECT chunk_id,prompt_tokens,completion_tokens,requests,cached_chunks,cost "
                                 "FROM llm_usage WHERE task_id=?",
                                 {task_id}, [&](const Row& r) {
                                   out[r.Str(0)] = UsageRow(r, 1);
                                   return Status::Ok();
                                 });
                           })
                           .With("usage of the chunks of task " + task_id));
    return out;
  }

  Result<std::map<std::string, UsageTotals>> ChunkUsageOf(const std::string& task_id,
                                                          const std::vector<std::string>& chunk_ids) override {
    std::map<std::string, UsageTotals> out;
    // Batches, each its own statement: a short IN list per round trip, far below the protocol's
    // 65 535 placeholders.
    for (size_t from = 0; from < chunk_ids.size(); from += kIdsPerStatement) {
      const size_t n = std::min(kIdsPerStatement, chunk_ids.size() - from);
      const std::string sql = store_sql::ChunkUsageOfSql(n);
      Params p{task_id};
      for (size_t i = 0; i < n; ++i) p.push_back(chunk_ids[from + i]);
      KG_RETURN_IF_ERROR(pool_
                             ->InTransaction([&](Connection& c) -> Status {
                               return c.QueryEach(sql, p, [&](const Row& r) {
                                 out[r.Str(0)] = UsageRow(r, 1);
                                 return Status::Ok();
                               });
                             })
                             .With("usage of the chunks of task " + task_id));
    }
    return out;
  }

  Result<std::map<std::string, UsageTotals>> ProviderUsage() override {
    std::map<std::string, UsageTotals> out;
    KG_RETURN_IF_ERROR(pool_
                           ->InTransaction([&](Connection& c) -> Status {
                             out.clear();
                             return c.QueryEach(std::string("SELECT provider,") + kUsageSums +
                                                    " FROM llm_usage GROUP BY provider",
                                                {}, [&](const Row& r) {
                                                  out[r.Str(0)] = UsageRow(r, 1);
                                                  return Status::Ok();
                                                });
                           })
                           .With("usage per provider"));
    return out;
  }

  Status MarkStopped(const std::string& id, const std::string& reason) override {
    bool found = true;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      KG_ASSIGN_OR_RETURN(uint64_t n, c.Exec("UPDATE tasks SET status='cancelled', error=?, updated_at=? WHERE id=?",
                                             {reason, NowMs(), id}));
      if (n > 0) return Status::Ok();
      KG_ASSIGN_OR_RETURN(auto row, c.QueryOne("SELECT 1 FROM tasks WHERE id=?", {id}));
      found = row.has_value();
      return Status::Ok();
    }));
    if (!found) return Status::NotFound("task " + id + " not found");
    return Status::Ok();
  }

  Result<std::vector<NodeRecord>> ListNodes(int64_t since_ms) override {
    std::vector<NodeRecord> out;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      out.clear();
      return c.QueryEach(std::string(kNodeSelect) + " WHERE heartbeat_at>? ORDER BY name", {since_ms},
                         [&](const Row& r) {
                           out.push_back(NodeRow(r));
                           return Status::Ok();
                         });
    }));
    return out;
  }

  std::optional<PoolUsage> Connections() const override {
    mysql::PoolStats s = pool_->stats();
    return PoolUsage{"mysql", s.in_use, s.open};
  }

 private:
  // Runs `sql` (params: now, id) on an existing task; kNotFound when there is none. An
  // UPDATE that changes nothing counts 0 rows, so a 0 is checked against the table.
  Status WriteExisting(const std::string& id, const char* sql) {
    bool found = true;
    KG_RETURN_IF_ERROR(pool_->InTransaction([&](Connection& c) -> Status {
      KG_ASSIGN_OR_RETURN(uint64_t n, c.Exec(sql, {NowMs(), id}));
      if (n > 0) return Status::Ok();
      KG_ASSIGN_OR_RETURN(auto row, c.QueryOne("SELECT 1 FROM tasks WHERE id=?", {id}));
      found = row.has_value();
      return Status::Ok();
    }));
    if (!found) return Status::NotFound("task " + id + " not found");
    return Status::Ok();
  }

  std::unique_ptr<mysql::Pool> pool_;
};

}  // namespace

Result<std::unique_ptr<TaskStore>> OpenMysqlTaskStore(const MysqlEndpoint& endpoint) {
  auto pool = mysql::Pool::Open(endpoint);
  if (!pool.ok()) return pool.status().With("open task store");
  KG_RETURN_IF_ERROR(mysql::Migrate(**pool, "tasks", Migrations()).With("open task store"));
  return std::unique_ptr<TaskStore>(std::make_unique<MysqlTaskStore>(std::move(pool).value()));
}

}  // namespace kg
