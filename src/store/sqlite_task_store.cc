#include <algorithm>
#include <filesystem>

#include "common/util.h"
#include "config/config.h"
#include "sqlite/db.h"
#include "store/sqlite_task_query.h"
#include "store/task_store.h"
#include "store/usage_sql.h"

namespace kg {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS tasks(
  id TEXT PRIMARY KEY, title TEXT NOT NULL, provider TEXT NOT NULL, doc_id TEXT NOT NULL,
  source TEXT NOT NULL, status TEXT NOT NULL, chunks_total INTEGER NOT NULL, chunks_done INTEGER NOT NULL,
  chunks_failed INTEGER NOT NULL, error TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  epoch INTEGER NOT NULL DEFAULT 0, token_budget INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status, created_at);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks(created_at);
CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(
  name TEXT PRIMARY KEY, role TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL, processes TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL DEFAULT 5000,
  info TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS llm_cache(key TEXT PRIMARY KEY, content TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS llm_usage(
  task_id TEXT NOT NULL, chunk_id TEXT NOT NULL, provider TEXT NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
  cached_chunks INTEGER NOT NULL DEFAULT 0, cost REAL NOT NULL DEFAULT 0,
  PRIMARY KEY(task_id, chunk_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS llm_usage_provider ON llm_usage(provider);
)sql";

// The status after an update with counts ?1 (done), ?2 (dead) and ?7 (cancelled), ?4 = 1
// when any chunk has started; SQLite evaluates SET expressions on the row as it was, so the
// grown counts are spelled MAX(...). Terminal states stay; only Reopen leaves them. A task
// whose chunks are all finished with some cancelled is cancelled (its cancel call may have
// cancelled the chunks and failed before marking the row).
constexpr const char* kStatusSql =
    "CASE WHEN status IN ('cancelled','done','failed') THEN status "
    "WHEN chunks_total>0 AND MAX(chunks_done, ?1)>=chunks_total THEN 'done' "
    "WHEN chunks_total>0 AND ?7>0 AND MAX(chunks_done, ?1)+MAX(chunks_failed, ?2)+?7>=chunks_total THEN 'cancelled' "
    "WHEN chunks_total>0 AND MAX(chunks_done, ?1)+MAX(chunks_failed, ?2)>=chunks_total AND MAX(chunks_failed, ?2)>0 "
    "THEN 'failed' "
    "WHEN status='running' OR ?4 THEN 'running' ELSE 'queued' END";

// When an update with error ?3 keeps the stored error: it brings none, or the task is cancelled
// with a reason (MarkStopped's) that a chunk's later failure must not replace.
constexpr const char* kKeepError = "(?3='' OR (status='cancelled' AND error<>''))";

using store_sql::kIdsPerStatement;

constexpr const char* kSelect =
    "SELECT id,title,provider,doc_id,source,status,chunks_total,chunks_done,chunks_failed,error,created_at,"
    "updated_at,epoch,token_budget FROM tasks";

TaskRecord Row(sqlite::Stmt& q) {
  TaskRecord t;
  t.id = q.Text(0);
  t.title = q.Text(1);
  t.provider = q.Text(2);
  t.doc_id = q.Text(3);
  t.source = q.Text(4);
  t.status = q.Text(5);
  t.chunks_total = static_cast<int>(q.Int(6));
  t.chunks_done = static_cast<int>(q.Int(7));
  t.chunks_failed = static_cast<int>(q.Int(8));
  t.error = q.Text(9);
  t.created_at_ms = q.Int(10);
  t.updated_at_ms = q.Int(11);
  t.epoch = q.Int(12);
  t.token_budget = q.Int(13);
  return t;
}

// The sums of llm_usage columns, selected as the first five columns from `first`.
constexpr const char* kUsageSums =
    "SUM(prompt_tokens),SUM(completion_tokens),SUM(requests),SUM(cached_chunks),SUM(cost)";

UsageTotals UsageRow(sqlite::Stmt& q, int first) {
  UsageTotals u;
  u.prompt_tokens = q.Int(first);
  u.completion_tokens = q.Int(first + 1);
  u.requests = q.Int(first + 2);
  u.cached_chunks = q.Int(first + 3);
  u.cost = q.Double(first + 4);
  return u;
}

constexpr const char* kNodeSelect = "SELECT name,role,host,pid,heartbeat_at,processes,heartbeat_ms,info FROM nodes";

NodeRecord NodeRow(sqlite::Stmt& q) {
  NodeRecord n;
  n.name = q.Text(0);
  n.role = q.Text(1);
  n.host = q.Text(2);
  n.pid = q.Int(3);
  n.heartbeat_at_ms = q.Int(4);
  n.processes_json = q.Text(5);
  n.heartbeat_ms = q.Int(6);
  n.info_json = q.Text(7);
  return n;
}

class SqliteTaskStore final : public TaskStore {
 public:
  explicit SqliteTaskStore(std::unique_ptr<sqlite::Db> db) : db_(std::move(db)) {}
  Status Init() {
    KG_RETURN_IF_ERROR(db_->Exec(kSchema));
    // Databases made before retry epochs existed gain the column.
    KG_RETURN_IF_ERROR(db_->AddColumnIfMissing("tasks", "epoch", "INTEGER NOT NULL DEFAULT 0"));
    // ... and nodes their heartbeat interval (the staleness of an entry is judged by its own).
    KG_RETURN_IF_ERROR(db_->AddColumnIfMissing("nodes", "heartbeat_ms", "INTEGER NOT NULL DEFAULT 5000"));
    // ... and tasks their token budget (0: no limit, what every older task had).
    KG_RETURN_IF_ERROR(db_->AddColumnIfMissing("tasks", "token_budget", "INTEGER NOT NULL DEFAULT 0"));
    // ... and nodes what the console shows of them (an older record: nothing known).
    return db_->AddColumnIfMissing("nodes", "info", "TEXT NOT NULL DEFAULT '{}'");
  }

  Status Create(const TaskRecord& t) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "INSERT INTO tasks(id,title,provider,doc_id,source,status,chunks_total,chunks_done,chunks_failed,error,"
        "created_at,updated_at,token_budget) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    int64_t now = NowMs();
    st->Bind(1, t.id).Bind(2, t.title).Bind(3, t.provider).Bind(4, t.doc_id).Bind(5, t.source).Bind(6, t.status);
    st->Bind(7, t.chunks_total).Bind(8, t.chunks_done).Bind(9, t.chunks_failed).Bind(10, t.error);
    st->Bind(11, t.created_at_ms ? t.created_at_ms : now).Bind(12, now).Bind(13, t.token_budget);
    return st->Run().With("create task " + t.id);
  }

  Result<TaskRecord> Get(const std::string& id) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(std::string(kSelect) + " WHERE id=?"));
    q->Bind(1, id);
    if (!q->Step()) {
      KG_RETURN_IF_ERROR(q->status());
      return Status::NotFound("task " + id + " not found");
    }
    return Row(*q);
  }

  Result<std::vector<TaskRecord>> List(const std::string& status, int limit) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(std::string(kSelect) +
                          " WHERE (?='' OR status=?) ORDER BY created_at DESC, id LIMIT ?"));
    q->Bind(1, status).Bind(2, status).Bind(3, limit);
    std::vector<TaskRecord> out;
    while (q->Step()) out.push_back(Row(*q));
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

  Result<TaskPage> ListFiltered(const TaskFilter& f) override {
    const SqliteTaskListQuery query = BuildSqliteTaskListQuery(f);
    auto bind = [&](sqlite::Stmt& q) {
      for (size_t i = 0; i < query.args.size(); ++i) q.Bind(static_cast<int>(i + 1), query.args[i]);
    };
    const int next = static_cast<int>(query.args.size()) + 1;
    TaskPage page;
    {
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(query.page_sql));
      bind(*q);
      q->Bind(next, std::max(0, f.limit)).Bind(next + 1, std::max(0, f.offset));
      while (q->Step()) page.tasks.push_back(Row(*q));
      KG_RETURN_IF_ERROR(q->status());
    }
    KG_ASSIGN_OR_RETURN(auto n, db_->Prepare(query.count_sql));
    bind(*n);
    if (n->Step()) page.total = n->Int(0);
    KG_RETURN_IF_ERROR(n->status());
    return page;
  }

  Status UpdateProgress(const std::string& id, const TaskCounts& c, const std::string& error, int64_t epoch) override {
    // Counts only grow (a reader that saw fewer finished chunks may write after one that saw
    // more), and the status is derived in the same statement from the stored, grown counts:
    // queued -> running -> done|failed, never back (kStatusSql).
    // A row with nothing new is not written at all (the list heals rows often).
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE tasks SET chunks_done=MAX(chunks_done, ?1), chunks_failed=MAX(chunks_failed, ?2), "
        "error=CASE WHEN " + std::string(kKeepError) + " THEN error ELSE ?3 END, status=" + std::string(kStatusSql) +
        ", updated_at=?5 WHERE id=?6 AND (?8<0 OR epoch=?8) AND (chunks_done<?1 OR chunks_failed<?2 OR NOT (" +
        kKeepError + " OR error=?3) OR status<>" +
        std::string(kStatusSql) + ")"));
    st->Bind(1, c.done).Bind(2, c.dead).Bind(3, error).Bind(4, (c.done + c.leased + c.dead) > 0 ? 1 : 0);
    st->Bind(5, NowMs()).Bind(6, id).Bind(7, c.cancelled).Bind(8, epoch);
    return st->Run();
  }

  Status MarkCancelled(const std::string& id) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare("UPDATE tasks SET status='cancelled', updated_at=? WHERE id=?"));
    st->Bind(1, NowMs()).Bind(2, id);
    KG_RETURN_IF_ERROR(st->Run());
    if (db_->Changes() == 0) return Status::NotFound("task " + id + " not found");
    return Status::Ok();
  }

  Status Reopen(const std::string& id) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "UPDATE tasks SET status='queued', error='', chunks_failed=0, epoch=epoch+1, updated_at=? WHERE id=?"));
    st->Bind(1, NowMs()).Bind(2, id);
    KG_RETURN_IF_ERROR(st->Run());
    if (db_->Changes() == 0) return Status::NotFound("task " + id + " not found");
    return Status::Ok();
  }

  Status PutSetting(const std::string& key, const std::string& value) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare("INSERT INTO settings(key,value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"));
    st->Bind(1, key).Bind(2, value);
    return st->Run();
  }

  Status DeleteSetting(const std::string& key) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare("DELETE FROM settings WHERE key=?"));
    st->Bind(1, key);
    return st->Run();
  }

  Result<std::optional<std::string>> GetSetting(const std::string& key) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT value FROM settings WHERE key=?"));
    q->Bind(1, key);
    if (q->Step()) return std::optional<std::string>(q->Text(0));
    KG_RETURN_IF_ERROR(q->status());
    return std::optional<std::string>();
  }

  Result<bool> PutNodeIf(const NodeRecord& n, const std::optional<NodeRecord>& expected) override {
    std::unique_ptr<sqlite::Stmt> st;
    if (!expected) {
      KG_ASSIGN_OR_RETURN(st, db_->Prepare(
          "INSERT INTO nodes(name,role,host,pid,heartbeat_at,processes,heartbeat_ms,info) "
          "VALUES(?1,?2,?3,?4,?5,?6,?7,?11) "
          "ON CONFLICT(name) DO NOTHING"));
    } else {
      KG_ASSIGN_OR_RETURN(st, db_->Prepare(
          "UPDATE nodes SET role=?2, host=?3, pid=?4, heartbeat_at=?5, processes=?6, heartbeat_ms=?7, info=?11 "
          "WHERE name=?1 AND host=?8 AND pid=?9 AND (?10=0 OR heartbeat_at=?10)"));
      st->Bind(8, expected->host).Bind(9, expected->pid).Bind(10, expected->heartbeat_at_ms);
    }
    st->Bind(1, n.name).Bind(2, n.role).Bind(3, n.host).Bind(4, n.pid).Bind(5, n.heartbeat_at_ms);
    st->Bind(6, n.processes_json).Bind(7, n.heartbeat_ms).Bind(11, n.info_json);
    KG_RETURN_IF_ERROR(st->Run());
    return db_->Changes() == 1;
  }

  Result<std::optional<NodeRecord>> GetNode(const std::string& name) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(std::string(kNodeSelect) + " WHERE name=?"));
    q->Bind(1, name);
    if (q->Step()) return std::optional<NodeRecord>(NodeRow(*q));
    KG_RETURN_IF_ERROR(q->status());
    return std::optional<NodeRecord>();
  }

  Status RemoveNode(const std::string& name, const std::string& host, int64_t pid) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare("DELETE FROM nodes WHERE name=? AND host=? AND pid=?"));
    st->Bind(1, name).Bind(2, host).Bind(3, pid);
    return st->Run();
  }

  Status PutCachedResponse(const std::string& key, const std::string& content) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "INSERT INTO llm_cache(key,content,created_at_ms) VALUES(?,?,?) "
        "ON CONFLICT(key) DO UPDATE SET content=excluded.content, created_at_ms=excluded.created_at_ms"));
    st->Bind(1, key).Bind(2, content).Bind(3, NowMs());
    return st->Run().With("cache response");
  }

  Result<std::optional<std::string>> GetCachedResponse(const std::string& key) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT content FROM llm_cache WHERE key=?"));
    q->Bind(1, key);
    if (q->Step()) return std::optional<std::string>(q->Text(0));
    KG_RETURN_IF_ERROR(q->status().With("cached response"));
    return std::optional<std::string>();
  }

  // One statement: concurrent adds to one row (several processes share the file) each land.
  // The row keeps the provider it was first written with (a task has one provider).
  Status AddUsage(const std::string& task_id, const std::string& chunk_id, const std::string& provider,
                  const UsageTotals& u) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare(
        "INSERT INTO llm_usage(task_id,chunk_id,provider,prompt_tokens,completion_tokens,requests,cached_chunks,cost) "
        "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(task_id,chunk_id) DO UPDATE SET "
        "prompt_tokens=prompt_tokens+excluded.prompt_tokens, "
        "completion_tokens=completion_tokens+excluded.completion_tokens, requests=requests+excluded.requests, "
        "cached_chunks=cached_chunks+excluded.cached_chunks, cost=cost+excluded.cost"));
    st->Bind(1, task_id).Bind(2, chunk_id).Bind(3, provider).Bind(4, u.prompt_tokens).Bind(5, u.completion_tokens);
    st->Bind(6, u.requests).Bind(7, u.cached_chunks).Bind(8, u.cost);
    return st->Run().With("usage of task " + task_id);
  }

  Result<UsageTotals> TaskUsage(const std::string& task_id) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(std::string("SELECT ") + kUsageSums + " FROM llm_usage WHERE task_id=?"));
    q->Bind(1, task_id);
    UsageTotals u;
    if (q->Step()) u = UsageRow(*q, 0);  // one row; its sums are NULL (read as 0) when there is none
    KG_RETURN_IF_ERROR(q->status().With("usage of task " + task_id));
    return u;
  }

  Result<std::map<std::string, UsageTotals>> ChunkUsage(const std::string& task_id) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT chunk_id,prompt_tokens,completion_tokens,requests,cached_chunks,cost FROM llm_usage WHERE task_id=?"));
    q->Bind(1, task_id);
    std::map<std::string, UsageTotals> out;
    while (q->Step()) out[q->Text(0)] = UsageRow(*q, 1);
    KG_RETURN_IF_ERROR(q->status().With("usage of the chunks of task " + task_id));
    return out;
  }

  Result<std::map<std::string, UsageTotals>> ChunkUsageOf(const std::string& task_id,
                                                          const std::vector<std::string>& chunk_ids) override {
    std::map<std::string, UsageTotals> out;
    for (size_t from = 0; from < chunk_ids.size(); from += kIdsPerStatement) {
      const size_t n = std::min(kIdsPerStatement, chunk_ids.size() - from);
      const std::string sql = store_sql::ChunkUsageOfSql(n);
      KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(sql));
      q->Bind(1, task_id);
      for (size_t i = 0; i < n; ++i) q->Bind(static_cast<int>(i + 2), chunk_ids[from + i]);
      while (q->Step()) out[q->Text(0)] = UsageRow(*q, 1);
      KG_RETURN_IF_ERROR(q->status().With("usage of the chunks of task " + task_id));
    }
    return out;
  }

  Result<std::map<std::string, UsageTotals>> ProviderUsage() override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(std::string("SELECT provider,") + kUsageSums +
                                             " FROM llm_usage GROUP BY provider"));
    std::map<std::string, UsageTotals> out;
    while (q->Step()) out[q->Text(0)] = UsageRow(*q, 1);
    KG_RETURN_IF_ERROR(q->status().With("usage per provider"));
    return out;
  }

  Status MarkStopped(const std::string& id, const std::string& reason) override {
    KG_ASSIGN_OR_RETURN(auto st, db_->Prepare("UPDATE tasks SET status='cancelled', error=?, updated_at=? WHERE id=?"));
    st->Bind(1, reason).Bind(2, NowMs()).Bind(3, id);
    KG_RETURN_IF_ERROR(st->Run());
    if (db_->Changes() == 0) return Status::NotFound("task " + id + " not found");
    return Status::Ok();
  }

  Result<std::vector<NodeRecord>> ListNodes(int64_t since_ms) override {
    KG_ASSIGN_OR_RETURN(auto q, db_->Prepare(std::string(kNodeSelect) + " WHERE heartbeat_at>? ORDER BY name"));
    q->Bind(1, since_ms);
    std::vector<NodeRecord> out;
    while (q->Step()) out.push_back(NodeRow(*q));
    KG_RETURN_IF_ERROR(q->status());
    return out;
  }

 private:
  std::unique_ptr<sqlite::Db> db_;
};

}  // namespace

std::string LikeContains(const std::string& text) {
  std::string out = "%";
  for (char ch : text) {
    if (ch == '!' || ch == '%' || ch == '_') out += '!';
    out += ch;
  }
  return out + "%";
}

std::string DeriveStatus(const TaskCounts& c) {
  if (c.total > 0 && c.done == c.total) return "done";
  if (c.total > 0 && c.ready == 0 && c.leased == 0 && c.dead > 0) return "failed";
  if (c.done > 0 || c.leased > 0 || c.dead > 0) return "running";
  return "queued";
}

Status RefreshProgress(TaskStore& store, Queue& queue, const std::string& id, const std::string& error) {
  // The epoch first: if the task is reopened after this read, these counts are from before
  // the retry and must not land.
  auto row = store.Get(id);
  if (!row.ok()) return row.status().code() == Code::kNotFound ? Status::Ok() : row.status();
  return RefreshProgress(store, queue, *row, error);
}

Status RefreshProgress(TaskStore& store, Queue& queue, const TaskRecord& row, const std::string& error,
                       std::string* derived) {
  if (derived) derived->clear();
  auto counts = queue.Counts(row.id);
  if (!counts.ok()) return counts.status().With("task " + row.id + " progress");
  if (counts->total == 0) return Status::Ok();  // nothing enqueued (yet)
  KG_RETURN_IF_ERROR(store.UpdateProgress(row.id, *counts, error, row.epoch));
  if (derived) *derived = DeriveStatus(*counts);
  return Status::Ok();
}

SqliteTaskListQuery BuildSqliteTaskListQuery(const TaskFilter& f) {
  SqliteTaskListQuery q;
  std::string where;
  auto add = [&](const char* test) {
    where += where.empty() ? " WHERE " : " AND ";
    where += test;
  };
  if (!f.status.empty()) {
    q.args.push_back(f.status);
    add("status=?");
  }
  if (!f.provider.empty()) {
    q.args.push_back(f.provider);
    add("provider=?");
  }
  if (!f.text.empty()) {
    const std::string pattern = LikeContains(f.text);
    q.args.push_back(pattern);
    q.args.push_back(pattern);
    add("(LOWER(title) LIKE LOWER(?) ESCAPE '!' OR LOWER(id) LIKE LOWER(?) ESCAPE '!')");
  }
  q.page_sql = std::string(kSelect) + where + " ORDER BY created_at DESC, id LIMIT ? OFFSET ?";
  q.count_sql = "SELECT COUNT(*) FROM tasks" + where;
  return q;
}

Result<std::unique_ptr<TaskStore>> OpenSqliteTaskStore(const std::string& path) {
  auto db = sqlite::Db::Open(path);
  if (!db.ok()) return db.status();
  auto s = std::make_unique<SqliteTaskStore>(std::move(db).value());
  KG_RETURN_IF_ERROR(s->Init().With("init task store " + path));
  return std::unique_ptr<TaskStore>(std::move(s));
}

}  // namespace kg
