#include "api/metrics.h"

#include <fmt/format.h>

#include <map>

namespace kg::api {

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    switch (ch) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out.push_back(ch);
    }
  }
  return out;
}

std::string RenderMetrics(const ApiDeps& d, const http::Stats& h) {
  const Config& c = *d.config;
  std::string o;
  auto gauge = [&](const std::string& name, const std::string& help) {
    o += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n";
  };
  gauge("kg_process_cap_total", "KG_MAX_TOTAL_PROCESSES of this node");
  o += "kg_process_cap_total " + std::to_string(c.max_total_processes) + "\n";
  gauge("kg_process_cap_per_provider", "KG_MAX_PROCESSES_PER_PROVIDER of this node");
  o += "kg_process_cap_per_provider " + std::to_string(c.max_processes_per_provider) + "\n";
  if (!c.neo4j_uri.empty()) {
    // Per node: summed over the nodes, this is the cluster's budget (docs/operations.md).
    gauge("kg_neo4j_connections_budget", "Bolt connections this node may hold open at most (processes x pool size)");
    o += "kg_neo4j_connections_budget " + std::to_string(Neo4jConnectionsOfNode(c)) + "\n";
    gauge("kg_neo4j_pool_size", "KG_NEO4J_POOL_SIZE of this node (Bolt connections per process)");
    o += "kg_neo4j_pool_size " + std::to_string(c.neo4j_pool_size) + "\n";
    gauge("kg_neo4j_max_connections", "KG_NEO4J_MAX_CONNECTIONS: what the Neo4j server accepts in all");
    o += "kg_neo4j_max_connections " + std::to_string(c.neo4j_max_connections) + "\n";
  }
  if (d.supervisor) {
    std::map<std::pair<std::string, std::string>, int> by;
    std::string rss;
    std::map<std::string, int64_t> restarts, spawns;
    for (const auto& p : d.supervisor->Snapshot()) {
      // Label values are escaped once, here: a provider name comes from TOML and may hold anything.
      std::string provider = EscapeLabelValue(p.provider);
      if (p.pid) by[{provider, EscapeLabelValue(p.state)}]++;
      restarts[provider] = p.provider_restarts;
      spawns[provider] = p.spawns;
      if (p.pid) rss += fmt::format("kg_worker_rss_bytes{{provider=\"{}\",pid=\"{}\"}} {}\n", provider, p.pid, p.rss_bytes);
    }
    gauge("kg_worker_processes", "worker processes of this node by provider and state");
    for (const auto& [k, n] : by) {
      o += fmt::format("kg_worker_processes{{provider=\"{}\",state=\"{}\"}} {}\n", k.first, k.second, n);
    }
    gauge("kg_worker_rss_bytes", "resident memory of each worker process");
    o += rss;
    o += "# HELP kg_worker_restarts_total worker replacements per provider since start\n"
         "# TYPE kg_worker_restarts_total counter\n";
    for (const auto& [p, n] : restarts) o += fmt::format("kg_worker_restarts_total{{provider=\"{}\"}} {}\n", p, n);
    o += "# HELP kg_worker_spawns_total worker processes spawned per provider since start\n"
         "# TYPE kg_worker_spawns_total counter\n";
    for (const auto& [p, n] : spawns) o += fmt::format("kg_worker_spawns_total{{provider=\"{}\"}} {}\n", p, n);
  }
  auto depths = d.queue->Depths();
  if (depths.ok()) {
    gauge("kg_queue_chunks", "chunks in the queue by provider and state");
    for (const auto& [name, dep] : *depths) {
      std::string p = EscapeLabelValue(name);
      o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"ready\"}} {}\n", p, dep.ready);
      o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"leased\"}} {}\n", p, dep.leased);
      o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"done\"}} {}\n", p, dep.done);
      o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"dead\"}} {}\n", p, dep.dead);
    }
  }
  if (!d.health_only) {
    auto s = d.graph->Stats();
    if (s.ok()) {
      gauge("kg_graph_nodes", "graph nodes by label");
      o += fmt::format("kg_graph_nodes{{label=\"Document\"}} {}\nkg_graph_nodes{{label=\"Chunk\"}} {}\n"
                       "kg_graph_nodes{{label=\"Entity\"}} {}\n",
                       s->documents, s->chunks, s->entities);
      gauge("kg_graph_relations", "RELATION edges between entities");
      o += fmt::format("kg_graph_relations {}\n", s->relations);
    }
  }
  gauge("kg_http_connections_open", "client connections open on the API's HTTP server");
  o += fmt::format("kg_http_connections_open {}\n", h.connections_open);
  gauge("kg_http_event_streams_open", "server-sent event streams open");
  o += fmt::format("kg_http_event_streams_open {}\n", h.event_streams_open);
  auto counter = [&](const std::string& name, const std::string& help) {
    o += "# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n";
  };
  counter("kg_http_connections_accepted_total", "connections accepted since start (refused ones included)");
  o += fmt::format("kg_http_connections_accepted_total {}\n", h.connections_accepted);
  counter("kg_http_connections_refused_total",
          "connections answered 503 and closed over KG_HTTP_MAX_CONNECTIONS (total) or _PER_CLIENT (client)");
  o += fmt::format("kg_http_connections_refused_total{{cap=\"total\"}} {}\n", h.refused_total_cap);
  o += fmt::format("kg_http_connections_refused_total{{cap=\"client\"}} {}\n", h.refused_client_cap);
  counter("kg_http_timeouts_total", "connections closed by a timeout, by what the client was late with");
  o += fmt::format("kg_http_timeouts_total{{phase=\"header\"}} {}\n", h.timeouts_header);
  o += fmt::format("kg_http_timeouts_total{{phase=\"idle\"}} {}\n", h.timeouts_idle);
  o += fmt::format("kg_http_timeouts_total{{phase=\"body\"}} {}\n", h.timeouts_body);
  counter("kg_http_requests_total", "requests whose headers were read");
  o += fmt::format("kg_http_requests_total {}\n", h.requests);
  counter("kg_http_busy_rejections_total", "requests answered 503 because every handler thread was busy and the queue full");
  o += fmt::format("kg_http_busy_rejections_total {}\n", h.rejected_busy);
  return o;
}

}  // namespace kg::api
