#pragma once
// The effective configuration of a node: environment variables over an optional TOML
// file (KG_CONFIG) over defaults. Loading validates every value; a bad one is a
// Status naming the variable, the value and what is accepted (start-up exit code 2).

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/util.h"
#include "bolt/endpoint.h"
#include "mysql/endpoint.h"
#include "redis/endpoint.h"

namespace kg {

enum class NodeRole { kAll, kWeb, kWorker };
const char* RoleName(NodeRole r);

struct ProviderConfig {
  std::string name;
  std::string kind = "builtin";  // "builtin" | "openai" (any OpenAI-compatible chat-completions API)
  int delay_ms = 0;              // builtin: artificial latency per chunk (offline load tests)
  // Fault injection for exercising supervision (documented in docs/process-protection.md):
  // "" | "exit_on_start" (the worker exits 3 right after start) |
  // "crash_on_marker" (abort() while extracting a chunk that contains crash_marker).
  std::string fault;
  std::string crash_marker = "KG-CRASH-MARKER";

  // kind "openai" (docs/providers.md). A preset (deepseek, openai, qwen, moonshot, zhipu, ollama,
  // vllm) fills every field below; a [providers.NAME] table or <NAME>_BASE_URL / <NAME>_MODEL
  // in the environment override them.
  std::string preset;         // the preset it came from, "" if declared from scratch
  std::string base_url;       // "https://api.deepseek.com" (".../chat/completions" is appended)
  std::string model;
  std::string api_key_env;    // the variable holding the key ("DEEPSEEK_API_KEY"); "" = no key (local)
  std::string api_key;        // its value, read at load; never logged, shown or stored
  int max_concurrency = 0;    // requests in flight, cluster-wide (0 = unlimited)
  int rpm = 0;                // requests per minute, cluster-wide (0 = unlimited)
  int64_t tpm = 0;            // tokens per minute, cluster-wide (0 = unlimited)
  int timeout_s = 120;        // per request, total; connect timeout is min(10, timeout_s)
  int max_output_tokens = 4096;
  bool json_mode = true;      // response_format {"type":"json_object"}
  double temperature = 0;
  double price_in_per_mtok = 0;   // cost per million prompt tokens (the unit of your bill)
  double price_out_per_mtok = 0;  // cost per million completion tokens
  std::string prompt_file;        // "" = the compiled-in prompt (src/llm/prompt.h)
  // Extra JSON members merged into every request body (e.g. {"thinking":{"type":"disabled"}}
  // for DeepSeek, {"enable_thinking":false} for Qwen), as a JSON object text; "" = none.
  std::string extra_body;
  int max_retries = 4;  // per request, for 429/5xx/transport errors, before the chunk is nacked
};

struct Config {
  NodeRole role = NodeRole::kAll;
  // Unique per host and role unless KG_WORKER_NODE_NAME says otherwise: "<hostname>-<role>"
  // (DefaultNodeName), so a web node and a worker node on one host never share an entry.
  std::string node_name;
  int workers_per_provider = 1;
  int max_total_processes = 50;
  int max_processes_per_provider = 10;

  // Distributed backends (docs/deployment.md). REDIS_HOST: the queue on Redis; DB_HOST: the task
  // store on MySQL/MariaDB, and the graph there too unless NEO4J_URI is set. Nodes of one cluster
  // set both, or neither (all on one host, sharing KG_DATA_DIR).
  std::string redis_host;
  int redis_port = 6379;
  std::string redis_password;
  int redis_db = 0;
  std::string redis_namespace = "kg";  // key prefix: clusters sharing one Redis use different ones
  std::string db_host;
  int db_port = 3306;
  std::string db_user = "kgflow";
  std::string db_password;
  std::string db_name = "kgflow";
  int db_pool_size = 4;             // MySQL connections per process (web handlers share them; workers use 1-2)
  int queue_retention_hours = 24;  // Redis: how long done chunks and finished tasks stay (0 = forever)
  // NEO4J_URI: the graph on Neo4j 5 over Bolt (bolt://HOST:PORT, or neo4j://HOST:PORT with routing).
  std::string neo4j_uri;
  std::string neo4j_user = "neo4j";  // empty: no authentication
  std::string neo4j_password;
  std::string neo4j_database;       // empty: the server's default database
  int neo4j_pool_size = 2;          // hard cap on Bolt connections per process
  int neo4j_max_connections = 400;  // what the Neo4j server accepts in all (0: not checked)

  std::string data_dir = "./data";
  std::string http_addr = "127.0.0.1:8080";
  std::string health_addr = "127.0.0.1:8081";
  std::string api_token;
  std::string config_file;

  int lease_seconds = 10;  // renewed every third; a dead node's chunks run elsewhere within this + a beat
  int max_attempts = 5;
  int stop_timeout_seconds = 30;
  int concurrency_per_process = 4;  // see ConcurrencyOf
  bool concurrency_per_process_set = false;  // KG_CONCURRENCY_PER_PROCESS was given
  int max_tasks_per_process = 0;  // 0 = never recycle by count
  int max_rss_mb = 1024;          // 0 = never recycle by memory
  int max_body_mb = 10;
  int chunk_size = 1200;          // characters (code points) per chunk
  int chunk_overlap = 100;
  int poison_crashes = 3;
  int quarantine_seconds = 300;
  int heartbeat_seconds = 5;  // node registry beat; an entry is stale after 2 missed beats
  // The HTTP server's limits (docs/operations.md, "HTTP limits").
  int http_header_timeout_seconds = 5;   // a client must finish its headers within this
  int http_idle_timeout_seconds = 60;    // a kept-alive connection with no request is closed
  int http_body_timeout_seconds = 30;    // a body gets this plus its size at the minimum rate
  int http_min_body_kbps = 16;           // KiB per second a body must keep up on average
  int http_max_connections = 10000;
  int http_max_connections_per_client = 256;  // per client address
  int http_threads = 8;                  // handler threads (database calls)
  int http_event_heartbeat_seconds = 15;  // comment lines on an idle event stream
  std::string log_level = "info";
  std::string log_format = "text";  // KG_LOG_FORMAT: text | json (one JSON object per line)

  std::map<std::string, ProviderConfig> providers;  // every declared provider
  std::vector<std::string> enabled_providers;        // in declaration order

  // Convenience.
  bool HasProvider(const std::string& name) const;
  std::string KnownProviders() const;  // "a, b, c"
};

// "<hostname>-<role>" with the hostname reduced to what KG_WORKER_NODE_NAME accepts
// (A-Z a-z 0-9 . _ -, other bytes become '-') and cut so the whole stays within 64 characters.
std::string DefaultNodeName(const std::string& hostname, NodeRole role);

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Reads the process environment.
EnvLookup ProcessEnv();

// Loads and validates. `env` supplies variables (tests inject a map).
Result<Config> LoadConfig(const EnvLookup& env);

// Splits "host:port"; a bad address is InvalidArgument.
Status ParseHostPort(const std::string& addr, std::string* host, int* port);

// Renders the effective configuration as KEY=value lines, secrets masked.
std::string DescribeConfig(const Config& c);

// One provider's settings on one line ("kind=openai preset=deepseek model=... key=NAME(set, ****)
// ..."), as DescribeConfig and the start-up banner show them: an API key's value never, only its
// variable and whether it is set; a note when plain http:// goes to another host.
std::string DescribeProvider(const ProviderConfig& p);

// Where a node's queue, task store and graph live, as the start-up banner and
// `check-config` show them ("sqlite ./data/queue.db", "redis host:6379 (password ****)").
// Secrets are never shown, only whether one is set.
struct BackendDescription {
  std::string queue;
  std::string task_store;
  std::string graph;
};
BackendDescription DescribeBackends(const Config& c);

// The distributed backends' endpoints as the configuration sets them (meaningful when
// REDIS_HOST / DB_HOST are set).
RedisEndpoint RedisEndpointOf(const Config& c);
MysqlEndpoint MysqlEndpointOf(const Config& c);
// Meaningful when NEO4J_URI is set (LoadConfig has checked it parses).
Neo4jEndpoint Neo4jEndpointOf(const Config& c);

// Chunks a worker process of `provider` keeps in flight: KG_CONCURRENCY_PER_PROCESS when set;
// unset, 4 for builtin (CPU-bound, one executor thread each) and kLlmConcurrencyPerProcess for
// an LLM provider (I/O-bound: a call in flight is a socket and a buffer on one event loop).
inline constexpr int kLlmConcurrencyPerProcess = 32;
int ConcurrencyOf(const Config& c, const ProviderConfig& provider);

// How many Bolt connections a node of this configuration may hold open at most: every process
// that opens the graph (the node's API process, and each worker process up to
// KG_MAX_TOTAL_PROCESSES unless the role is web) times KG_NEO4J_POOL_SIZE. 0 without NEO4J_URI.
int Neo4jConnectionsOfNode(const Config& c);

}  // namespace kg
