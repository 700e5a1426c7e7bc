#include "config/config.h"

#include <filesystem>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cctype>
#include <unistd.h>
#include <vector>
#include <sstream>
#include <string_view>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "bolt/bolt.h"

namespace kg {
namespace {

// Every scalar setting: its variable, its TOML key and how to apply it.
struct Setting {
  const char* env;
  std::function<Status(Config&, const std::string& value, const std::string& var)> apply;
  bool secret = false;
};

Status ParseInt(const std::string& v, const std::string& var, int lo, int hi, int* out) {
  if (v.empty() || v.size() > 10 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::Invalid(fmt::format("{}='{}': expected a whole number from {} to {}", var, v, lo, hi));
  }
  long long n = std::stoll(v);
  if (n < lo || n > hi) {
    return Status::Invalid(fmt::format("{}='{}': expected a whole number from {} to {}", var, v, lo, hi));
  }
  *out = static_cast<int>(n);
  return Status::Ok();
}

Setting IntSetting(const char* env, int Config::*field, int lo, int hi) {
  return {env, [field, lo, hi](Config& c, const std::string& v, const std::string& var) {
            return ParseInt(v, var, lo, hi, &(c.*field));
          }};
}

Setting StrSetting(const char* env, std::string Config::*field, bool secret = false) {
  return {env,
          [field](Config& c, const std::string& v, const std::string&) {
            c.*field = v;
            return Status::Ok();
          },
          secret};
}

// A host name or address of a backend server; empty is the same as unset (the embedded backend),
// as env files and compose files write an unused variable.
Setting HostSetting(const char* env, std::string Config::*field) {
  return {env, [field](Config& c, const std::string& v, const std::string& var) {
            bool ok = v.size() <= 253 && std::all_of(v.begin(), v.end(), [](char ch) {
              return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == ':' || ch == '_';
            });
            if (!ok) {
              return Status::Invalid(fmt::format(
                  "{}='{}': expected a host name or IP address (unset it for the embedded backend)", var, v));
            }
            c.*field = v;
            return Status::Ok();
          }};
}

// 1..max_len characters of A-Z a-z 0-9 _ (and . - when `dots`).
Setting NameSetting(const char* env, std::string Config::*field, size_t max_len, const char* allowed, bool dots) {
  return {env, [=](Config& c, const std::string& v, const std::string& var) {
            bool ok = !v.empty() && v.size() <= max_len && std::all_of(v.begin(), v.end(), [&](char ch) {
              return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || (dots && (ch == '.' || ch == '-'));
            });
            if (!ok) return Status::Invalid(fmt::format("{}='{}': expected 1-{} characters of {}", var, v, max_len, allowed));
            c.*field = v;
            return Status::Ok();
          }};
}

Setting AddrSetting(const char* env, std::string Config::*field) {
  return {env, [field](Config& c, const std::string& v, const std::string& var) {
            std::string host;
            int port = 0;
            Status s = ParseHostPort(v, &host, &port);
            if (!s.ok()) {
              return Status::Invalid(fmt::format("{}='{}': expected HOST:PORT with a port from 0 to 65535", var, v));
            }
            c.*field = v;
            return Status::Ok();
          }};
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> kSettings = {
      {"NODE_ROLE",
       [](Config& c, const std::string& v, const std::string& var) {
         std::string l = v;
         std::transform(l.begin(), l.end(), l.begin(), ::tolower);
         if (l == "all") c.role = NodeRole::kAll;
         else if (l == "web") c.role = NodeRole::kWeb;
         else if (l == "worker") c.role = NodeRole::kWorker;
         else return Status::Invalid(fmt::format("{}='{}': expected one of all, web, worker", var, v));
         return Status::Ok();
       }},
      {"KG_WORKER_NODE_NAME",
       [](Config& c, const std::string& v, const std::string& var) {
         bool ok = !v.empty() && v.size() <= 64 && std::all_of(v.begin(), v.end(), [](char ch) {
           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
         });
         if (!ok) return Status::Invalid(fmt::format("{}='{}': expected 1-64 characters of A-Z a-z 0-9 . _ -", var, v));
         c.node_name = v;
         return Status::Ok();
       }},
      IntSetting("KG_WORKERS_PER_PROVIDER", &Config::workers_per_provider, 0, 1000),
      IntSetting("KG_MAX_TOTAL_PROCESSES", &Config::max_total_processes, 1, 10000),
      IntSetting("KG_MAX_PROCESSES_PER_PROVIDER", &Config::max_processes_per_provider, 1, 10000),
      HostSetting("REDIS_HOST", &Config::redis_host),
      IntSetting("REDIS_PORT", &Config::redis_port, 1, 65535),
      StrSetting("REDIS_PASSWORD", &Config::redis_password, true),
      IntSetting("REDIS_DB", &Config::redis_db, 0, 1023),
      NameSetting("KG_REDIS_NAMESPACE", &Config::redis_namespace, 32, "A-Z a-z 0-9 _ . -", true),
      HostSetting("DB_HOST", &Config::db_host),
      IntSetting("DB_PORT", &Config::db_port, 1, 65535),
      NameSetting("DB_USER", &Config::db_user, 80, "A-Z a-z 0-9 _ . -", true),
      StrSetting("DB_PASSWORD", &Config::db_password, true),
      // A database name is an identifier (it cannot be a bound parameter), so only these.
      NameSetting("DB_NAME", &Config::db_name, 64, "A-Z a-z 0-9 _", false),
      IntSetting("KG_DB_POOL_SIZE", &Config::db_pool_size, 1, 256),
      IntSetting("KG_QUEUE_RETENTION_HOURS", &Config::queue_retention_hours, 0, 24 * 365),
      {"NEO4J_URI",
       [](Config& c, const std::string& v, const std::string& var) {
         if (v.empty()) return Status::Ok();  // as for the hosts: empty is unset
         Neo4jEndpoint at;
         Status s = bolt::ParseUri(v, at);
         if (!s.ok()) {
           std::string why = s.message();
           if (why.rfind("NEO4J_URI: ", 0) == 0) why.erase(0, 11);
           // A URI with user:password@ is refused without being echoed: it holds a secret.
           if (v.find('@') != std::string::npos) return Status::Invalid(fmt::format("{}: {}", var, why));
           return Status::Invalid(fmt::format("{}='{}': {}", var, v, why));
         }
         c.neo4j_uri = v;
         return Status::Ok();
       }},
      StrSetting("NEO4J_USER", &Config::neo4j_user),
      StrSetting("NEO4J_PASSWORD", &Config::neo4j_password, true),
      // Passed to the server as data (the `db` field of BEGIN and RUN), never spliced: still, only
      // what a Neo4j database name may hold (3-63 characters), and never the `system` database
      // (it holds no graph). Empty is unset: the server's default database.
      {"NEO4J_DATABASE",
       [](Config& c, const std::string& v, const std::string& var) {
         if (v.empty()) {
           c.neo4j_database.clear();
           return Status::Ok();
         }
         bool ok = v.size() >= 3 && v.size() <= 63 && std::isalpha(static_cast<unsigned char>(v[0])) &&
                   std::all_of(v.begin(), v.end(), [](char ch) {
                     return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-';
                   });
         if (!ok) {
           return Status::Invalid(fmt::format(
               "{}='{}': expected a Neo4j database name: 3-63 characters of A-Z a-z 0-9 . -, starting with a letter "
               "(unset it for the server's default database)",
               var, v));
         }
         std::string lower = v;
         std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
         if (lower == "system") {
           return Status::Invalid(fmt::format(
               "{}='{}': the system database holds no graph; name a user database (or unset it for the server's "
               "default)",
               var, v));
         }
         c.neo4j_database = v;
         return Status::Ok();
       }},
      IntSetting("KG_NEO4J_POOL_SIZE", &Config::neo4j_pool_size, 1, 256),
      IntSetting("KG_NEO4J_MAX_CONNECTIONS", &Config::neo4j_max_connections, 0, 1000000),
      {"KG_DATA_DIR",
       [](Config& c, const std::string& v, const std::string& var) {
         if (v.empty()) return Status::Invalid(fmt::format("{}='': expected a directory path", var));
         c.data_dir = v;
         return Status::Ok();
       }},
      AddrSetting("KG_HTTP_ADDR", &Config::http_addr),
      AddrSetting("KG_HEALTH_ADDR", &Config::health_addr),
      {"KG_API_TOKEN",
       [](Config& c, const std::string& v, const std::string& var) {
         // A set but empty or blank token is a mistake, never "no token": `KG_API_TOKEN=$SECRET`
         // with the secret missing would otherwise open the API silently, and white space alone
         // (an empty line in a secret file) would demand a token no client can guess.
         if (v.find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
           return Status::Invalid(fmt::format(
               "{} is set but {}; set a token, or unset the variable to run without one", var,
               v.empty() ? "empty" : "blank (only white space)"));
         }
         c.api_token = v;
         return Status::Ok();
       },
       true},
      IntSetting("KG_LEASE_SECONDS", &Config::lease_seconds, 1, 86400),
      IntSetting("KG_MAX_ATTEMPTS", &Config::max_attempts, 1, 100),
      IntSetting("KG_STOP_TIMEOUT_SECONDS", &Config::stop_timeout_seconds, 0, 3600),
      IntSetting("KG_CONCURRENCY_PER_PROCESS", &Config::concurrency_per_process, 1, 1000),
      IntSetting("KG_MAX_TASKS_PER_PROCESS", &Config::max_tasks_per_process, 0, 100000000),
      IntSetting("KG_MAX_RSS_MB", &Config::max_rss_mb, 0, 1048576),
      IntSetting("KG_MAX_BODY_MB", &Config::max_body_mb, 1, 1024),
      IntSetting("KG_CHUNK_SIZE", &Config::chunk_size, 50, 100000),
      IntSetting("KG_CHUNK_OVERLAP", &Config::chunk_overlap, 0, 50000),
      IntSetting("KG_POISON_CRASHES", &Config::poison_crashes, 1, 100),
      IntSetting("KG_QUARANTINE_SECONDS", &Config::quarantine_seconds, 1, 86400),
      IntSetting("KG_HEARTBEAT_SECONDS", &Config::heartbeat_seconds, 1, 300),
      IntSetting("KG_HTTP_HEADER_TIMEOUT_SECONDS", &Config::http_header_timeout_seconds, 1, 300),
      IntSetting("KG_HTTP_IDLE_TIMEOUT_SECONDS", &Config::http_idle_timeout_seconds, 1, 3600),
      IntSetting("KG_HTTP_BODY_TIMEOUT_SECONDS", &Config::http_body_timeout_seconds, 1, 3600),
      IntSetting("KG_HTTP_MIN_BODY_KBPS", &Config::http_min_body_kbps, 1, 1048576),
      IntSetting("KG_HTTP_MAX_CONNECTIONS", &Config::http_max_connections, 1, 1000000),
      IntSetting("KG_HTTP_MAX_CONNECTIONS_PER_CLIENT", &Config::http_max_connections_per_client, 1, 1000000),
      IntSetting("KG_HTTP_THREADS", &Config::http_threads, 1, 256),
      IntSetting("KG_HTTP_EVENT_HEARTBEAT_SECONDS", &Config::http_event_heartbeat_seconds, 1, 3600),
      {"KG_LOG_LEVEL",
       [](Config& c, const std::string& v, const std::string& var) {
         static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
         std::string l = v;  // INFO and Info are info, as NODE_ROLE takes any case
         std::transform(l.begin(), l.end(), l.begin(), ::tolower);
         if (std::find(std::begin(kLevels), std::end(kLevels), l) == std::end(kLevels)) {
           return Status::Invalid(fmt::format("{}='{}': expected one of trace, debug, info, warn, error, off", var, v));
         }
         c.log_level = l;
         return Status::Ok();
       }},
      {"KG_LOG_FORMAT",
       [](Config& c, const std::string& v, const std::string& var) {
         if (v != "text" && v != "json") {
           return Status::Invalid(fmt::format("{}='{}': expected text or json", var, v));
         }
         c.log_format = v;
         return Status::Ok();
       }},
  };
  return kSettings;
}

// "KG_MAX_ATTEMPTS" -> "max_attempts"; "NODE_ROLE" -> "node_role".
std::string TomlKey(const std::string& env) {
  std::string k = env.rfind("KG_", 0) == 0 ? env.substr(3) : env;
  std::transform(k.begin(), k.end(), k.begin(), ::tolower);
  return k;
}

std::string TomlScalar(const toml::node& n) {
  if (auto s = n.value<std::string>()) return *s;
  if (auto i = n.value<int64_t>()) return std::to_string(*i);
  if (auto b = n.value<bool>()) return *b ? "true" : "false";
  return "<not a scalar>";
}

// Levenshtein distance, for "did you mean" on a misspelled key.
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// A key the file has but nothing reads is an error: a misspelling would otherwise configure
// nothing, silently. Names the nearest known key when one is close.
Status CheckKeys(const toml::table& t, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& [key, node] : t) {
    std::string k(key.str());
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    std::string best;
    size_t best_d = 3;  // suggest only within two edits
    for (const auto& cand : known) {
      size_t d = EditDistance(k, cand);
      if (d < best_d) best_d = d, best = cand;
    }
    std::string hint = best.empty() ? "" : fmt::format("; did you mean '{}'?", best);
    std::string list;
    for (const auto& cand : known) list += (list.empty() ? "" : ", ") + cand;
    return Status::Invalid(fmt::format("{}: unknown key '{}' (line {}){}; known keys: {}", where, k,
                                       node.source().begin.line, hint, list));
  }
  return Status::Ok();
}

// ---- LLM providers (kind "openai") ---------------------------------------------------------

// What a preset fills in. Limits are guards a new account can live with, not the provider's
// quotas (those depend on the account): rpm and tpm stay 0 and the server's 429s, with the
// provider's adaptive in-flight cap, find the real limit. Prices stay 0: a stale price is
// worse than none (docs/providers.md).
struct Preset {
  const char* name;
  const char* base_url;
  const char* model;        // "" = none: the model must be set (vllm serves what it was started with)
  const char* api_key_env;  // "" = no key (a local server)
  bool key_optional;        // the key variable may be unset (a vLLM started without --api-key)
  int max_concurrency;
  int timeout_s;
  int max_output_tokens;
  const char* extra_body;  // JSON object text, "" = none
};

// docs/providers.md explains each choice (and what the providers document about their quirks).
constexpr Preset kPresets[] = {
    // deepseek-chat is the non-thinking alias: no thinking switch needed. The server holds
    // queued requests open for minutes (blank keep-alive lines), hence the longer timeout.
    {"deepseek", "https://api.deepseek.com", "deepseek-chat", "DEEPSEEK_API_KEY", false, 100, 300, 4096, ""},
    {"openai", "https://api.openai.com/v1", "gpt-4.1-mini", "OPENAI_API_KEY", false, 50, 120, 4096, ""},
    // JSON mode works in non-thinking mode only (and open-source Qwen3 thinks by default).
    {"qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1", "qwen-plus", "DASHSCOPE_API_KEY", false, 50, 120,
     4096, R"({"enable_thinking":false})"},
    // moonshot-v1 accepts temperature 0; kimi-k2.6 fixes its temperature and thinks by default.
    {"moonshot", "https://api.moonshot.cn/v1", "moonshot-v1-32k", "MOONSHOT_API_KEY", false, 10, 300, 4096, ""},
    // GLM-4.7 thinks by default; only thinking.type turns it off on the hosted API.
    {"zhipu", "https://open.bigmodel.cn/api/paas/v4", "glm-4.7", "ZHIPUAI_API_KEY", false, 10, 180, 4096,
     R"({"thinking":{"type":"disabled"}})"},
    // One request at a time (OLLAMA_NUM_PARALLEL defaults to 1); local generation is slow.
    // reasoning_effort "none" is Ollama's think=false for qwen3.
    {"ollama", "http://127.0.0.1:11434/v1", "qwen3:8b", "", false, 1, 600, 4096, R"({"reasoning_effort":"none"})"},
    // vLLM never answers 429 (its queue is unbounded): the concurrency cap is the only brake.
    {"vllm", "http://127.0.0.1:8000/v1", "", "VLLM_API_KEY", true, 32, 300, 4096, ""},
};

const Preset* FindPreset(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

std::string PresetNames() {
  std::string out;
  for (const auto& p : kPresets) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

ProviderConfig FromPreset(const std::string& name, const Preset& pre) {
  ProviderConfig p;
  p.name = name;
  p.kind = "openai";
  p.preset = pre.name;
  p.base_url = pre.base_url;
  p.model = pre.model;
  p.api_key_env = pre.api_key_env;
  p.max_concurrency = pre.max_concurrency;
  p.timeout_s = pre.timeout_s;
  p.max_output_tokens = pre.max_output_tokens;
  p.extra_body = pre.extra_body;
  return p;
}

// The key may be missing only where the preset says so and the table kept the preset's variable.
bool KeyOptional(const ProviderConfig& p) {
  const Preset* pre = FindPreset(p.preset);
  return pre && pre->key_optional && p.api_key_env == pre->api_key_env;
}

// "my-llm" -> "MY_LLM": the prefix of a provider's environment overrides.
std::string EnvPrefix(const std::string& name) {
  std::string out = name;
  for (char& ch : out) ch = ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

// No spaces and no control characters: what may go into a URL, a JSON string we do not escape
// for the reader, or an HTTP header.
bool IsSolid(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](unsigned char ch) { return ch > 0x20 && ch != 0x7f; });
}

// A model's name: 1-256 solid characters.
bool IsModelName(std::string_view v) { return !v.empty() && v.size() <= 256 && IsSolid(v); }

bool IsLoopbackHost(std::string host) {
  std::transform(host.begin(), host.end(), host.begin(), ::tolower);
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

// Checks and normalises a base URL (trailing slashes dropped). Returns "" when it is good, else
// what is wrong; `*echo` false when the value must not be repeated (it holds credentials).
std::string CheckBaseUrl(std::string* url, bool* echo, std::string* host_out) {
  *echo = true;
  const std::string& u = *url;
  if (!IsSolid(u)) return "expected a URL without spaces or control characters";
  size_t rest = 0;
  if (u.rfind("https://", 0) == 0) rest = 8;
  else if (u.rfind("http://", 0) == 0) rest = 7;
  else return "expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]";
  size_t slash = u.find('/', rest);
  std::string authority = u.substr(rest, slash == std::string::npos ? std::string::npos : slash - rest);
  if (authority.find('@') != std::string::npos) {
    *echo = false;
    return "credentials do not go in the URL; the key is read from the variable api_key_env names";
  }
  if (u.find_first_of("?#") != std::string::npos) {
    return "expected no query or fragment (kgflow appends /chat/completions to the base URL)";
  }
  std::string host = authority, port;
  bool has_port = false;
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    if (close == std::string::npos) return "expected a host: an IPv6 address needs its closing ']'";
    port = host.substr(close + 1);
    host = host.substr(0, close + 1);
    if (!port.empty() && port[0] != ':') return "expected HOST[:PORT] after the scheme";
    has_port = !port.empty();
    if (has_port) port.erase(0, 1);
  } else if (size_t colon = host.find(':'); colon != std::string::npos) {
    has_port = true;
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  bool host_ok = !host.empty() && (host[0] == '[' || std::all_of(host.begin(), host.end(), [](char ch) {
                                     return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
                                            ch == '_';
                                   }));
  if (!host_ok) return "expected a host name or address after the scheme";
  if (has_port) {
    bool port_ok = !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), ::isdigit) &&
                   std::stoi(port) >= 1 && std::stoi(port) <= 65535;
    if (!port_ok) return "expected a port from 1 to 65535 after the host";
  }
  std::string normal = u;
  while (normal.size() > rest + authority.size() && normal.back() == '/') normal.pop_back();
  const std::string kEndpoint = "/chat/completions";
  if (normal.size() >= kEndpoint.size() &&
      normal.compare(normal.size() - kEndpoint.size(), kEndpoint.size(), kEndpoint) == 0) {
    return "expected the base URL without /chat/completions (kgflow appends it)";
  }
  *url = normal;
  if (host_out) *host_out = host;
  return "";
}

// A TOML value as an error message shows it.
std::string ShowToml(const toml::node& n) {
  if (auto s = n.as_string()) return "'" + s->get() + "'";
  if (auto i = n.as_integer()) return std::to_string(i->get());
  if (auto f = n.as_floating_point()) return fmt::format("{}", f->get());
  if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
  if (n.is_table()) return "<a table>";
  if (n.is_array()) return "<an array>";
  return "<a date or time>";
}

// A TOML value as JSON (for extra_body); dates and times have no JSON form.
Result<nlohmann::json> TomlToJson(const toml::node& n, const std::string& path) {
  if (auto t = n.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : *t) {
      auto member = TomlToJson(v, path + "." + std::string(k.str()));
      if (!member.ok()) return member.status();
      out[std::string(k.str())] = std::move(*member);
    }
    return out;
  }
  if (auto a = n.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    size_t i = 0;
    for (const auto& v : *a) {
      auto item = TomlToJson(v, fmt::format("{}[{}]", path, i++));
      if (!item.ok()) return item.status();
      out.push_back(std::move(*item));
    }
    return out;
  }
  if (auto s = n.as_string()) return nlohmann::json(s->get());
  if (auto i = n.as_integer()) return nlohmann::json(i->get());
  if (auto f = n.as_floating_point()) return nlohmann::json(f->get());
  if (auto b = n.as_boolean()) return nlohmann::json(b->get());
  return Status::Invalid(fmt::format("{}: a date or time has no JSON form", path));
}

// extra_body as stored: a JSON object's compact text, "" for none or an empty object. Members
// kgflow itself sets are refused: merged in, they would replace the request kgflow built.
Status NormaliseExtraBody(const nlohmann::json& j, const std::string& what, std::string* out) {
  if (!j.is_object()) return Status::Invalid(fmt::format("{}: expected a JSON object", what));
  for (const char* owned : {"model", "messages", "stream"}) {
    if (j.contains(owned)) {
      return Status::Invalid(fmt::format("{}: member '{}' is set by kgflow and cannot be replaced{}", what, owned,
                                         std::string(owned) == "model" ? " (use the model key)" : ""));
    }
  }
  *out = j.empty() ? "" : j.dump();
  return Status::Ok();
}

// Typed reads of a provider table's optional keys; an absent key leaves the value as it is.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string where) : t_(t), where_(std::move(where)) {}

  const toml::node* Get(const char* key) const { return t_.get(key); }

  template <typename Int>
  Status Whole(const char* key, int64_t lo, int64_t hi, Int* out) const {
    const toml::node* n = t_.get(key);
    if (!n) return Status::Ok();
    auto i = n->as_integer();
    if (!i || i->get() < lo || i->get() > hi) {
      return Status::Invalid(
          fmt::format("{} {}={}: expected a whole number from {} to {}", where_, key, ShowToml(*n), lo, hi));
    }
    *out = static_cast<Int>(i->get());
    return Status::Ok();
  }
  Status Number(const char* key, double lo, double hi, double* out) const {
    const toml::node* n = t_.get(key);
    if (!n) return Status::Ok();
    std::optional<double> v;
    if (auto i = n->as_integer()) v = static_cast<double>(i->get());
    if (auto f = n->as_floating_point()) v = f->get();
    if (!v || !(*v >= lo && *v <= hi)) {  // NaN fails both
      return Status::Invalid(
          fmt::format("{} {}={}: expected a number from {} to {}", where_, key, ShowToml(*n), lo, hi));
    }
    *out = *v;
    return Status::Ok();
  }
  Status Bool(const char* key, bool* out) const {
    const toml::node* n = t_.get(key);
    if (!n) return Status::Ok();
    auto b = n->as_boolean();
    if (!b) return Status::Invalid(fmt::format("{} {}={}: expected true or false", where_, key, ShowToml(*n)));
    *out = b->get();
    return Status::Ok();
  }
  // A string; `echo` false when a wrong value must not be repeated (it may be a secret).
  Status String(const char* key, std::string* out, bool echo = true) const {
    const toml::node* n = t_.get(key);
    if (!n) return Status::Ok();
    auto s = n->as_string();
    if (!s) {
      return Status::Invalid(fmt::format("{} {}{}: expected a string", where_, key, echo ? "=" + ShowToml(*n) : ""));
    }
    *out = s->get();
    return Status::Ok();
  }
  const std::string& where() const { return where_; }

 private:
  const toml::table& t_;
  std::string where_;
};

const std::vector<std::string>& OpenAiKeys() {
  static const std::vector<std::string> kKeys = {
      "kind",        "preset",     "base_url",          "model",           "api_key_env",
      "max_concurrency", "rpm",    "tpm",               "timeout_s",       "max_output_tokens",
      "json_mode",   "temperature", "price_in_per_mtok", "price_out_per_mtok", "prompt_file",
      "extra_body",  "max_retries"};
  return kKeys;
}

// An environment variable's name: what api_key_env must hold. A value that is not one is never
// repeated in the error: it is most likely the key itself, pasted in the wrong place.
bool IsEnvName(const std::string& v) {
  return !v.empty() && v.size() <= 128 && !std::isdigit(static_cast<unsigned char>(v[0])) &&
         std::all_of(v.begin(), v.end(), [](char ch) {
           return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
         });
}

// Reads the keys of an openai table over `p` (the preset's values, or the defaults).
Status ReadOpenAiTable(const TableReader& r, const std::string& file, ProviderConfig& p) {
  const std::string& where = r.where();
  std::string url = p.base_url;
  if (r.Get("base_url")) {
    KG_RETURN_IF_ERROR(r.String("base_url", &url));
    bool echo = true;
    std::string why = CheckBaseUrl(&url, &echo, nullptr);
    if (!why.empty()) {
      return Status::Invalid(echo ? fmt::format("{} base_url='{}': {}", where, url, why)
                                  : fmt::format("{} base_url: {}", where, why));
    }
    p.base_url = url;
  }
  if (r.Get("model")) {
    KG_RETURN_IF_ERROR(r.String("model", &p.model));
    if (!IsModelName(p.model)) {
      return Status::Invalid(
          fmt::format("{} model='{}': expected the model's name (1-256 characters, no spaces)", where, p.model));
    }
  }
  if (r.Get("api_key_env")) {
    std::string v;
    KG_RETURN_IF_ERROR(r.String("api_key_env", &v, false));
    if (!v.empty() && !IsEnvName(v)) {
      return Status::Invalid(fmt::format(
          "{} api_key_env: expected the NAME of the environment variable that holds the key (A-Z 0-9 _, e.g. "
          "DEEPSEEK_API_KEY), or \"\" for none; the value is not shown in case it is the key itself",
          where));
    }
    p.api_key_env = v;
  }
  KG_RETURN_IF_ERROR(r.Whole("max_concurrency", 0, 100000, &p.max_concurrency));
  KG_RETURN_IF_ERROR(r.Whole("rpm", 0, 100000000, &p.rpm));
  KG_RETURN_IF_ERROR(r.Whole("tpm", 0, int64_t{1000000000000}, &p.tpm));
  KG_RETURN_IF_ERROR(r.Whole("timeout_s", 1, 3600, &p.timeout_s));
  KG_RETURN_IF_ERROR(r.Whole("max_output_tokens", 1, 1000000, &p.max_output_tokens));
  KG_RETURN_IF_ERROR(r.Whole("max_retries", 0, 20, &p.max_retries));
  KG_RETURN_IF_ERROR(r.Bool("json_mode", &p.json_mode));
  KG_RETURN_IF_ERROR(r.Number("temperature", 0, 2, &p.temperature));
  KG_RETURN_IF_ERROR(r.Number("price_in_per_mtok", 0, 100000, &p.price_in_per_mtok));
  KG_RETURN_IF_ERROR(r.Number("price_out_per_mtok", 0, 100000, &p.price_out_per_mtok));
  if (r.Get("prompt_file")) {
    std::string path;
    KG_RETURN_IF_ERROR(r.String("prompt_file", &path));
    if (path.empty()) {
      p.prompt_file.clear();  // the compiled-in prompt
    } else {
      // Relative to the file that names it, so a configuration directory moves as one.
      std::filesystem::path resolved(path);
      std::error_code ec;
      if (resolved.is_relative()) resolved = std::filesystem::path(file).parent_path() / resolved;
      resolved = std::filesystem::absolute(resolved, ec).lexically_normal();
      std::FILE* f = std::fopen(resolved.c_str(), "r");
      if (!f) {
        return Status::Invalid(fmt::format("{} prompt_file='{}': cannot open {}: {}", where, path, resolved.string(),
                                           std::strerror(errno)));
      }
      std::fclose(f);
      if (!std::filesystem::is_regular_file(resolved, ec)) {
        return Status::Invalid(
            fmt::format("{} prompt_file='{}': {} is not a regular file (a prompt file is expected)", where, path,
                        resolved.string()));
      }
      p.prompt_file = resolved.string();
    }
  }
  if (const toml::node* n = r.Get("extra_body")) {
    std::string what = fmt::format("{} extra_body", where);
    nlohmann::json j;
    if (auto s = n->as_string()) {
      if (s->get().empty()) {
        j = nlohmann::json::object();
      } else {
        j = nlohmann::json::parse(s->get(), nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) {
          return Status::Invalid(fmt::format("{}='{}': expected a JSON object (a TOML inline table, or a string "
                                             "holding JSON)",
                                             what, s->get()));
        }
      }
    } else if (n->is_table()) {
      auto converted = TomlToJson(*n, what);
      if (!converted.ok()) return converted.status();
      j = std::move(*converted);
    } else {
      return Status::Invalid(fmt::format("{}={}: expected a TOML inline table ({{thinking = {{type = \"disabled\"}}}}) "
                                         "or a string holding a JSON object",
                                         what, ShowToml(*n)));
    }
    KG_RETURN_IF_ERROR(NormaliseExtraBody(j, what, &p.extra_body));
  }
  return Status::Ok();
}

// 1-64 characters of A-Z a-z 0-9 _ -: an openai provider's name becomes part of variable names
// (<NAME>_BASE_URL).
bool IsOpenAiName(const std::string& n) {
  return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

// Reads the [providers.NAME] tables. `origin` gets, per provider, the table that declared it.
Status LoadProviders(const toml::table& root, const std::string& file, Config& c,
                     std::map<std::string, std::string>& origin) {
  const toml::table* provs = root["providers"].as_table();
  if (!provs) return Status::Ok();
  for (const auto& [key, node] : *provs) {
    std::string name(key.str());
    std::string where = fmt::format("{}: [providers.{}]", file, name);
    const toml::table* t = node.as_table();
    if (!t) return Status::Invalid(where + ": expected a table");
    if (auto n = t->get("api_key")) {
      // As for the passwords: a file is copied, committed and shown in reviews.
      std::string var = t->get("api_key_env") ? "the variable api_key_env names" : "";
      if (var.empty()) {
        const Preset* pre = FindPreset((*t)["preset"].value_or(std::string(name)));
        var = pre && *pre->api_key_env ? pre->api_key_env : "a variable and name it in api_key_env";
      }
      return Status::Invalid(fmt::format(
          "{} key 'api_key' (line {}): secrets are read from the environment only; remove it from the file and set {}",
          where, n->source().begin.line, var));
    }
    std::optional<std::string> kind;
    if (const toml::node* n = t->get("kind")) {
      auto s = n->as_string();
      if (!s || (s->get() != "builtin" && s->get() != "openai")) {
        return Status::Invalid(fmt::format("{} kind={}: expected one of builtin, openai", where, ShowToml(*n)));
      }
      kind = s->get();
    }
    // The preset: the one named, else the table's own name when that is a preset's (and the
    // table does not say it is something else).
    const Preset* preset = nullptr;
    if (const toml::node* n = t->get("preset")) {
      auto s = n->as_string();
      preset = s ? FindPreset(s->get()) : nullptr;
      if (!preset) {
        return Status::Invalid(fmt::format("{} preset={}: expected one of {}", where, ShowToml(*n), PresetNames()));
      }
      if (kind == "builtin") {
        return Status::Invalid(fmt::format("{} kind='builtin' with preset='{}': a preset is of kind openai; drop "
                                           "one of the two",
                                           where, preset->name));
      }
    } else if (kind.value_or("openai") == "openai") {
      preset = FindPreset(name);
    }
    ProviderConfig p;
    p.name = name;
    if (preset || kind == "openai") {
      if (!IsOpenAiName(name)) {
        return Status::Invalid(fmt::format("{}: an openai provider's name must be 1-64 characters of A-Z a-z 0-9 _ - "
                                           "(it names variables: <NAME>_BASE_URL, <NAME>_MODEL)",
                                           where));
      }
      KG_RETURN_IF_ERROR(CheckKeys(*t, OpenAiKeys(), where));
      if (preset) p = FromPreset(name, *preset);
      p.kind = "openai";
      KG_RETURN_IF_ERROR(ReadOpenAiTable(TableReader(*t, where), file, p));
    } else {
      // A table with no kind named almost like a preset ("deepseak") is a typo, not a wish for the
      // offline extractor: say so rather than run builtin under the name.
      if (!kind) {
        for (const auto& pr : kPresets) {
          std::string lower = name;
          std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
          if (EditDistance(lower, pr.name) <= 2) {
            return Status::Invalid(fmt::format(
                "{}: no preset is named '{}'; did you mean '{}'? (to declare a builtin provider of this name, "
                "set kind = \"builtin\")",
                where, name, pr.name));
          }
        }
      }
      KG_RETURN_IF_ERROR(CheckKeys(*t, {"kind", "delay_ms", "fault", "crash_marker"}, where));
      int64_t delay = (*t)["delay_ms"].value_or<int64_t>(0);
      if (delay < 0 || delay > 600000) {
        return Status::Invalid(fmt::format("{} delay_ms={}: expected 0 to 600000", where, delay));
      }
      p.delay_ms = static_cast<int>(delay);
      p.fault = (*t)["fault"].value_or<std::string>("");
      if (!p.fault.empty() && p.fault != "exit_on_start" && p.fault != "crash_on_marker") {
        return Status::Invalid(fmt::format("{} fault='{}': expected exit_on_start or crash_on_marker", where, p.fault));
      }
      p.crash_marker = (*t)["crash_marker"].value_or(std::string(p.crash_marker));
    }
    c.providers[name] = p;
    c.enabled_providers.push_back(name);
    origin[name] = fmt::format("KG_CONFIG='{}' [providers.{}]", file, name);
  }
  return Status::Ok();
}

// Completes each enabled openai provider from the environment (<NAME>_BASE_URL, <NAME>_MODEL,
// the key) and checks it has what it needs to run. What the file says was checked for every
// provider; what depends on the node's environment is read and required for the enabled ones only
// (a file shared by nodes that each run a subset), and the key is not required of a web node (it
// never calls a provider, so it need not hold the secret).
Status FinishProviders(const EnvLookup& env, const std::map<std::string, std::string>& origin, bool list_set,
                       Config& c) {
  for (auto& [name, p] : c.providers) {
    if (p.kind != "openai" || !c.HasProvider(name)) continue;
    const std::string prefix = EnvPrefix(name);
    if (auto v = env(prefix + "_BASE_URL"); v && !v->empty()) {
      std::string url = *v;
      bool echo = true;
      std::string why = CheckBaseUrl(&url, &echo, nullptr);
      if (!why.empty()) {
        return Status::Invalid(echo ? fmt::format("{}_BASE_URL='{}': {}", prefix, *v, why)
                                    : fmt::format("{}_BASE_URL: {}", prefix, why));
      }
      p.base_url = url;
    }
    if (auto v = env(prefix + "_MODEL"); v && !v->empty()) {
      if (!IsModelName(*v)) {
        return Status::Invalid(
            fmt::format("{}_MODEL='{}': expected the model's name (1-256 characters, no spaces)", prefix, *v));
      }
      p.model = *v;
    }
    if (!p.api_key_env.empty()) {
      if (auto v = env(p.api_key_env)) p.api_key = *v;
    }
    auto it = origin.find(name);
    std::string from = list_set ? std::string("KG_PROVIDERS") : (it != origin.end() ? it->second : "KG_PROVIDERS");
    std::string in_file = it != origin.end() ? it->second : "";
    if (p.base_url.empty()) {
      return Status::Invalid(fmt::format("{}: provider {} has no base_url; set base_url in {} or {}_BASE_URL", from,
                                         name, in_file.empty() ? "its table" : in_file, prefix));
    }
    if (p.model.empty()) {
      return Status::Invalid(fmt::format(
          "{}: provider {} has no model; set {}_MODEL (or model in {}) to the name the server serves{}", from, name,
          prefix, in_file.empty() ? fmt::format("a [providers.{}] table", name) : in_file,
          p.preset == "vllm" ? " (its --served-model-name, e.g. Qwen/Qwen3-32B)" : ""));
    }
    if (p.api_key_env.empty()) continue;
    // Never the key's value below: only whether it is there and usable.
    bool blank = p.api_key.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
    if (blank) {
      if (KeyOptional(p) || c.role == NodeRole::kWeb) {
        p.api_key.clear();
        continue;
      }
      auto v = env(p.api_key_env);
      return Status::Invalid(fmt::format("{}: provider {} needs {} ({}); set it to the provider's API key", from, name,
                                         p.api_key_env,
                                         !v ? "unset" : v->empty() ? "set but empty" : "set but blank"));
    }
    if (!IsSolid(p.api_key)) {
      // It goes into an HTTP header: a line break (from a secret file) would break the request.
      return Status::Invalid(fmt::format("{}: provider {}: {} holds white space or control characters (a trailing "
                                         "line break from a file?); the value is not shown",
                                         from, name, p.api_key_env));
    }
  }
  return Status::Ok();
}

// One line for check-config and the banner. The key's value is never shown: only its variable
// and whether it is set.
std::string DescribeOpenAi(const ProviderConfig& p) {
  std::string key;
  if (p.api_key_env.empty()) key = "none";
  else if (!p.api_key.empty()) key = fmt::format("{}(set, {})", p.api_key_env, MaskSecret(p.api_key));
  else key = fmt::format("{}(unset{})", p.api_key_env, KeyOptional(p) ? ", optional" : "");
  std::string cost = p.price_in_per_mtok > 0 || p.price_out_per_mtok > 0
                         ? fmt::format("price_in_per_mtok={} price_out_per_mtok={}", p.price_in_per_mtok,
                                       p.price_out_per_mtok)
                         : "cost=off(no prices)";
  std::string out = fmt::format(
      "kind=openai preset={} model={} base_url={} key={} max_concurrency={} rpm={} tpm={} timeout_s={} "
      "max_output_tokens={} json_mode={} temperature={} max_retries={} {} extra_body={} prompt={}",
      p.preset.empty() ? "none" : p.preset, p.model, p.base_url, key, p.max_concurrency, p.rpm, p.tpm, p.timeout_s,
      p.max_output_tokens, p.json_mode, p.temperature, p.max_retries, cost,
      p.extra_body.empty() ? "none" : p.extra_body, p.prompt_file.empty() ? "compiled-in" : p.prompt_file);
  std::string url = p.base_url, host;
  bool echo = true;
  if (url.rfind("http://", 0) == 0 && CheckBaseUrl(&url, &echo, &host).empty() && !IsLoopbackHost(host)) {
    out += "  # plain http:// to another host: the documents (and the key) travel unencrypted";
  }
  return out;
}

}  // namespace

const char* RoleName(NodeRole r) {
  switch (r) {
    case NodeRole::kAll: return "all";
    case NodeRole::kWeb: return "web";
    case NodeRole::kWorker: return "worker";
  }
  return "?";
}

int ConcurrencyOf(const Config& c, const ProviderConfig& provider) {
  if (c.concurrency_per_process_set || provider.kind == "builtin") return c.concurrency_per_process;
  return kLlmConcurrencyPerProcess;
}

std::string DefaultNodeName(const std::string& hostname, NodeRole role) {
  std::string suffix = std::string("-") + RoleName(role);
  std::string h = hostname.substr(0, 64 - suffix.size());
  for (char& ch : h) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) ch = '-';
  }
  if (h.empty()) h = "localhost";
  return h + suffix;
}

bool Config::HasProvider(const std::string& name) const {
  return std::find(enabled_providers.begin(), enabled_providers.end(), name) != enabled_providers.end();
}

std::string Config::KnownProviders() const {
  std::string out;
  for (const auto& n : enabled_providers) out += (out.empty() ? "" : ", ") + n;
  return out;
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

Status ParseHostPort(const std::string& addr, std::string* host, int* port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return Status::Invalid("expected HOST:PORT");
  std::string p = addr.substr(colon + 1);
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) {
    return Status::Invalid("expected HOST:PORT");
  }
  int n = std::stoi(p);
  if (n > 65535) return Status::Invalid("port out of range");
  *host = addr.substr(0, colon);
  *port = n;
  return Status::Ok();
}

Result<Config> LoadConfig(const EnvLookup& env) {
  Config c;
  std::map<std::string, std::pair<std::string, std::string>> raw;  // env -> (value, source)
  std::map<std::string, std::string> origin;                        // provider -> the table declaring it

  if (auto file = env("KG_CONFIG"); file && !file->empty()) {
    c.config_file = *file;
    // toml++ reports an unopenable file as a parse error at "line 0"; say the path and the OS reason.
    if (std::FILE* f = std::fopen(file->c_str(), "r")) {
      std::fclose(f);
    } else {
      return Status::Invalid(fmt::format("KG_CONFIG='{}': cannot open: {}", *file, std::strerror(errno)));
    }
    // A directory opens for reading on Linux and reads as an empty TOML file: refuse it.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(*file, ec)) {
      return Status::Invalid(fmt::format("KG_CONFIG='{}': not a regular file (a TOML file is expected)", *file));
    }
    toml::table root;
    try {
      root = toml::parse_file(*file);
    } catch (const toml::parse_error& e) {
      return Status::Invalid(fmt::format("KG_CONFIG='{}': {} (line {})", *file, std::string(e.description()),
                                         e.source().begin.line));
    }
    std::vector<std::string> known = {"providers"};
    for (const auto& s : Settings()) known.push_back(TomlKey(s.env));
    KG_RETURN_IF_ERROR(CheckKeys(root, known, fmt::format("KG_CONFIG='{}'", *file)));
    for (const auto& s : Settings()) {
      if (auto n = root.get(TomlKey(s.env))) {
        if (s.secret) {
          // A file is copied, committed and shown in reviews; a secret belongs in the environment
          // (a secret store, a systemd credential), so a file holding one is refused, not read.
          return Status::Invalid(fmt::format(
              "KG_CONFIG='{}' key '{}': secrets are read from the environment only; remove it from the file "
              "and set {}",
              *file, TomlKey(s.env), s.env));
        }
        raw[s.env] = {TomlScalar(*n), fmt::format("{} key '{}'", *file, TomlKey(s.env))};
      }
    }
    KG_RETURN_IF_ERROR(LoadProviders(root, *file, c, origin));
  }
  if (c.providers.empty()) {
    ProviderConfig builtin;
    builtin.name = "builtin";
    c.providers["builtin"] = builtin;
    c.enabled_providers = {"builtin"};
  }
  for (const auto& s : Settings()) {
    if (auto v = env(s.env)) raw[s.env] = {*v, ""};
  }
  for (const auto& s : Settings()) {
    auto it = raw.find(s.env);
    if (it == raw.end()) continue;
    std::string var = it->second.second.empty() ? s.env : fmt::format("{} (from {})", s.env, it->second.second);
    KG_RETURN_IF_ERROR(s.apply(c, it->second.first, var));
  }

  auto list = env("KG_PROVIDERS");
  const bool list_set = list && !list->empty();
  if (list_set) {
    std::vector<std::string> enabled;
    std::stringstream ss(*list);
    std::string item;
    std::string known;
    for (const auto& [name, _] : c.providers) known += (known.empty() ? "" : ", ") + name;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (item.empty()) continue;
      if (!c.providers.count(item)) {
        // A preset's name needs no table: KG_PROVIDERS=deepseek is a whole configuration.
        if (const Preset* pre = FindPreset(item)) {
          c.providers[item] = FromPreset(item, *pre);
        } else {
          std::string best;
          size_t best_d = 3;
          std::vector<std::string> candidates;
          for (const auto& [name, _] : c.providers) candidates.push_back(name);
          for (const auto& pre : kPresets) candidates.push_back(pre.name);
          for (const auto& cand : candidates) {
            size_t d = EditDistance(item, cand);
            if (d < best_d) best_d = d, best = cand;
          }
          return Status::Invalid(fmt::format("KG_PROVIDERS='{}': unknown provider '{}'{}; known: {}; presets: {}",
                                             *list, item,
                                             best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best), known,
                                             PresetNames()));
        }
      }
      if (std::find(enabled.begin(), enabled.end(), item) == enabled.end()) enabled.push_back(item);
    }
    if (enabled.empty()) {
      return Status::Invalid(fmt::format("KG_PROVIDERS='{}': expected a comma-separated list of: {} (or presets: {})",
                                         *list, known, PresetNames()));
    }
    c.enabled_providers = enabled;
  }
  KG_RETURN_IF_ERROR(FinishProviders(env, origin, list_set, c));

  c.concurrency_per_process_set = raw.count("KG_CONCURRENCY_PER_PROCESS") > 0;
  if (!raw.count("KG_WORKER_NODE_NAME")) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
    c.node_name = DefaultNodeName(host, c.role);
  }
  if (!raw.count("KG_MAX_PROCESSES_PER_PROVIDER")) {
    c.max_processes_per_provider = std::min(c.max_processes_per_provider, c.max_total_processes);
  }
  if (c.max_processes_per_provider > c.max_total_processes) {
    return Status::Invalid(fmt::format(
        "KG_MAX_PROCESSES_PER_PROVIDER='{}': must not exceed KG_MAX_TOTAL_PROCESSES ({})",
        c.max_processes_per_provider, c.max_total_processes));
  }
  if (c.chunk_overlap >= c.chunk_size / 2) {
    return Status::Invalid(fmt::format("KG_CHUNK_OVERLAP='{}': must be less than half of KG_CHUNK_SIZE ({})",
                                       c.chunk_overlap, c.chunk_size));
  }
  // The queue and the task store are shared by every node of a cluster or by none: a queue on
  // Redis with tasks in this host's SQLite file (or the reverse) would give each node its own half.
  if (!c.redis_host.empty() && c.db_host.empty()) {
    return Status::Invalid(fmt::format(
        "REDIS_HOST='{}' without DB_HOST: a queue shared on Redis needs the task store shared too; set DB_HOST "
        "(and DB_PORT, DB_USER, DB_PASSWORD, DB_NAME) to a MySQL or MariaDB server, or unset REDIS_HOST to run "
        "embedded",
        c.redis_host));
  }
  if (!c.db_host.empty() && c.redis_host.empty()) {
    return Status::Invalid(fmt::format(
        "DB_HOST='{}' without REDIS_HOST: a task store shared on MySQL needs the queue shared too; set REDIS_HOST "
        "(and REDIS_PORT, REDIS_PASSWORD, REDIS_DB) to a Redis server, or unset DB_HOST to run embedded",
        c.db_host));
  }
  return c;
}

std::string DescribeConfig(const Config& c) {
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += k + "=" + v + "\n"; };
  line("NODE_ROLE", RoleName(c.role));
  line("KG_WORKER_NODE_NAME", c.node_name);
  // Say where a cap will hold the configured count below what was asked (the supervisor clamps).
  std::string clamp;
  size_t providers = c.enabled_providers.size();
  if (c.workers_per_provider > c.max_processes_per_provider) {
    clamp = fmt::format("  # runs {} per provider: clamped by KG_MAX_PROCESSES_PER_PROVIDER",
                        c.max_processes_per_provider);
  } else if (providers > 0 && static_cast<size_t>(c.workers_per_provider) * providers >
                                  static_cast<size_t>(c.max_total_processes)) {
    clamp = fmt::format("  # {} providers x {} is more than KG_MAX_TOTAL_PROCESSES ({}): the total cap holds",
                        providers, c.workers_per_provider, c.max_total_processes);
  }
  line("KG_WORKERS_PER_PROVIDER", std::to_string(c.workers_per_provider) + clamp);
  line("KG_MAX_TOTAL_PROCESSES", std::to_string(c.max_total_processes));
  line("KG_MAX_PROCESSES_PER_PROVIDER", std::to_string(c.max_processes_per_provider));
  line("KG_PROVIDERS", c.KnownProviders());
  for (const auto& name : c.enabled_providers) line("provider." + name, DescribeProvider(c.providers.at(name)));
  BackendDescription backends = DescribeBackends(c);
  line("queue", backends.queue);
  line("task_store", backends.task_store);
  line("graph", backends.graph);
  line("REDIS_PASSWORD", MaskSecret(c.redis_password));
  line("DB_PASSWORD", MaskSecret(c.db_password));
  line("NEO4J_PASSWORD", MaskSecret(c.neo4j_password));
  line("KG_API_TOKEN", MaskSecret(c.api_token));
  line("KG_CONFIG", c.config_file);
  line("KG_DATA_DIR", c.data_dir);
  line("KG_HTTP_ADDR", c.http_addr);
  line("KG_HEALTH_ADDR", c.health_addr);
  if (!c.db_host.empty()) line("KG_DB_POOL_SIZE", std::to_string(c.db_pool_size));
  if (!c.neo4j_uri.empty()) {
    line("NEO4J_DATABASE", c.neo4j_database.empty() ? "(the server's default)" : c.neo4j_database);
    line("KG_NEO4J_POOL_SIZE", fmt::format("{}  # this node may hold up to {} Bolt connections", c.neo4j_pool_size,
                                           Neo4jConnectionsOfNode(c)));
    line("KG_NEO4J_MAX_CONNECTIONS", std::to_string(c.neo4j_max_connections));
  }
  if (!c.redis_host.empty()) line("KG_QUEUE_RETENTION_HOURS", std::to_string(c.queue_retention_hours));
  line("KG_LEASE_SECONDS", std::to_string(c.lease_seconds));
  line("KG_MAX_ATTEMPTS", std::to_string(c.max_attempts));
  line("KG_STOP_TIMEOUT_SECONDS", std::to_string(c.stop_timeout_seconds));
  line("KG_CONCURRENCY_PER_PROCESS",
       c.concurrency_per_process_set
           ? std::to_string(c.concurrency_per_process)
           : fmt::format("{}  # unset: {} for builtin, {} for an LLM provider", c.concurrency_per_process,
                         c.concurrency_per_process, kLlmConcurrencyPerProcess));
  line("KG_MAX_TASKS_PER_PROCESS", std::to_string(c.max_tasks_per_process));
  line("KG_MAX_RSS_MB", std::to_string(c.max_rss_mb));
  line("KG_MAX_BODY_MB", std::to_string(c.max_body_mb));
  line("KG_CHUNK_SIZE", std::to_string(c.chunk_size));
  line("KG_CHUNK_OVERLAP", std::to_string(c.chunk_overlap));
  line("KG_POISON_CRASHES", std::to_string(c.poison_crashes));
  line("KG_QUARANTINE_SECONDS", std::to_string(c.quarantine_seconds));
  line("KG_HEARTBEAT_SECONDS", std::to_string(c.heartbeat_seconds));
  line("KG_HTTP_HEADER_TIMEOUT_SECONDS", std::to_string(c.http_header_timeout_seconds));
  line("KG_HTTP_IDLE_TIMEOUT_SECONDS", std::to_string(c.http_idle_timeout_seconds));
  line("KG_HTTP_BODY_TIMEOUT_SECONDS", std::to_string(c.http_body_timeout_seconds));
  line("KG_HTTP_MIN_BODY_KBPS", std::to_string(c.http_min_body_kbps));
  line("KG_HTTP_MAX_CONNECTIONS", std::to_string(c.http_max_connections));
  line("KG_HTTP_MAX_CONNECTIONS_PER_CLIENT", std::to_string(c.http_max_connections_per_client));
  line("KG_HTTP_THREADS", std::to_string(c.http_threads));
  line("KG_HTTP_EVENT_HEARTBEAT_SECONDS", std::to_string(c.http_event_heartbeat_seconds));
  line("KG_LOG_LEVEL", c.log_level);
  line("KG_LOG_FORMAT", c.log_format);
  return out;
}

std::string DescribeProvider(const ProviderConfig& p) {
  if (p.kind == "openai") return DescribeOpenAi(p);
  return fmt::format("kind={} delay_ms={}{}", p.kind, p.delay_ms, p.fault.empty() ? "" : " fault=" + p.fault);
}

BackendDescription DescribeBackends(const Config& c) {
  auto password = [](const std::string& p) { return p.empty() ? std::string("none") : MaskSecret(p); };
  BackendDescription d;
  d.queue = c.redis_host.empty() ? "sqlite " + c.data_dir + "/queue.db"
                                 : fmt::format("redis {}:{} db {} keys {}:* (password {})", c.redis_host, c.redis_port,
                                               c.redis_db, c.redis_namespace, password(c.redis_password));
  std::string mysql = fmt::format("mysql {}@{}:{}/{} (password {})", c.db_user, c.db_host, c.db_port, c.db_name,
                                  password(c.db_password));
  d.task_store = c.db_host.empty() ? "sqlite " + c.data_dir + "/tasks.db" : mysql;
  d.graph = !c.neo4j_uri.empty() ? fmt::format("neo4j {}{} (user {}, password {})", bolt::Describe(Neo4jEndpointOf(c)),
                                               c.neo4j_database.empty() ? "" : " database " + c.neo4j_database,
                                               c.neo4j_user.empty() ? "none" : c.neo4j_user, password(c.neo4j_password))
            : c.db_host.empty()  ? "sqlite " + c.data_dir + "/graph.db"
                                 : mysql;
  return d;
}

RedisEndpoint RedisEndpointOf(const Config& c) {
  RedisEndpoint at;
  at.host = c.redis_host;
  at.port = c.redis_port;
  at.password = c.redis_password;
  at.db = c.redis_db;
  at.ns = c.redis_namespace;
  return at;
}

MysqlEndpoint MysqlEndpointOf(const Config& c) {
  MysqlEndpoint at;
  at.host = c.db_host;
  at.port = c.db_port;
  at.user = c.db_user;
  at.password = c.db_password;
  at.database = c.db_name;
  at.pool_size = c.db_pool_size;
  return at;
}

Neo4jEndpoint Neo4jEndpointOf(const Config& c) {
  Neo4jEndpoint at;
  (void)bolt::ParseUri(c.neo4j_uri, at);  // checked by LoadConfig
  at.user = c.neo4j_user;
  at.password = c.neo4j_password;
  at.database = c.neo4j_database;
  at.pool_size = c.neo4j_pool_size;
  return at;
}

int Neo4jConnectionsOfNode(const Config& c) {
  if (c.neo4j_uri.empty()) return 0;
  const int processes = 1 + (c.role == NodeRole::kWeb ? 0 : c.max_total_processes);
  return processes * c.neo4j_pool_size;
}

}  // namespace kg
