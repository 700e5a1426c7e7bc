#include "api/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <exception>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

#include "common/pool_usage.h"
#include "common/util.h"
#include "supervisor/node_registry.h"
#include "telemetry/worker_stats.h"

namespace kg::api {

namespace {

// When this process started (dynamic initialisation runs before main): kg_process_start_time_seconds
// shows a node's restarts, which a counter alone hides when it is back at its old value by the
// next scrape.
const double kProcessStartSeconds = static_cast<double>(NowMs()) / 1000.0;

using prometheus::Labels;

// Nodes whose record is older than this are not listed (as GET /api/v1/workers has it).
constexpr int64_t kListNodesMs = 3600 * 1000;

constexpr std::array<std::string_view, 4> kProcessStates = {"starting", "idle", "busy", "stopping"};
constexpr std::array<std::string_view, 5> kOutcomes = {telemetry::kChunkDone, telemetry::kChunkRetry,
                                                       telemetry::kChunkDeadLettered, telemetry::kChunkGivenBack,
                                                       telemetry::kChunkSkipped};

// One scrape's registry, with a family per name built on first use.
class Page {
 public:
  prometheus::Family<prometheus::Gauge>& Gauge(const std::string& name, const std::string& help) {
    return Find(gauges_, prometheus::BuildGauge(), name, help);
  }
  prometheus::Family<prometheus::Counter>& Counter(const std::string& name, const std::string& help) {
    return Find(counters_, prometheus::BuildCounter(), name, help);
  }
  prometheus::Family<prometheus::Histogram>& Histogram(const std::string& name, const std::string& help) {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(reg_);
  }
  void Set(const std::string& name, const std::string& help, const Labels& labels, double v) {
    Gauge(name, help).Add(labels).Set(v);
  }
  // A counter's value as the source counted it (a fresh registry per scrape starts at 0).
  void Count(const std::string& name, const std::string& help, const Labels& labels, double v) {
    Counter(name, help).Add(labels).Increment(v);
  }
  std::string Text() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, reg_.Collect());
    return out.str();
  }

 private:
  // The family `name`, registered with `help` the first time only (a family is declared once
  // and filled from several places).
  template <typename T>
  prometheus::Family<T>& Find(std::map<std::string, prometheus::Family<T>*>& families,
                              prometheus::detail::Builder<T> builder, const std::string& name,
                              const std::string& help) {
    auto it = families.find(name);
    if (it != families.end()) return *it->second;
    auto& f = builder.Name(name).Help(help).Register(reg_);
    families.emplace(name, &f);
    return f;
  }

  prometheus::Registry reg_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters_;
};

// The MySQL connections one worker process may hold: a pool of KG_DB_POOL_SIZE for the task
// store, and another for the graph unless the graph is on Neo4j (store/open_task_store.cc,
// graph/open_graph_store.cc).
int MysqlConnectionsOfWorker(const Config& c) {
  if (c.db_host.empty()) return 0;
  return c.db_pool_size * (c.neo4j_uri.empty() ? 2 : 1);
}

// Pool connections by backend: in use and open.
struct Connections {
  std::map<std::string, int64_t> in_use, open;
  void Add(const std::optional<PoolUsage>& u) {
    if (!u) return;
    in_use[u->backend] += u->in_use;
    open[u->backend] += u->open;
  }
};

// The worker processes' series; their pool connections are added into `conns`.
void Supervision(const Config& c, Supervisor* sup, Page& p, Connections& conns) {
  auto& procs = p.Gauge("kg_worker_processes", "worker processes of this node by provider and state");
  auto& rss = p.Gauge("kg_worker_rss_bytes", "resident memory of each worker process, in bytes");
  auto& cpu = p.Counter("kg_worker_cpu_seconds_total", "CPU time (user and system) of each live worker process");
  p.Gauge("kg_process_cap_usage_ratio", "live worker processes of this node / KG_MAX_TOTAL_PROCESSES");
  p.Gauge("kg_provider_process_cap_usage_ratio",
          "worker processes of a provider on this node / KG_MAX_PROCESSES_PER_PROVIDER");
  p.Counter("kg_worker_spawns_total", "worker processes spawned per provider since the node started");
  p.Counter("kg_worker_restarts_total", "worker processes replaced (after a crash or a recycle) since start");
  p.Counter("kg_worker_exits_total", "worker processes that ended, by reason: stopped, recycled or crashed");
  p.Gauge("kg_provider_quarantined", "1 while the provider is quarantined on this node (crash loop), else 0");
  p.Gauge("kg_provider_quarantine_remaining_seconds", "seconds until the provider's quarantine ends; 0 if none");
  p.Counter("kg_chunks_total", "chunks this node's workers took, by outcome");
  auto& durations = p.Histogram("kg_chunk_duration_seconds", "time a worker spent on a chunk, in seconds");
  p.Counter("kg_tasks_finished_total", "tasks whose last chunk a worker of this node settled, by final status");
  p.Counter("kg_llm_requests_total", "LLM requests by HTTP status, or transport (no answer)");
  p.Counter("kg_llm_tokens_total", "LLM tokens by kind (prompt, completion)");
  p.Counter("kg_llm_cost_total", "LLM cost, in the currency of the configured prices");
  p.Counter("kg_llm_cache_hits_total", "chunks answered from the LLM response cache");
  p.Counter("kg_llm_rate_limit_waits_total", "LLM requests that waited for the rate limiter");
  p.Counter("kg_llm_rate_limit_wait_seconds_total", "time LLM requests waited for the rate limiter, in seconds");
  if (!sup) return;  // a web node: the families, no worker series

  std::map<std::string, int> live;
  int live_total = 0;
  for (const auto& provider : c.enabled_providers) {
    for (auto state : kProcessStates) procs.Add({{"provider", provider}, {"state", std::string(state)}});
  }
  for (const auto& v : sup->Snapshot()) {
    if (v.pid == 0) continue;  // a provider backing off or quarantined: no process
    Labels l{{"provider", v.provider}, {"pid", std::to_string(v.pid)}};
    procs.Add({{"provider", v.provider}, {"state", v.state}}).Increment();
    rss.Add(l).Set(static_cast<double>(v.rss_bytes));
    cpu.Add(l).Increment(v.cpu_seconds);
    ++live[v.provider];
    ++live_total;
  }
  p.Set("kg_process_cap_usage_ratio", "", {},
        c.max_total_processes > 0 ? 1.0 * live_total / c.max_total_processes : 0);

  for (const auto& [provider, t] : sup->Telemetry()) {
    Labels pl{{"provider", provider}};
    p.Set("kg_provider_process_cap_usage_ratio", "", pl,
          c.max_processes_per_provider > 0 ? 1.0 * live[provider] / c.max_processes_per_provider : 0);
    p.Count("kg_worker_spawns_total", "", pl, static_cast<double>(t.spawns));
    p.Count("kg_worker_restarts_total", "", pl, static_cast<double>(t.restarts));
    for (const auto& [reason, n] : t.exits) {
      p.Count("kg_worker_exits_total", "", {{"provider", provider}, {"reason", reason}}, static_cast<double>(n));
    }
    p.Set("kg_provider_quarantined", "", pl, t.quarantined ? 1 : 0);
    p.Set("kg_provider_quarantine_remaining_seconds", "", pl, t.quarantine_remaining_seconds);

    const auto& s = t.stats;
    for (auto outcome : kOutcomes) {
      p.Count("kg_chunks_total", "", {{"provider", provider}, {"outcome", std::string(outcome)}}, 0);
    }
    for (const auto& [outcome, n] : s.chunks) {
      p.Count("kg_chunks_total", "", {{"provider", provider}, {"outcome", outcome}}, static_cast<double>(n));
    }
    std::vector<double> bounds(telemetry::kChunkSecondsBounds.begin(), telemetry::kChunkSecondsBounds.end());
    std::vector<double> buckets(s.chunk_seconds_buckets.begin(), s.chunk_seconds_buckets.end());
    durations.Add(pl, bounds).ObserveMultiple(buckets, s.chunk_seconds_sum);
    for (const char* status : {"done", "failed"}) {
      p.Count("kg_tasks_finished_total", "", {{"provider", provider}, {"status", status}}, 0);
    }
    for (const auto& [status, n] : s.tasks_finished) {
      p.Count("kg_tasks_finished_total", "", {{"provider", provider}, {"status", status}}, static_cast<double>(n));
    }
    for (const auto& [code, n] : s.llm_requests) {
      p.Count("kg_llm_requests_total", "", {{"provider", provider}, {"code", code}}, static_cast<double>(n));
    }
    p.Count("kg_llm_tokens_total", "", {{"provider", provider}, {"kind", "prompt"}},
            static_cast<double>(s.llm_prompt_tokens));
    p.Count("kg_llm_tokens_total", "", {{"provider", provider}, {"kind", "completion"}},
            static_cast<double>(s.llm_completion_tokens));
    p.Count("kg_llm_cost_total", "", pl, s.llm_cost);
    p.Count("kg_llm_cache_hits_total", "", pl, static_cast<double>(s.llm_cache_hits));
    p.Count("kg_llm_rate_limit_waits_total", "", pl, static_cast<double>(s.llm_rate_limit_waits));
    p.Count("kg_llm_rate_limit_wait_seconds_total", "", pl, s.llm_rate_limit_wait_seconds);
    for (const auto& [backend, n] : s.connections_in_use) conns.in_use[backend] += n;
    for (const auto& [backend, n] : s.connections_open) conns.open[backend] += n;
  }
}

// kg_store_connections: the worker processes' pools in `conns`, plus this process's own (the
// API's task store and graph); the backends in use exported from 0, before any worker reports.
void StoreConnections(const ApiDeps& d, Connections conns, Page& p) {
  const Config& c = *d.config;
  conns.Add(d.store->Connections());
  conns.Add(d.graph->Connections());
  for (const auto& [backend, used] : {std::pair{"neo4j", !c.neo4j_uri.empty()}, {"mysql", !c.db_host.empty()}}) {
    if (!used) continue;
    conns.in_use.try_emplace(backend, 0);
    conns.open.try_emplace(backend, 0);
  }
  auto& g = p.Gauge("kg_store_connections",
                    "graph and task store pool connections of this node: its worker processes and its API");
  for (const auto& [backend, n] : conns.in_use) {
    g.Add({{"backend", backend}, {"state", "in_use"}}).Set(static_cast<double>(n));
  }
  for (const auto& [backend, n] : conns.open) {
    g.Add({{"backend", backend}, {"state", "open"}}).Set(static_cast<double>(n));
  }
}

void Cluster(const ApiDeps& d, const Result<std::vector<NodeRecord>>& nodes, int64_t now, Page& p) {
  auto& queue = p.Gauge("kg_queue_chunks",
                        "chunks in the queue by provider and state: ready (leasable now), delayed (waiting out a "
                        "retry backoff), leased, dead, done (cluster-wide: reporter only)");
  if (auto depths = d.queue->Depths(); depths.ok()) {
    // This node's providers from 0, before their first chunk (an alert or the HPA sees 0, not nothing).
    for (const auto& provider : d.config->enabled_providers) depths->try_emplace(provider);
    for (const auto& [name, dep] : *depths) {
      const std::pair<const char*, int64_t> states[] = {{"ready", dep.ready},   {"delayed", dep.delayed},
                                                        {"leased", dep.leased}, {"dead", dep.dead},
                                                        {"done", dep.done}};
      for (const auto& [state, n] : states) {
        queue.Add({{"provider", name}, {"state", state}}).Set(static_cast<double>(n));
      }
    }
  }
  auto& age = p.Gauge("kg_node_heartbeat_age_seconds",
                      "seconds since each registered node's last heartbeat (reporter only)");
  auto& up = p.Gauge("kg_node_up",
                     "1 for a registered node whose heartbeat is fresh, 0 for a stale one (reporter only)");
  if (nodes.ok()) {
    for (const auto& n : *nodes) {
      bool self = n.name == d.config->node_name && n.pid == getpid();
      age.Add({{"node", n.name}}).Set(self ? 0 : HeartbeatAgeMs(n, now) / 1000.0);
      up.Add({{"node", n.name}}).Set(self || !NodeIsStale(n, now) ? 1 : 0);
    }
  }
  auto& graph_nodes = p.Gauge("kg_graph_nodes", "graph nodes by label (reporter only)");
  auto& relations = p.Gauge("kg_graph_relations", "RELATION edges between entities (reporter only)");
  if (auto s = d.graph->Stats(); s.ok()) {
    graph_nodes.Add({{"label", "Document"}}).Set(static_cast<double>(s->documents));
    graph_nodes.Add({{"label", "Chunk"}}).Set(static_cast<double>(s->chunks));
    graph_nodes.Add({{"label", "Entity"}}).Set(static_cast<double>(s->entities));
    relations.Add({}).Set(static_cast<double>(s->relations));
  }
}

void Http(const http::Stats& h, Page& p) {
  p.Set("kg_http_connections_open", "client connections open on the API's HTTP server", {},
        static_cast<double>(h.connections_open));
  p.Set("kg_http_event_streams_open", "server-sent event streams open", {},
        static_cast<double>(h.event_streams_open));
  p.Count("kg_http_connections_accepted_total", "connections accepted since start (refused ones included)", {},
          static_cast<double>(h.connections_accepted));
  const std::string refused =
      "connections answered 503 and closed over KG_HTTP_MAX_CONNECTIONS (total) or _PER_CLIENT "
      "(client)";
  p.Count("kg_http_connections_refused_total", refused, {{"cap", "total"}}, static_cast<double>(h.refused_total_cap));
  p.Count("kg_http_connections_refused_total", refused, {{"cap", "client"}},
          static_cast<double>(h.refused_client_cap));
  const std::string timeouts = "connections closed by a timeout, by what the client was late with";
  p.Count("kg_http_timeouts_total", timeouts, {{"phase", "header"}}, static_cast<double>(h.timeouts_header));
  p.Count("kg_http_timeouts_total", timeouts, {{"phase", "idle"}}, static_cast<double>(h.timeouts_idle));
  p.Count("kg_http_timeouts_total", timeouts, {{"phase", "body"}}, static_cast<double>(h.timeouts_body));
  p.Count("kg_http_requests_total", "requests whose headers were read", {}, static_cast<double>(h.requests));
  p.Count("kg_http_busy_rejections_total",
          "requests answered 503 because every handler thread was busy and the queue full", {},
          static_cast<double>(h.rejected_busy));
}

}  // namespace

bool IsReporter(const std::string& self, const Result<std::vector<NodeRecord>>& nodes, int64_t now_ms) {
  if (!nodes.ok()) return true;
  for (const auto& n : *nodes) {
    if (n.name < self && !NodeIsStale(n, now_ms)) return false;
  }
  return true;
}

Result<std::string> RenderMetrics(const ApiDeps& d, const http::Stats& h, const NodeMetrics& node) {
  const Config& c = *d.config;
  try {
    Page p;
    p.Set("kg_build_info", "1, labelled with this node's version, name and role", 
          {{"version", KG_VERSION}, {"node", c.node_name}, {"role", RoleName(c.role)}}, 1);
    p.Set("kg_process_start_time_seconds", "when this node's process started, in seconds since the Unix epoch",
          {}, kProcessStartSeconds);
    p.Set("kg_ready", "1 when /readyz answers 200 on this node, else 0", {}, node.ready.ok() ? 1 : 0);
    p.Count("kg_tasks_submitted_total", "tasks accepted by this node's API since start", {},
            static_cast<double>(node.tasks_submitted));
    const std::string caps =
        "worker process caps of this node: KG_MAX_TOTAL_PROCESSES (cap=total) and KG_MAX_PROCESSES_PER_PROVIDER "
        "(cap=per_provider)";
    p.Set("kg_process_cap", caps, {{"cap", "total"}}, c.max_total_processes);
    p.Set("kg_process_cap", caps, {{"cap", "per_provider"}}, c.max_processes_per_provider);
    const std::string conns_max =
        "store connections this node may hold at most: its worker processes and its API process, each "
        "x its pool sizes";
    p.Gauge("kg_store_connections_max", conns_max);
    if (!c.neo4j_uri.empty()) {
      // Per node: summed over the nodes, this is the cluster's budget (docs/operations.md).
      p.Set("kg_neo4j_connections_budget", "Bolt connections this node may hold open at most (processes x pool size)",
            {}, Neo4jConnectionsOfNode(c));
      p.Set("kg_neo4j_pool_size", "KG_NEO4J_POOL_SIZE of this node (Bolt connections per process)", {},
            c.neo4j_pool_size);
      p.Set("kg_neo4j_max_connections", "KG_NEO4J_MAX_CONNECTIONS: what the Neo4j server accepts in all", {},
            c.neo4j_max_connections);
      p.Set("kg_store_connections_max", conns_max, {{"backend", "neo4j"}}, Neo4jConnectionsOfNode(c));
    }
    if (!c.db_host.empty()) {
      // The worker processes and this process's API, which opens the same pools as a worker.
      int processes = 1 + (c.role == NodeRole::kWeb ? 0 : c.max_total_processes);
      p.Set("kg_store_connections_max", conns_max, {{"backend", "mysql"}}, processes * MysqlConnectionsOfWorker(c));
    }
    Connections conns;
    Supervision(c, d.supervisor, p, conns);
    StoreConnections(d, std::move(conns), p);

    int64_t now = NowMs();
    auto nodes = d.store->ListNodes(now - kListNodesMs);
    bool reporter = IsReporter(c.node_name, nodes, now);
    p.Set("kg_cluster_reporter", "1 if this node exports the cluster-wide series (queue, nodes, graph), else 0", {},
          reporter ? 1 : 0);
    if (reporter) Cluster(d, nodes, now, p);
    Http(h, p);
    return p.Text();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("metrics: ") + e.what());
  }
}

}  // namespace kg::api
