#pragma once
// Real Redis, MariaDB and Neo4j servers for tests, started by scripts/test_servers.sh on free
// loopback ports with their data under a temp dir, and stopped by pid.
//
// Under ctest, one Redis, one MariaDB and one Neo4j serve the whole run (the `test_servers`
// fixture, tests/CMakeLists.txt), and each test isolates itself with a name of its own (a Redis
// key namespace, a MySQL database). Neo4j Community has a single database, so the tests that
// use it take the ctest resource lock `neo4j` (kg_test(... NEO4J)) and start from an empty
// graph (ClearNeo4j). A test binary run by hand starts private ones for its process and stops
// them at exit.
#include <cstdint>
#include <map>
#include <string>

#include "bolt/endpoint.h"
#include "mysql/endpoint.h"
#include "redis/endpoint.h"

namespace kg::testing {

struct ServerProcess {
  std::string kind;  // "redis", "mariadb" or "neo4j"
  int port = 0;
  int64_t pid = 0;
  std::string dir;
};

// Starts a server with its files in `dir` (port 0: a free one; a fixed port restarts a
// server on its kept data). `env` goes to scripts/test_servers.sh: KG_TEST_REDIS_AOF=1 (an
// append-only file, fsync always), KG_TEST_MARIADB_ARGS (extra mariadbd options). Fails the
// calling test (and returns port 0) when it cannot.
ServerProcess StartServer(const std::string& kind, const std::string& dir, int port = 0,
                          const std::map<std::string, std::string>& env = {});
// SIGTERM, then waits for the pid to exit.
void StopServer(const ServerProcess& s);

// A server of the test's own, stopped by pid when this goes out of scope (a failed assertion
// included).
struct ScopedServer {
  ServerProcess server;
  ~ScopedServer() { StopServer(server); }
};

// The run's shared servers (see above).
const ServerProcess& SharedRedis();
const ServerProcess& SharedMariaDb();
const ServerProcess& SharedNeo4j();

// The account the servers are started with (any database).
inline constexpr const char* kMysqlUser = "kgflow";
inline constexpr const char* kMysqlPassword = "kgflow-test";
// Neo4j's account (auth on unless the server was started with KG_TEST_NEO4J_AUTH=0).
inline constexpr const char* kNeo4jUser = "neo4j";
inline constexpr const char* kNeo4jPassword = "kgflow-test";

// Where a backend on `server` is, as the tests reach it: loopback, the servers' account, and the
// given key namespace or database (UniqueName() keeps tests apart on a shared server).
RedisEndpoint RedisAt(const ServerProcess& server, const std::string& ns = "kg");
MysqlEndpoint MysqlAt(const ServerProcess& server, const std::string& database);
// bolt://127.0.0.1:PORT with the account above and the default database.
Neo4jEndpoint Neo4jAt(const ServerProcess& server);

// A name no other test of this run uses: [a-z0-9_], starts with a letter, <= 40 characters.
std::string UniqueName(const std::string& prefix = "t");

}  // namespace kg::testing
