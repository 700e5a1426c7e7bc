#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>

#include "testing/testing.h"

namespace kg {
namespace {

EnvLookup Env(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

// Verifies the seed's defaults: role all, 1 process per provider, caps 50/10, builtin provider.
TEST(Config, DefaultsMatchTheSeed) {
  auto c = LoadConfig(Env({}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->role, NodeRole::kAll);
  EXPECT_EQ(c->workers_per_provider, 1);
  EXPECT_EQ(c->max_total_processes, 50);
  EXPECT_EQ(c->max_processes_per_provider, 10);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(c->node_name, DefaultNodeName(host, NodeRole::kAll));
  EXPECT_EQ(c->heartbeat_seconds, 5);
  EXPECT_EQ(c->http_addr, "127.0.0.1:8080");
  ASSERT_EQ(c->enabled_providers.size(), 1u);
  EXPECT_EQ(c->enabled_providers[0], "builtin");
}

// Verifies the default node name is unique per host and role (a web node and a worker node on one host
// used to both register as "worker-node"), stays a valid KG_WORKER_NODE_NAME, and the variable overrides it.
TEST(Config, DefaultNodeNameIsPerHostAndRole) {
  EXPECT_EQ(DefaultNodeName("box1", NodeRole::kWeb), "box1-web");
  EXPECT_EQ(DefaultNodeName("box1", NodeRole::kWorker), "box1-worker");
  EXPECT_EQ(DefaultNodeName("box1", NodeRole::kAll), "box1-all");
  EXPECT_EQ(DefaultNodeName("b\xc3\xa9 x/1", NodeRole::kWeb), "b---x-1-web");
  EXPECT_EQ(DefaultNodeName(std::string(100, 'h'), NodeRole::kWorker), std::string(57, 'h') + "-worker");
  auto web = LoadConfig(Env({{"NODE_ROLE", "web"}}));
  auto worker = LoadConfig(Env({{"NODE_ROLE", "worker"}}));
  ASSERT_TRUE(web.ok() && worker.ok());
  EXPECT_NE(web->node_name, worker->node_name);
  EXPECT_EQ(web->node_name.substr(web->node_name.size() - 4), "-web");
  // The default passes the variable's own check.
  auto again = LoadConfig(Env({{"KG_WORKER_NODE_NAME", worker->node_name}}));
  EXPECT_TRUE(again.ok()) << again.status().message();
  auto named = LoadConfig(Env({{"NODE_ROLE", "web"}, {"KG_WORKER_NODE_NAME", "front-1"}}));
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->node_name, "front-1");
}

// Verifies every kind of bad value is rejected with a message naming variable, value and what is accepted.
TEST(Config, BadValuesNameTheVariable) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string var, value, accepted;
  };
  std::vector<Case> cases = {
      {{{"KG_MAX_TOTAL_PROCESSES", "abc"}}, "KG_MAX_TOTAL_PROCESSES", "abc", "whole number"},
      {{{"KG_WORKERS_PER_PROVIDER", "-1"}}, "KG_WORKERS_PER_PROVIDER", "-1", "whole number"},
      {{{"KG_MAX_TOTAL_PROCESSES", "0"}}, "KG_MAX_TOTAL_PROCESSES", "0", "from 1"},
      {{{"NODE_ROLE", "master"}}, "NODE_ROLE", "master", "all, web, worker"},
      {{{"KG_PROVIDERS", "builtin,gemini"}}, "KG_PROVIDERS", "gemini", "known: builtin"},
      {{{"KG_MAX_PROCESSES_PER_PROVIDER", "20"}, {"KG_MAX_TOTAL_PROCESSES", "5"}},
       "KG_MAX_PROCESSES_PER_PROVIDER", "20", "must not exceed KG_MAX_TOTAL_PROCESSES"},
      {{{"KG_HTTP_ADDR", "localhost"}}, "KG_HTTP_ADDR", "localhost", "HOST:PORT"},
      {{{"KG_LEASE_SECONDS", "1.5"}}, "KG_LEASE_SECONDS", "1.5", "whole number"},
      {{{"KG_WORKER_NODE_NAME", "a b"}}, "KG_WORKER_NODE_NAME", "a b", "A-Z"},
  };
  for (const auto& c : cases) {
    auto r = LoadConfig(Env(c.env));
    ASSERT_FALSE(r.ok()) << c.var;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    const std::string& m = r.status().message();
    EXPECT_NE(m.find(c.var), std::string::npos) << m;
    EXPECT_NE(m.find(c.value), std::string::npos) << m;
    EXPECT_NE(m.find(c.accepted), std::string::npos) << m;
  }
}

// Verifies the TOML file declares providers and settings, and the environment overrides the file.
TEST(Config, TomlFileWithEnvironmentOverride) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), R"(
max_total_processes = 7
lease_seconds = 9
[providers.p1]
kind = "builtin"
delay_ms = 200
[providers.p2]
kind = "builtin"
)");
  auto c = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"KG_LEASE_SECONDS", "11"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->max_total_processes, 7);
  EXPECT_EQ(c->lease_seconds, 11);
  EXPECT_EQ(c->providers.at("p1").delay_ms, 200);
  EXPECT_EQ(c->enabled_providers, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_FALSE(c->HasProvider("builtin"));

  auto subset = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"KG_PROVIDERS", "p2"}}));
  ASSERT_TRUE(subset.ok());
  EXPECT_EQ(subset->enabled_providers, (std::vector<std::string>{"p2"}));
}

// Verifies a malformed TOML file or an unknown provider kind is a clear error.
TEST(Config, BadTomlIsAnError) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("bad.toml"), "[providers.x\nkind=");
  auto r = LoadConfig(Env({{"KG_CONFIG", dir.File("bad.toml")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("KG_CONFIG"), std::string::npos);
  testing::WriteFile(dir.File("kind.toml"), "[providers.x]\nkind = \"magic\"\n");
  r = LoadConfig(Env({{"KG_CONFIG", dir.File("kind.toml")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("kind='magic'"), std::string::npos) << r.status().message();
}

// Verifies a key nothing reads is an error naming it, its line and the nearest known key, at
// the top level and in a provider table (a misspelling would otherwise configure nothing).
TEST(Config, UnknownTomlKeysAreErrors) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("top.toml"), "max_total_processes = 7\nmax_total_proceses = 9\n");
  auto r = LoadConfig(Env({{"KG_CONFIG", dir.File("top.toml")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("unknown key 'max_total_proceses' (line 2)"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'max_total_processes'?"), std::string::npos) << m;

  testing::WriteFile(dir.File("prov.toml"), "[providers.p1]\nkind = \"builtin\"\ndelay = 5\n");
  r = LoadConfig(Env({{"KG_CONFIG", dir.File("prov.toml")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("[providers.p1]: unknown key 'delay' (line 3)"), std::string::npos)
      << r.status().message();

  testing::WriteFile(dir.File("far.toml"), "colour = \"blue\"\n");
  r = LoadConfig(Env({{"KG_CONFIG", dir.File("far.toml")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown key 'colour'"), std::string::npos);
  EXPECT_EQ(r.status().message().find("did you mean"), std::string::npos) << r.status().message();
}

// Verifies KG_CONFIG naming a directory is refused (it would read as an empty file and silently
// configure nothing).
TEST(Config, ConfigDirectoryIsAnError) {
  testing::TempDir dir;
  auto r = LoadConfig(Env({{"KG_CONFIG", dir.path()}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos) << r.status().message();
}

// Verifies check-config says when a cap holds the configured processes per provider below the
// value asked for (a new user set 99 and was told nothing).
TEST(Config, DescribeNamesTheCapThatClampsWorkers) {
  auto c = LoadConfig(Env({{"KG_WORKERS_PER_PROVIDER", "99"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::string d = DescribeConfig(*c);
  EXPECT_NE(d.find("KG_WORKERS_PER_PROVIDER=99  # runs 10 per provider: clamped by KG_MAX_PROCESSES_PER_PROVIDER"),
            std::string::npos) << d;
  auto fits = LoadConfig(Env({{"KG_WORKERS_PER_PROVIDER", "3"}}));
  ASSERT_TRUE(fits.ok());
  EXPECT_NE(DescribeConfig(*fits).find("KG_WORKERS_PER_PROVIDER=3\n"), std::string::npos);
}

// Verifies check-config output masks every secret.
TEST(Config, DescribeMasksSecrets) {
  auto c = LoadConfig(Env({{"KG_API_TOKEN", "tok-SECRET-1"}, {"REDIS_PASSWORD", "pw-SECRET-2"}}));
  ASSERT_TRUE(c.ok());
  std::string d = DescribeConfig(*c);
  EXPECT_EQ(d.find("SECRET"), std::string::npos) << d;
  EXPECT_NE(d.find("KG_API_TOKEN=****"), std::string::npos);
  EXPECT_NE(d.find("KG_MAX_TOTAL_PROCESSES=50"), std::string::npos);
}

// Verifies a set but empty or blank KG_API_TOKEN is a configuration error naming the variable
// (empty: `KG_API_TOKEN=$SECRET` with the secret missing would open the API silently; blank: it
// would lock every client out), while an unset one means no token.
TEST(Config, BlankApiTokenIsAnError) {
  for (const char* blank : {"", " ", "  \t", "\n"}) {
    auto r = LoadConfig(Env({{"KG_API_TOKEN", blank}}));
    ASSERT_FALSE(r.ok()) << "'" << blank << "'";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("KG_API_TOKEN"), std::string::npos) << r.status().message();
  }
  auto unset = LoadConfig(Env({}));
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->api_token, "");
  auto empty = LoadConfig(Env({{"KG_API_TOKEN", ""}}));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("KG_API_TOKEN is set but empty"), std::string::npos)
      << empty.status().message();
}

// Verifies KG_LOG_LEVEL takes any case and stores the level spdlog knows.
TEST(Config, LogLevelIsCaseInsensitive) {
  auto c = LoadConfig(Env({{"KG_LOG_LEVEL", "WARN"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->log_level, "warn");
  auto d = LoadConfig(Env({{"KG_LOG_LEVEL", "Debug"}}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->log_level, "debug");
  EXPECT_FALSE(LoadConfig(Env({{"KG_LOG_LEVEL", "loud"}})).ok());
}

// Verifies KG_LOG_FORMAT: text by default, text or json when set, anything else an error naming
// the variable and the choices.
TEST(Config, LogFormatIsTextOrJson) {
  auto c = LoadConfig(Env({}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->log_format, "text");
  for (const char* f : {"text", "json"}) {
    auto d = LoadConfig(Env({{"KG_LOG_FORMAT", f}}));
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(d->log_format, f);
  }
  for (const char* bad : {"xml", "", "JSONL"}) {
    auto e = LoadConfig(Env({{"KG_LOG_FORMAT", bad}}));
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.status().message().find("KG_LOG_FORMAT='" + std::string(bad) + "': expected text or json"),
              std::string::npos)
        << e.status().message();
  }
}

// Verifies a half-distributed configuration (a queue on Redis with the task store in this host's
// SQLite, or the reverse) is refused, naming what to set, while both or neither load.
TEST(Config, QueueAndTaskStoreAreSharedTogether) {
  auto redis_only = LoadConfig(Env({{"REDIS_HOST", "10.0.0.5"}}));
  ASSERT_FALSE(redis_only.ok());
  EXPECT_EQ(redis_only.status().code(), Code::kInvalidArgument);
  EXPECT_NE(redis_only.status().message().find("REDIS_HOST='10.0.0.5' without DB_HOST"), std::string::npos)
      << redis_only.status().message();
  EXPECT_NE(redis_only.status().message().find("set DB_HOST"), std::string::npos);
  auto db_only = LoadConfig(Env({{"DB_HOST", "db.internal"}, {"NODE_ROLE", "worker"}}));
  ASSERT_FALSE(db_only.ok());
  EXPECT_NE(db_only.status().message().find("DB_HOST='db.internal' without REDIS_HOST"), std::string::npos)
      << db_only.status().message();
  EXPECT_NE(db_only.status().message().find("set REDIS_HOST"), std::string::npos);
  auto both = LoadConfig(Env({{"REDIS_HOST", "10.0.0.5"}, {"DB_HOST", "db.internal"}, {"REDIS_DB", "3"},
                              {"KG_REDIS_NAMESPACE", "kg-staging"}, {"DB_NAME", "kg_prod"}}));
  ASSERT_TRUE(both.ok()) << both.status().message();
  EXPECT_EQ(both->redis_db, 3);
  EXPECT_EQ(both->redis_namespace, "kg-staging");
  BackendDescription d = DescribeBackends(*both);
  EXPECT_EQ(d.queue, "redis 10.0.0.5:6379 db 3 keys kg-staging:* (password none)");
  EXPECT_EQ(d.task_store, "mysql kgflow@db.internal:3306/kg_prod (password none)");
  EXPECT_EQ(d.graph, d.task_store);  // no NEO4J_URI: the graph lives in the same database
  ASSERT_TRUE(LoadConfig(Env({})).ok());
}

// Verifies backend settings that cannot work are refused at start naming the variable: a host
// with a space, a database name that is not a plain identifier (it cannot be a bound parameter), a key
// namespace with a colon or braces (it would break the per-provider hash tags).
TEST(Config, BadBackendSettingsNameTheVariable) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string var;
  };
  std::vector<Case> cases = {
      {{{"REDIS_HOST", ""}, {"DB_HOST", "db"}}, "DB_HOST='db' without REDIS_HOST"},  // empty is unset
      {{{"REDIS_HOST", "r s"}, {"DB_HOST", "db"}}, "REDIS_HOST='r s'"},
      {{{"REDIS_HOST", "r"}, {"DB_HOST", "db; DROP"}}, "DB_HOST='db; DROP'"},
      {{{"REDIS_HOST", "r"}, {"DB_HOST", "db"}, {"DB_NAME", "kg`; DROP DATABASE x"}}, "DB_NAME="},
      {{{"REDIS_HOST", "r"}, {"DB_HOST", "db"}, {"DB_NAME", "kg-flow"}}, "DB_NAME='kg-flow'"},
      {{{"REDIS_HOST", "r"}, {"DB_HOST", "db"}, {"KG_REDIS_NAMESPACE", "kg:{x}"}}, "KG_REDIS_NAMESPACE="},
      {{{"REDIS_HOST", "r"}, {"DB_HOST", "db"}, {"REDIS_DB", "-1"}}, "REDIS_DB="},
      {{{"REDIS_HOST", "r"}, {"DB_HOST", "db"}, {"KG_DB_POOL_SIZE", "0"}}, "KG_DB_POOL_SIZE="},
      {{{"NEO4J_URI", "http://127.0.0.1:7474"}}, "NEO4J_URI='http://127.0.0.1:7474'"},
      {{{"NEO4J_URI", "neo4j+s://x.databases.neo4j.io"}}, "NEO4J_URI='neo4j+s://"},
      {{{"NEO4J_URI", "bolt://host:99999"}}, "NEO4J_URI='bolt://host:99999'"},
      {{{"NEO4J_URI", "bolt://"}}, "NEO4J_URI='bolt://'"},
      {{{"NEO4J_URI", "bolt://neo4j:hunter2@h"}}, "NEO4J_URI: credentials do not go in the URI"},
      {{{"NEO4J_URI", "bolt://h"}, {"NEO4J_DATABASE", "kg`}) DETACH DELETE n"}}, "NEO4J_DATABASE="},
      {{{"NEO4J_URI", "bolt://h"}, {"NEO4J_DATABASE", "System"}}, "NEO4J_DATABASE='System': the system database"},
      {{{"NEO4J_URI", "bolt://h"}, {"NEO4J_DATABASE", "kg"}}, "NEO4J_DATABASE='kg': expected a Neo4j database name"},
      {{{"NEO4J_URI", "bolt://h"}, {"KG_NEO4J_POOL_SIZE", "0"}}, "KG_NEO4J_POOL_SIZE="},
      {{{"NEO4J_URI", "bolt://h"}, {"KG_NEO4J_MAX_CONNECTIONS", "-1"}}, "KG_NEO4J_MAX_CONNECTIONS="},
  };
  for (const auto& c : cases) {
    auto r = LoadConfig(Env(c.env));
    ASSERT_FALSE(r.ok()) << c.var;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind(c.var, 0), 0u) << r.status().message();
  }
}

// Verifies NEO4J_URI selects the Neo4j graph (alone, or beside Redis and MySQL), with the
// endpoint, the database and the pool as set, and the node's connection budget as processes x
// pool (the API process, plus each worker process unless the role is web).
TEST(Config, Neo4jGraph) {
  auto c = LoadConfig(Env({{"NEO4J_URI", "neo4j://graph.internal"}, {"NEO4J_USER", "kg"},
                           {"NEO4J_PASSWORD", "pw-SECRET-n"}, {"NEO4J_DATABASE", "kg-prod"},
                           {"KG_NEO4J_POOL_SIZE", "3"}, {"KG_MAX_TOTAL_PROCESSES", "8"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  Neo4jEndpoint at = Neo4jEndpointOf(*c);
  EXPECT_EQ(at.scheme, "neo4j");
  EXPECT_EQ(at.host, "graph.internal");
  EXPECT_EQ(at.port, 7687);
  EXPECT_EQ(at.user, "kg");
  EXPECT_EQ(at.password, "pw-SECRET-n");
  EXPECT_EQ(at.database, "kg-prod");
  EXPECT_EQ(at.pool_size, 3);
  EXPECT_EQ(Neo4jConnectionsOfNode(*c), (1 + 8) * 3);
  BackendDescription d = DescribeBackends(*c);
  EXPECT_EQ(d.graph, "neo4j neo4j://graph.internal:7687 database kg-prod (user kg, password ****)");
  EXPECT_EQ(d.queue.rfind("sqlite ", 0), 0u);  // the graph alone may be shared
  std::string text = DescribeConfig(*c);
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
  EXPECT_NE(text.find("KG_NEO4J_POOL_SIZE=3  # this node may hold up to 27 Bolt connections"), std::string::npos)
      << text;

  auto web = LoadConfig(Env({{"NEO4J_URI", "bolt://127.0.0.1:7688"}, {"NODE_ROLE", "web"}}));
  ASSERT_TRUE(web.ok()) << web.status().message();
  EXPECT_EQ(Neo4jEndpointOf(*web).port, 7688);
  EXPECT_EQ(Neo4jConnectionsOfNode(*web), 2);  // the API process alone, default pool 2
  EXPECT_EQ(Neo4jConnectionsOfNode(*LoadConfig(Env({}))), 0);
  // An empty database is unset, as an empty NEO4J_URI is.
  auto empty_db = LoadConfig(Env({{"NEO4J_URI", "bolt://h"}, {"NEO4J_DATABASE", ""}}));
  ASSERT_TRUE(empty_db.ok()) << empty_db.status().message();
  EXPECT_EQ(Neo4jEndpointOf(*empty_db).database, "");
  EXPECT_EQ(DescribeBackends(*LoadConfig(Env({{"NEO4J_URI", "bolt://[::1]:7690"}, {"NEO4J_USER", ""}}))).graph,
            "neo4j bolt://[::1]:7690 (user none, password none)");
}

// Verifies the database and Redis passwords appear nowhere in check-config's output.
TEST(Config, DescribeMasksBackendPasswords) {
  auto c = LoadConfig(Env({{"REDIS_HOST", "r"}, {"DB_HOST", "db"}, {"REDIS_PASSWORD", "pw-SECRET-r"},
                           {"DB_PASSWORD", "pw-SECRET-db"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::string d = DescribeConfig(*c);
  EXPECT_EQ(d.find("SECRET"), std::string::npos) << d;
  EXPECT_NE(d.find("queue=redis r:6379 db 0 keys kg:* (password ****)"), std::string::npos) << d;
}

// Verifies a secret in the KG_CONFIG file (a file gets copied and committed) is refused naming the
// key and the variable to use, and its value appears nowhere in the message.
TEST(Config, SecretsInTheFileAreRefused) {
  testing::TempDir dir;
  for (const char* key : {"db_password", "redis_password", "api_token", "neo4j_password"}) {
    testing::WriteFile(dir.File("kg.toml"), std::string(key) + " = \"s3cr3t-in-file\"\n");
    auto c = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}}));
    ASSERT_FALSE(c.ok()) << key;
    EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
    EXPECT_NE(c.status().message().find(std::string("key '") + key + "': secrets are read from the environment only"),
              std::string::npos) << c.status().message();
    EXPECT_EQ(c.status().message().find("s3cr3t"), std::string::npos) << c.status().message();
  }
}

// ---- LLM providers (kind "openai") ----

// The value of a key no message or description may ever contain.
constexpr char kKey[] = "sk-DISTINCTIVE-7f3a9c";

// Verifies that a table with no kind named almost like a preset is refused as the typo it is (not
// run as the offline builtin extractor under that name), and that kind = "builtin" keeps the name.
TEST(ConfigProviders, TableNamedLikeAPresetIsATypo) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("typo.toml"), "[providers.deepseak]\n");
  auto r = LoadConfig(Env({{"KG_CONFIG", dir.File("typo.toml")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("did you mean 'deepseek'"), std::string::npos) << r.status().message();
  testing::WriteFile(dir.File("meant.toml"), "[providers.deepseak]\nkind = \"builtin\"\n");
  r = LoadConfig(Env({{"KG_CONFIG", dir.File("meant.toml")}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->providers.at("deepseak").kind, "builtin");
}

// Verifies the chunks a worker keeps in flight: unset, 4 for builtin and 32 for an LLM provider
// (I/O-bound); KG_CONCURRENCY_PER_PROCESS, when given, holds for both, up to 1000.
TEST(ConfigProviders, ConcurrencyDependsOnTheKindUnlessSet) {
  auto c = LoadConfig(Env({{"KG_PROVIDERS", "builtin,deepseek"}, {"DEEPSEEK_API_KEY", kKey}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(ConcurrencyOf(*c, c->providers.at("builtin")), 4);
  EXPECT_EQ(ConcurrencyOf(*c, c->providers.at("deepseek")), kLlmConcurrencyPerProcess);
  c = LoadConfig(
      Env({{"KG_PROVIDERS", "builtin,deepseek"}, {"DEEPSEEK_API_KEY", kKey}, {"KG_CONCURRENCY_PER_PROCESS", "500"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(ConcurrencyOf(*c, c->providers.at("builtin")), 500);
  EXPECT_EQ(ConcurrencyOf(*c, c->providers.at("deepseek")), 500);
  EXPECT_FALSE(LoadConfig(Env({{"KG_CONCURRENCY_PER_PROCESS", "1001"}})).ok());
}


// Verifies KG_PROVIDERS naming a preset with no TOML table creates the provider from the preset,
// with the key read from the preset's variable, and every preset loads with its documented
// defaults: each hosted one needs its key, the thinking switches are in extra_body where the
// default model thinks, ollama needs no key and runs one request at a time.
TEST(ConfigProviders, PresetsFromKgProvidersAlone) {
  auto c = LoadConfig(Env({{"KG_PROVIDERS", "deepseek"}, {"DEEPSEEK_API_KEY", kKey}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->enabled_providers, (std::vector<std::string>{"deepseek"}));
  const ProviderConfig& p = c->providers.at("deepseek");
  EXPECT_EQ(p.kind, "openai");
  EXPECT_EQ(p.preset, "deepseek");
  EXPECT_EQ(p.base_url, "https://api.deepseek.com");
  EXPECT_EQ(p.model, "deepseek-chat");
  EXPECT_EQ(p.api_key_env, "DEEPSEEK_API_KEY");
  EXPECT_EQ(p.api_key, kKey);
  EXPECT_EQ(p.max_concurrency, 100);
  EXPECT_EQ(p.rpm, 0);
  EXPECT_EQ(p.tpm, 0);
  EXPECT_TRUE(p.json_mode);
  EXPECT_EQ(p.extra_body, "");  // deepseek-chat is the non-thinking alias
  EXPECT_EQ(p.price_in_per_mtok, 0);
  EXPECT_EQ(p.price_out_per_mtok, 0);

  struct Expect {
    std::string preset, key_env, base_url, model, extra_body;
  };
  std::vector<Expect> all = {
      {"deepseek", "DEEPSEEK_API_KEY", "https://api.deepseek.com", "deepseek-chat", ""},
      {"openai", "OPENAI_API_KEY", "https://api.openai.com/v1", "gpt-4.1-mini", ""},
      {"qwen", "DASHSCOPE_API_KEY", "https://dashscope.aliyuncs.com/compatible-mode/v1", "qwen-plus",
       R"({"enable_thinking":false})"},
      {"moonshot", "MOONSHOT_API_KEY", "https://api.moonshot.cn/v1", "moonshot-v1-32k", ""},
      {"zhipu", "ZHIPUAI_API_KEY", "https://open.bigmodel.cn/api/paas/v4", "glm-4.7",
       R"({"thinking":{"type":"disabled"}})"},
      {"ollama", "", "http://127.0.0.1:11434/v1", "qwen3:8b", R"({"reasoning_effort":"none"})"},
  };
  for (const auto& e : all) {
    std::map<std::string, std::string> env = {{"KG_PROVIDERS", e.preset}};
    if (!e.key_env.empty()) {
      auto missing = LoadConfig(Env(env));
      ASSERT_FALSE(missing.ok()) << e.preset;
      EXPECT_NE(missing.status().message().find("needs " + e.key_env + " (unset)"), std::string::npos)
          << missing.status().message();
      env[e.key_env] = kKey;
    }
    auto r = LoadConfig(Env(env));
    ASSERT_TRUE(r.ok()) << e.preset << ": " << r.status().message();
    const ProviderConfig& q = r->providers.at(e.preset);
    EXPECT_EQ(q.preset, e.preset);
    EXPECT_EQ(q.api_key_env, e.key_env);
    EXPECT_EQ(q.api_key, e.key_env.empty() ? "" : kKey);
    EXPECT_EQ(q.base_url, e.base_url);
    EXPECT_EQ(q.model, e.model);
    EXPECT_EQ(q.extra_body, e.extra_body) << e.preset;
    EXPECT_GE(q.timeout_s, 60) << e.preset;
    EXPECT_GT(q.max_output_tokens, 0) << e.preset;
    EXPECT_GT(q.max_concurrency, 0) << e.preset;
  }
  auto ollama = LoadConfig(Env({{"KG_PROVIDERS", "ollama"}}));
  ASSERT_TRUE(ollama.ok());
  EXPECT_EQ(ollama->providers.at("ollama").max_concurrency, 1);
  EXPECT_GT(ollama->providers.at("ollama").timeout_s, c->providers.at("deepseek").timeout_s);

  // Presets and the builtin provider together, in the order given.
  auto both = LoadConfig(Env({{"KG_PROVIDERS", "ollama, builtin"}}));
  ASSERT_TRUE(both.ok()) << both.status().message();
  EXPECT_EQ(both->enabled_providers, (std::vector<std::string>{"ollama", "builtin"}));
  EXPECT_EQ(both->providers.at("builtin").kind, "builtin");
}

// Verifies the vllm preset has no model of its own: without VLLM_MODEL (or model in its table)
// start-up fails naming VLLM_MODEL; its key is optional, and read when set.
TEST(ConfigProviders, VllmNeedsAModelNotAKey) {
  auto r = LoadConfig(Env({{"KG_PROVIDERS", "vllm"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("KG_PROVIDERS: provider vllm has no model; set VLLM_MODEL"), std::string::npos)
      << r.status().message();
  auto ok = LoadConfig(Env({{"KG_PROVIDERS", "vllm"}, {"VLLM_MODEL", "Qwen/Qwen3-32B"}}));
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->providers.at("vllm").model, "Qwen/Qwen3-32B");
  EXPECT_EQ(ok->providers.at("vllm").api_key, "");
  EXPECT_NE(DescribeConfig(*ok).find("key=VLLM_API_KEY(unset, optional)"), std::string::npos) << DescribeConfig(*ok);
  auto keyed = LoadConfig(Env({{"KG_PROVIDERS", "vllm"}, {"VLLM_MODEL", "m"}, {"VLLM_API_KEY", kKey}}));
  ASSERT_TRUE(keyed.ok());
  EXPECT_EQ(keyed->providers.at("vllm").api_key, kKey);
  // In a table too.
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.vllm]\nmodel = \"meta-llama/Llama-3.1-8B-Instruct\"\n");
  auto table = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}}));
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(table->providers.at("vllm").model, "meta-llama/Llama-3.1-8B-Instruct");
}

// Verifies an enabled provider whose key variable is unset, empty, blank or holds a line break is
// a start-up error naming the variable (never the value), that a provider the file declares but
// KG_PROVIDERS leaves out needs no key and none of its variables is read, and that a web node (it
// never calls a provider) needs no key.
TEST(ConfigProviders, MissingKeyIsAnError) {
  struct Case {
    std::optional<std::string> key;
    std::string says;
  };
  for (const Case& k : {Case{std::nullopt, "(unset)"}, Case{"", "(set but empty)"}, Case{"  ", "(set but blank)"}}) {
    std::map<std::string, std::string> env = {{"KG_PROVIDERS", "deepseek"}};
    if (k.key) env["DEEPSEEK_API_KEY"] = *k.key;
    auto r = LoadConfig(Env(env));
    ASSERT_FALSE(r.ok()) << k.says;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("KG_PROVIDERS: provider deepseek needs DEEPSEEK_API_KEY " + k.says, 0), 0u)
        << r.status().message();
  }
  auto newline = LoadConfig(Env({{"KG_PROVIDERS", "deepseek"}, {"DEEPSEEK_API_KEY", std::string(kKey) + "\n"}}));
  ASSERT_FALSE(newline.ok());
  EXPECT_NE(newline.status().message().find("DEEPSEEK_API_KEY holds white space or control characters"),
            std::string::npos)
      << newline.status().message();
  EXPECT_EQ(newline.status().message().find("DISTINCTIVE"), std::string::npos) << newline.status().message();

  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.deepseek]\n[providers.openai]\n");
  auto all = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"DEEPSEEK_API_KEY", kKey}}));
  ASSERT_FALSE(all.ok());  // both enabled: openai needs its key too, named with the table that declares it
  EXPECT_NE(all.status().message().find("[providers.openai]: provider openai needs OPENAI_API_KEY (unset)"),
            std::string::npos)
      << all.status().message();
  // The environment of a provider left out is not read: a bad OPENAI_BASE_URL set for another tool
  // does not matter on a node that runs deepseek only.
  auto subset = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"KG_PROVIDERS", "deepseek"},
                                {"DEEPSEEK_API_KEY", kKey}, {"OPENAI_BASE_URL", "not a url"}, {"OPENAI_API_KEY", "k"}}));
  ASSERT_TRUE(subset.ok()) << subset.status().message();
  EXPECT_EQ(subset->enabled_providers, (std::vector<std::string>{"deepseek"}));
  EXPECT_EQ(subset->providers.at("openai").base_url, "https://api.openai.com/v1");
  EXPECT_EQ(subset->providers.at("openai").api_key, "");  // a secret this node does not need is not held

  auto web = LoadConfig(Env({{"KG_PROVIDERS", "deepseek"}, {"NODE_ROLE", "web"}}));
  ASSERT_TRUE(web.ok()) << web.status().message();
  EXPECT_NE(DescribeConfig(*web).find("key=DEEPSEEK_API_KEY(unset)"), std::string::npos);
  EXPECT_FALSE(LoadConfig(Env({{"KG_PROVIDERS", "deepseek"}, {"NODE_ROLE", "worker"}})).ok());
}

// Verifies every key of a [providers.NAME] table over a preset (under another name), a table named
// like a preset with no kind, and a provider declared from scratch with kind = "openai".
TEST(ConfigProviders, TomlTables) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("extract.md"), "version: mine\n--- system\nS\n--- user\n{{text}}\n");
  testing::WriteFile(dir.File("kg.toml"), R"(
[providers.ds-fast]
preset = "deepseek"
model = "deepseek-v4-flash"
base_url = "https://proxy.example.com/deepseek/"
max_concurrency = 7
rpm = 600
tpm = 2000000
timeout_s = 90
max_output_tokens = 2048
json_mode = false
temperature = 0.3
price_in_per_mtok = 0.27
price_out_per_mtok = 1.1
prompt_file = "extract.md"
extra_body = {thinking = {type = "disabled"}}
max_retries = 2

[providers.qwen]
max_concurrency = 5

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:9000/v1"
model = "my-model"
api_key_env = "LOCAL_LLM_KEY"
)");
  auto c = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"DEEPSEEK_API_KEY", kKey},
                           {"DASHSCOPE_API_KEY", "dk"}, {"LOCAL_LLM_KEY", "lk"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->enabled_providers, (std::vector<std::string>{"ds-fast", "local", "qwen"}));
  const ProviderConfig& p = c->providers.at("ds-fast");
  EXPECT_EQ(p.kind, "openai");
  EXPECT_EQ(p.preset, "deepseek");
  EXPECT_EQ(p.model, "deepseek-v4-flash");
  EXPECT_EQ(p.base_url, "https://proxy.example.com/deepseek");  // the trailing slash dropped
  EXPECT_EQ(p.api_key_env, "DEEPSEEK_API_KEY");                 // from the preset
  EXPECT_EQ(p.api_key, kKey);
  EXPECT_EQ(p.max_concurrency, 7);
  EXPECT_EQ(p.rpm, 600);
  EXPECT_EQ(p.tpm, 2000000);
  EXPECT_EQ(p.timeout_s, 90);
  EXPECT_EQ(p.max_output_tokens, 2048);
  EXPECT_FALSE(p.json_mode);
  EXPECT_DOUBLE_EQ(p.temperature, 0.3);
  EXPECT_DOUBLE_EQ(p.price_in_per_mtok, 0.27);
  EXPECT_DOUBLE_EQ(p.price_out_per_mtok, 1.1);
  EXPECT_EQ(p.prompt_file, dir.File("extract.md"));  // relative to the file that names it
  EXPECT_EQ(p.extra_body, R"({"thinking":{"type":"disabled"}})");
  EXPECT_EQ(p.max_retries, 2);

  const ProviderConfig& q = c->providers.at("qwen");
  EXPECT_EQ(q.preset, "qwen");
  EXPECT_EQ(q.kind, "openai");
  EXPECT_EQ(q.max_concurrency, 5);
  EXPECT_EQ(q.model, "qwen-plus");
  EXPECT_EQ(q.extra_body, R"({"enable_thinking":false})");

  const ProviderConfig& l = c->providers.at("local");
  EXPECT_EQ(l.preset, "");
  EXPECT_EQ(l.base_url, "http://127.0.0.1:9000/v1");
  EXPECT_EQ(l.model, "my-model");
  EXPECT_EQ(l.api_key, "lk");
  EXPECT_EQ(l.timeout_s, 120);  // the defaults of ProviderConfig
  EXPECT_EQ(l.max_retries, 4);

  // A table named like a preset but of kind builtin stays builtin.
  testing::WriteFile(dir.File("b.toml"), "[providers.openai]\nkind = \"builtin\"\n");
  auto b = LoadConfig(Env({{"KG_CONFIG", dir.File("b.toml")}}));
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->providers.at("openai").kind, "builtin");
}

// Verifies extra_body as a string of JSON is stored as compact JSON object text, that an empty
// object replaces a preset's extra_body with none, and that what is not an object, or would replace
// members kgflow sets, is refused.
TEST(ConfigProviders, ExtraBody) {
  testing::TempDir dir;
  auto load = [&](const std::string& body) {
    testing::WriteFile(dir.File("kg.toml"), "[providers.zhipu]\nextra_body = " + body + "\n");
    return LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"ZHIPUAI_API_KEY", kKey}}));
  };
  auto json_text = load(R"('{ "thinking": {"type": "disabled"}, "top_k": 20 }')");
  ASSERT_TRUE(json_text.ok()) << json_text.status().message();
  EXPECT_EQ(json_text->providers.at("zhipu").extra_body, R"({"thinking":{"type":"disabled"},"top_k":20})");
  auto arrays = load(R"({stop = ["a", "b"], chat_template_kwargs = {enable_thinking = false}})");
  ASSERT_TRUE(arrays.ok()) << arrays.status().message();
  EXPECT_EQ(arrays->providers.at("zhipu").extra_body,
            R"({"chat_template_kwargs":{"enable_thinking":false},"stop":["a","b"]})");
  auto none = load("{}");
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_EQ(none->providers.at("zhipu").extra_body, "");

  struct Bad {
    std::string body, says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"'[1, 2]'", "extra_body: expected a JSON object"},
           {"'{\"a\": '", "extra_body='{\"a\": ': expected a JSON object"},
           {"42", "extra_body=42: expected a TOML inline table"},
           {"{messages = []}", "member 'messages' is set by kgflow"},
           {"'{\"model\": \"x\"}'", "member 'model' is set by kgflow and cannot be replaced (use the model key)"},
           {"{when = 1979-05-27}", "a date or time has no JSON form"},
       }) {
    auto r = load(bad.body);
    ASSERT_FALSE(r.ok()) << bad.body;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("[providers.zhipu] extra_body"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(bad.says), std::string::npos) << r.status().message();
  }
}

// Verifies <NAME>_BASE_URL and <NAME>_MODEL (the name upper-cased, '-' as '_') override the
// preset and the file for every openai provider, and a bad override names the variable.
TEST(ConfigProviders, EnvironmentOverrides) {
  auto c = LoadConfig(Env({{"KG_PROVIDERS", "deepseek"}, {"DEEPSEEK_API_KEY", kKey},
                           {"DEEPSEEK_BASE_URL", "https://gateway.example.com/v1/"},
                           {"DEEPSEEK_MODEL", "deepseek-v4-pro"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->providers.at("deepseek").base_url, "https://gateway.example.com/v1");
  EXPECT_EQ(c->providers.at("deepseek").model, "deepseek-v4-pro");

  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.my-llm]\nkind = \"openai\"\n");
  auto from_env = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"MY_LLM_BASE_URL", "http://[::1]:8000/v1"},
                                  {"MY_LLM_MODEL", "m1"}}));
  ASSERT_TRUE(from_env.ok()) << from_env.status().message();
  EXPECT_EQ(from_env->providers.at("my-llm").base_url, "http://[::1]:8000/v1");
  EXPECT_EQ(from_env->providers.at("my-llm").model, "m1");
  EXPECT_EQ(from_env->providers.at("my-llm").api_key_env, "");  // no key: a local server
  auto no_url = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"MY_LLM_MODEL", "m1"}}));
  ASSERT_FALSE(no_url.ok());
  EXPECT_NE(no_url.status().message().find("provider my-llm has no base_url; set base_url in KG_CONFIG='" +
                                           dir.File("kg.toml") + "' [providers.my-llm] or MY_LLM_BASE_URL"),
            std::string::npos)
      << no_url.status().message();

  struct Bad {
    std::string var, value, says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"DEEPSEEK_BASE_URL", "api.deepseek.com", "DEEPSEEK_BASE_URL='api.deepseek.com': expected http://"},
           {"DEEPSEEK_BASE_URL", "https://api.deepseek.com/chat/completions", "without /chat/completions"},
           {"DEEPSEEK_MODEL", "deepseek chat", "DEEPSEEK_MODEL='deepseek chat': expected the model's name"},
       }) {
    auto r = LoadConfig(Env({{"KG_PROVIDERS", "deepseek"}, {"DEEPSEEK_API_KEY", kKey}, {bad.var, bad.value}}));
    ASSERT_FALSE(r.ok()) << bad.value;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(bad.says), std::string::npos) << r.status().message();
  }
}

// Verifies each bad value of a provider table is refused naming the file, the table, the key, the
// value and what is accepted; a misspelled key gets "did you mean"; an unknown name in
// KG_PROVIDERS suggests the nearest preset.
TEST(ConfigProviders, BadTableValuesNameTheKey) {
  testing::TempDir dir;
  struct Case {
    std::string table, says;
  };
  std::vector<Case> cases = {
      {"rpm = -1", "[providers.p] rpm=-1: expected a whole number from 0 to 100000000"},
      {"rpm = \"100\"", "[providers.p] rpm='100': expected a whole number"},
      {"tpm = 1.5", "[providers.p] tpm=1.5: expected a whole number"},
      {"max_concurrency = 100001", "[providers.p] max_concurrency=100001: expected a whole number from 0"},
      {"timeout_s = 0", "[providers.p] timeout_s=0: expected a whole number from 1 to 3600"},
      {"max_output_tokens = 0", "[providers.p] max_output_tokens=0: expected a whole number from 1"},
      {"max_retries = 21", "[providers.p] max_retries=21: expected a whole number from 0 to 20"},
      {"temperature = 3", "[providers.p] temperature=3: expected a number from 0 to 2"},
      {"temperature = nan", "[providers.p] temperature=nan: expected a number"},
      {"price_in_per_mtok = -0.5", "[providers.p] price_in_per_mtok=-0.5: expected a number from 0"},
      {"json_mode = \"yes\"", "[providers.p] json_mode='yes': expected true or false"},
      {"model = \"\"", "[providers.p] model='': expected the model's name"},
      {"base_url = \"ftp://h/v1\"", "[providers.p] base_url='ftp://h/v1': expected http://HOST"},
      {"base_url = \"https://\"", "[providers.p] base_url='https://': expected a host"},
      {"base_url = \"https://h:99999/v1\"", "base_url='https://h:99999/v1': expected a port from 1 to 65535"},
      {"base_url = \"https://h:/v1\"", "expected a port from 1 to 65535"},
      {"base_url = \"https://h/v1?x=1\"", "expected no query or fragment"},
      {"base_url = \"https://h/v1/chat/completions\"", "without /chat/completions (kgflow appends it)"},
      {"base_url = \"https://h w/v1\"", "without spaces"},
      {"preset = \"gemini\"", "[providers.p] preset='gemini': expected one of deepseek, openai, qwen, moonshot, zhipu, "
                              "ollama, vllm"},
      {"kind = \"magic\"", "[providers.p] kind='magic': expected one of builtin, openai"},
      {"kind = \"builtin\"\npreset = \"qwen\"", "kind='builtin' with preset='qwen'"},
      {"modle = \"x\"", "[providers.p]: unknown key 'modle' (line 3); did you mean 'model'?"},
      {"delay_ms = 5", "[providers.p]: unknown key 'delay_ms'"},  // a builtin key in an openai table
      {"prompt_file = \"missing.md\"", "[providers.p] prompt_file='missing.md': cannot open"},
      {"prompt_file = \".\"", "is not a regular file"},
      {"api_key_env = \"deepseek-key\"", "[providers.p] api_key_env: expected the NAME of the environment variable"},
  };
  for (const auto& k : cases) {
    testing::WriteFile(dir.File("kg.toml"), "[providers.p]\npreset = \"deepseek\"\n" + k.table + "\n");
    if (k.table.rfind("kind", 0) == 0 || k.table.rfind("preset", 0) == 0) {
      testing::WriteFile(dir.File("kg.toml"), "[providers.p]\n" + k.table + "\n");
    }
    auto r = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"DEEPSEEK_API_KEY", kKey}}));
    ASSERT_FALSE(r.ok()) << k.table;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(dir.File("kg.toml")), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(k.says), std::string::npos) << k.table << "\n" << r.status().message();
  }
  // An openai provider's name becomes part of variable names.
  testing::WriteFile(dir.File("kg.toml"), "[providers.\"my.llm\"]\nkind = \"openai\"\n");
  auto name = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}}));
  ASSERT_FALSE(name.ok());
  EXPECT_NE(name.status().message().find("[providers.my.llm]: an openai provider's name must be"), std::string::npos)
      << name.status().message();
  // From scratch without a model: named with the variable that would supply it.
  testing::WriteFile(dir.File("kg.toml"),
                     "[providers.mine]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n");
  auto no_model = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}}));
  ASSERT_FALSE(no_model.ok());
  EXPECT_NE(no_model.status().message().find("provider mine has no model; set MINE_MODEL"), std::string::npos)
      << no_model.status().message();

  auto typo = LoadConfig(Env({{"KG_PROVIDERS", "deepsek"}}));
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("unknown provider 'deepsek' (did you mean 'deepseek'?)"), std::string::npos)
      << typo.status().message();
  EXPECT_NE(typo.status().message().find("presets: deepseek, openai"), std::string::npos) << typo.status().message();
}

// Verifies check-config shows one line per enabled openai provider with its settings and the key's
// variable and state, never the key; says when cost is not computed; and warns about plain http://
// to another host (not to this one).
TEST(ConfigProviders, DescribeShowsProvidersNeverKeys) {
  auto c = LoadConfig(Env({{"KG_PROVIDERS", "deepseek,ollama"}, {"DEEPSEEK_API_KEY", kKey}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::string d = DescribeConfig(*c);
  EXPECT_EQ(d.find("DISTINCTIVE"), std::string::npos) << d;
  EXPECT_NE(d.find("KG_PROVIDERS=deepseek, ollama\n"), std::string::npos) << d;
  EXPECT_NE(d.find("provider.deepseek=kind=openai preset=deepseek model=deepseek-chat "
                   "base_url=https://api.deepseek.com key=DEEPSEEK_API_KEY(set, ****) max_concurrency=100 rpm=0 tpm=0 "
                   "timeout_s=300 max_output_tokens=4096 json_mode=true temperature=0 max_retries=4 "
                   "cost=off(no prices) extra_body=none prompt=compiled-in\n"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("provider.ollama=kind=openai preset=ollama model=qwen3:8b base_url=http://127.0.0.1:11434/v1 "
                   "key=none max_concurrency=1"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find(R"(extra_body={"reasoning_effort":"none"} prompt=compiled-in)" "\n"), std::string::npos) << d;
  EXPECT_EQ(d.find("unencrypted"), std::string::npos) << d;

  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), R"(
[providers.gpu]
preset = "vllm"
model = "m"
base_url = "http://10.0.0.7:8000/v1"
price_in_per_mtok = 0.5
price_out_per_mtok = 2
)");
  auto remote = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"VLLM_API_KEY", kKey}}));
  ASSERT_TRUE(remote.ok()) << remote.status().message();
  std::string r = DescribeConfig(*remote);
  EXPECT_EQ(r.find("DISTINCTIVE"), std::string::npos) << r;
  EXPECT_NE(r.find("key=VLLM_API_KEY(set, ****)"), std::string::npos) << r;
  EXPECT_NE(r.find("price_in_per_mtok=0.5 price_out_per_mtok=2 "), std::string::npos) << r;
  EXPECT_NE(r.find("  # plain http:// to another host: the documents (and the key) travel unencrypted\n"),
            std::string::npos)
      << r;
}

// Verifies a key's value appears in no error message, whatever fails while it is set, and that a key
// written into the file (as api_key, in place of a variable's name, or in a URL) is refused
// without being repeated.
TEST(ConfigProviders, KeysNeverInErrors) {
  testing::TempDir dir;
  const std::string key = kKey;
  std::vector<std::string> tables = {
      "api_key = \"" + key + "\"",
      "api_key_env = \"" + key + "\"",
      "base_url = \"https://user:" + key + "@api.deepseek.com\"",
      "base_url = \"https://" + key + "@api.deepseek.com\"",
      "rpm = -1",
      "extra_body = '[1]'",
      "modle = \"x\"",
  };
  for (const auto& t : tables) {
    testing::WriteFile(dir.File("kg.toml"), "[providers.deepseek]\n" + t + "\n");
    auto r = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}, {"DEEPSEEK_API_KEY", key}}));
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_EQ(r.status().message().find("DISTINCTIVE"), std::string::npos) << r.status().message();
  }
  testing::WriteFile(dir.File("kg.toml"), "[providers.deepseek]\napi_key = \"" + key + "\"\n");
  auto in_file = LoadConfig(Env({{"KG_CONFIG", dir.File("kg.toml")}}));
  ASSERT_FALSE(in_file.ok());
  EXPECT_NE(in_file.status().message().find("[providers.deepseek] key 'api_key' (line 2): secrets are read from the "
                                            "environment only; remove it from the file and set DEEPSEEK_API_KEY"),
            std::string::npos)
      << in_file.status().message();
  for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
           {"DEEPSEEK_BASE_URL", "https://x:" + key + "@h/v1"},
           {"DEEPSEEK_API_KEY", key + "\r\n"},
           {"KG_MAX_ATTEMPTS", "0"},
           {"DEEPSEEK_MODEL", "a b"},
       }) {
    std::map<std::string, std::string> env = {{"KG_PROVIDERS", "deepseek"}, {"DEEPSEEK_API_KEY", key}};
    env[var] = value;
    auto r = LoadConfig(Env(env));
    ASSERT_FALSE(r.ok()) << var;
    EXPECT_EQ(r.status().message().find("DISTINCTIVE"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace kg
