#include "testing/servers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>

#include "testing/testing.h"

namespace kg::testing {
namespace {

std::string Script() { return std::string(KG_TEST_SOURCE_DIR) + "/scripts/test_servers.sh"; }

// Runs `cmd` and returns what it printed on stdout; -1 exit status as an empty string.
bool RunCapture(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) *out += buf;
  return pclose(p) == 0;
}

// The servers of this process when no ctest fixture runs: started once, stopped at exit.
struct PrivateServers {
  std::unique_ptr<TempDir> dir;
  ServerProcess redis, mariadb, neo4j;
  ~PrivateServers() {
    for (const ServerProcess* s : {&redis, &mariadb, &neo4j}) {
      if (s->pid > 0) StopServer(*s);
    }
  }
};

// The fixture's file: "redis PORT PID", "mariadb PORT PID" and "neo4j PORT PID" lines.
bool FromFixture(const std::string& kind, ServerProcess* out) {
  std::ifstream in(KG_TEST_SERVERS_FILE);
  std::string k;
  int port;
  int64_t pid;
  while (in >> k >> port >> pid) {
    if (k == kind && Alive(static_cast<pid_t>(pid))) {  // a server that died (a zombie too) is not used
      *out = {kind, port, pid, ""};
      return true;
    }
  }
  return false;
}

const ServerProcess& Shared(const std::string& kind) {
  static std::mutex mu;
  static PrivateServers priv;
  static ServerProcess fixture_redis, fixture_mariadb, fixture_neo4j;
  std::lock_guard<std::mutex> lock(mu);
  ServerProcess& fixture = kind == "redis" ? fixture_redis : kind == "mariadb" ? fixture_mariadb : fixture_neo4j;
  if (fixture.pid > 0) return fixture;
  if (FromFixture(kind, &fixture)) return fixture;
  ServerProcess& mine = kind == "redis" ? priv.redis : kind == "mariadb" ? priv.mariadb : priv.neo4j;
  if (mine.pid > 0) return mine;
  if (!priv.dir) priv.dir = std::make_unique<TempDir>();
  mine = StartServer(kind, priv.dir->path() + "/" + kind);
  return mine;
}

}  // namespace

ServerProcess StartServer(const std::string& kind, const std::string& dir, int port,
                          const std::map<std::string, std::string>& env) {
  std::string out;
  std::string cmd;
  for (const auto& [k, v] : env) cmd += k + "='" + v + "' ";  // test values: no quotes inside
  cmd += Script() + " start " + kind + " '" + dir + "'" + (port ? " " + std::to_string(port) : "");
  ServerProcess s{kind, 0, 0, dir};
  if (!RunCapture(cmd, &out)) {
    ADD_FAILURE() << "could not start " << kind << ": " << cmd << " printed '" << out << "'";
    return s;
  }
  std::istringstream in(out);
  in >> s.port >> s.pid;
  if (s.port <= 0 || s.pid <= 0) ADD_FAILURE() << "unexpected output of " << cmd << ": '" << out << "'";
  return s;
}

void StopServer(const ServerProcess& s) {
  if (s.pid <= 0) return;
  std::string out;
  RunCapture(Script() + " stop " + std::to_string(s.pid), &out);
}

const ServerProcess& SharedRedis() { return Shared("redis"); }
const ServerProcess& SharedMariaDb() { return Shared("mariadb"); }
const ServerProcess& SharedNeo4j() { return Shared("neo4j"); }

RedisEndpoint RedisAt(const ServerProcess& server, const std::string& ns) {
  RedisEndpoint at;
  at.host = "127.0.0.1";
  at.port = server.port;
  at.ns = ns;
  return at;
}

MysqlEndpoint MysqlAt(const ServerProcess& server, const std::string& database) {
  MysqlEndpoint at;
  at.host = "127.0.0.1";
  at.port = server.port;
  at.user = kMysqlUser;
  at.password = kMysqlPassword;
  at.database = database;
  return at;
}

Neo4jEndpoint Neo4jAt(const ServerProcess& server) {
  Neo4jEndpoint at;
  at.scheme = "bolt";
  at.host = "127.0.0.1";
  at.port = server.port;
  at.user = kNeo4jUser;
  at.password = kNeo4jPassword;
  return at;
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const uint32_t salt = std::random_device{}();
  char buf[64];
  snprintf(buf, sizeof buf, "%s%d_%d_%08x", prefix.c_str(), static_cast<int>(getpid()), counter.fetch_add(1), salt);
  return buf;
}

}  // namespace kg::testing
