#pragma once
// Task state, node registry and shared settings.
//
// Contract (tests/store/task_store_contract_test.cc): Create then Get round-trips; an
// unknown id is kNotFound; UpdateProgress derives the status from chunk counts and
// never moves a cancelled task except through Reopen; List filters by status, newest
// first; ListFiltered also by provider and text, pages with an offset and counts every match;
// settings are last-writer-wins; nodes report heartbeats.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/pool_usage.h"
#include "common/status.h"
#include "queue/queue.h"

namespace kg {

struct Config;
struct MysqlEndpoint;  // mysql/endpoint.h

struct TaskRecord {
  std::string id;
  std::string title;
  std::string provider;
  std::string doc_id;
  std::string source;
  std::string status = "queued";  // queued|running|done|failed|cancelled
  int chunks_total = 0;
  int chunks_done = 0;
  int chunks_failed = 0;
  std::string error;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  int64_t epoch = 0;  // bumped by Reopen: progress read before a retry cannot land after it
  int64_t token_budget = 0;  // LLM tokens (prompt + completion) the task may spend; 0 = no limit
};

// LLM spending, summed (the ledger, see TaskStore::AddUsage).
struct UsageTotals {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t requests = 0;
  int64_t cached_chunks = 0;  // chunk results served from the response cache (no request)
  double cost = 0;
  int64_t tokens() const { return prompt_tokens + completion_tokens; }
};

// What ListFiltered selects. An empty string matches every task.
struct TaskFilter {
  std::string status;    // exact
  std::string provider;  // exact
  // A substring of the title or the id, case-insensitive (ASCII letters only on the embedded
  // store); % and _ are plain characters (escaped, see LikeContains).
  std::string text;
  int limit = 50;   // >= 0
  int offset = 0;   // >= 0: rows skipped, newest first
};

// One page of ListFiltered.
struct TaskPage {
  std::vector<TaskRecord> tasks;  // newest first (created_at, then id)
  int64_t total = 0;              // every task the filter matches, whatever limit and offset
};

// A LIKE pattern (with ESCAPE '!') matching any text that contains `text` literally: !, % and _
// are escaped, so a user's "100%" is no wildcard.
std::string LikeContains(const std::string& text);

// queued|running|done|failed from chunk counts.
std::string DeriveStatus(const TaskCounts& c);

struct NodeRecord {
  std::string name;
  std::string role;
  std::string host;
  int64_t pid = 0;
  int64_t heartbeat_at_ms = 0;
  std::string processes_json = "[]";  // the supervisor's process table, as JSON
  int64_t heartbeat_ms = 5000;        // the node's heartbeat interval (KG_HEARTBEAT_SECONDS)
  // What the console shows of the node, as a JSON object written by its heartbeat (version,
  // start time, caps, quarantined providers: NodeInfoJson in supervisor/node_registry.h). Opaque
  // to the store; a record written before the field existed reads "{}".
  std::string info_json = "{}";
};

class TaskStore {
 public:
  virtual ~TaskStore() = default;
  virtual Status Create(const TaskRecord& t) = 0;
  virtual Result<TaskRecord> Get(const std::string& id) = 0;
  virtual Result<std::vector<TaskRecord>> List(const std::string& status, int limit) = 0;
  // The page of tasks `f` selects and how many match in all. The two may disagree by the tasks
  // created between the two reads of the embedded store (the page is never inconsistent in itself).
  virtual Result<TaskPage> ListFiltered(const TaskFilter& f) = 0;
  // Stores counts and the derived status (a cancelled task keeps its status).
  // With `epoch` >= 0 the update applies only while the row's epoch is still `epoch` (the
  // counts were read after the last Reopen); -1 applies it whatever the epoch.
  virtual Status UpdateProgress(const std::string& id, const TaskCounts& counts, const std::string& error,
                                int64_t epoch = -1) = 0;
  virtual Status MarkCancelled(const std::string& id) = 0;
  // A cancelled or failed task becomes queued again (retry).
  virtual Status Reopen(const std::string& id) = 0;

  virtual Status PutSetting(const std::string& key, const std::string& value) = 0;
  virtual Result<std::optional<std::string>> GetSetting(const std::string& key) = 0;
  // Removes the setting; removing one that does not exist is not an error.
  virtual Status DeleteSetting(const std::string& key) = 0;

  // Compare-and-set of the record named `n.name`, in one statement (two nodes claiming a
  // name at once cannot both win). With `expected` null: inserts `n` only when no record of
  // that name exists. Otherwise: replaces the record only while it still has expected's
  // host and pid and, when expected.heartbeat_at_ms != 0, that heartbeat. True when written.
  virtual Result<bool> PutNodeIf(const NodeRecord& n, const std::optional<NodeRecord>& expected) = 0;
  // The record named `name`; nullopt when there is none.
  virtual Result<std::optional<NodeRecord>> GetNode(const std::string& name) = 0;
  // Removes the record named `name` while it is still the one of `host` and `pid` (a node
  // stopping never removes the entry of a node that took its name over).
  virtual Status RemoveNode(const std::string& name, const std::string& host, int64_t pid) = 0;
  // Nodes whose heartbeat is newer than `since_ms`.
  virtual Result<std::vector<NodeRecord>> ListNodes(int64_t since_ms) = 0;

  // The LLM response cache: `key` is Provider::CacheKey (a hex hash), `content` the accepted
  // model output. Put overwrites; Get of an unknown key is nullopt.
  virtual Status PutCachedResponse(const std::string& key, const std::string& content) = 0;
  virtual Result<std::optional<std::string>> GetCachedResponse(const std::string& key) = 0;

  // The ledger: adds `u` to the row of (task, chunk), which belongs to `provider` (a chunk
  // redelivered adds what its new attempt spent). Totals per task and per provider are sums of
  // these rows, so they always agree.
  virtual Status AddUsage(const std::string& task_id, const std::string& chunk_id, const std::string& provider,
                          const UsageTotals& u) = 0;
  virtual Result<UsageTotals> TaskUsage(const std::string& task_id) = 0;
  // Per chunk id of the task: the whole ledger of the task, as large as the task (prefer
  // ChunkUsageOf where a page shows only some chunks).
  virtual Result<std::map<std::string, UsageTotals>> ChunkUsage(const std::string& task_id) = 0;
  // Per chunk id of the task, for `chunk_ids` only (ids without a ledger row are absent; duplicates
  // are harmless). The ids are bound, never spliced; any number may be asked (read in batches).
  virtual Result<std::map<std::string, UsageTotals>> ChunkUsageOf(const std::string& task_id,
                                                                  const std::vector<std::string>& chunk_ids) = 0;
  // Per provider, over every task (kept as long as the tasks' rows are).
  virtual Result<std::map<std::string, UsageTotals>> ProviderUsage() = 0;
  // Cancels the task (as MarkCancelled) and records `reason` as its error, e.g. "token budget
  // reached: 10234 of 10000 tokens spent". UpdateProgress keeps that reason (the error of a
  // cancelled task that has one is not replaced by a chunk's later failure); Reopen clears it.
  virtual Status MarkStopped(const std::string& id, const std::string& reason) = 0;
  // The connections of this store's pool in this process now (a snapshot, cheap); nullopt for
  // the embedded store, which has no pool.
  virtual std::optional<PoolUsage> Connections() const { return std::nullopt; }
};

// Writes the queue's current counts of task `id` into the store (monotonic, see
// UpdateProgress). The queue is the one source of truth for progress; every writer calls
// this after its own queue change, so the last writer always sees everything before it.
// `error` as in UpdateProgress.
Status RefreshProgress(TaskStore& store, Queue& queue, const std::string& id, const std::string& error = "");
// The same for a row the caller has just read (its epoch is the one that counts). `derived`, if
// given, receives DeriveStatus of the counts written ("" when none were: nothing enqueued yet).
Status RefreshProgress(TaskStore& store, Queue& queue, const TaskRecord& row, const std::string& error = "",
                       std::string* derived = nullptr);

Result<std::unique_ptr<TaskStore>> OpenSqliteTaskStore(const std::string& path);
// The store in a MySQL 8 / MariaDB database shared by the nodes of a cluster: connects (the
// database is created when missing), applies the schema migrations of component "tasks"
// under the database's migration lock, and keeps a pool of endpoint.pool_size connections.
// A bad endpoint is kInvalidArgument; an unreachable server kUnavailable; a schema left
// dirty by a failed migration kInternal, saying what to do.
Result<std::unique_ptr<TaskStore>> OpenMysqlTaskStore(const MysqlEndpoint& endpoint);
Result<std::unique_ptr<TaskStore>> OpenTaskStore(const Config& config);

}  // namespace kg
