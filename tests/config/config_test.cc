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
      {{{"KG_PROVIDERS", "builtin,openai"}}, "KG_PROVIDERS", "openai", "known: builtin"},
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

}  // namespace
}  // namespace kg
