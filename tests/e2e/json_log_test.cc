// A real node logging with KG_LOG_FORMAT=json: every line of its log (the node's and its worker
// processes', on one stderr) is a JSON object with the fields log stacks index.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "testing/testing.h"

namespace kg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Verifies a node with KG_LOG_FORMAT=json (at debug level, so that every chunk is logged) that
// processes a document: every line of its stderr parses as a JSON object with time (RFC 3339 UTC,
// milliseconds), level, node, pid and message; lines from worker processes carry their provider
// and the node's own lines none; the lines about a chunk ("chunk C of task T done") carry that task
// and chunk, and lines outside chunk work carry neither.
TEST(JsonLog, EveryLineOfARealNodeIsJson) {
  testing::TempDir dir;
  testing::Node n(dir, {{"KG_LOG_FORMAT", "json"}, {"KG_LOG_LEVEL", "debug"}, {"KG_WORKER_NODE_NAME", "jsonnode"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  json body = {{"text", testing::DocumentText(1) + " " + testing::DocumentText(2)}, {"title", "t"}};
  auto r = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "no response");
  std::string task = json::parse(r->body)["id"];
  ASSERT_TRUE(testing::WaitFor([&] { return n.Get("/api/v1/tasks/" + task)["status"] == "done"; }, 60s))
      << n.proc().Stderr();
  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  int st = n.proc().Wait(60s);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();

  const std::regex time_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  const std::regex chunk_re(R"(chunk (\S+) of task (\S+) done)");
  const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "critical"};
  std::istringstream in(n.proc().Stderr());
  std::string line;
  int lines = 0, chunk_lines = 0, worker_lines = 0;
  std::set<int64_t> pids;
  while (std::getline(in, line)) {
    ++lines;
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "line " << lines << " is not a JSON object: " << line;
    ASSERT_TRUE(j.contains("time") && j["time"].is_string()) << line;
    EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(), time_re)) << line;
    EXPECT_TRUE(levels.count(j.value("level", ""))) << line;
    EXPECT_EQ(j.value("node", ""), "jsonnode") << line;
    ASSERT_TRUE(j.contains("pid") && j["pid"].is_number_integer()) << line;
    ASSERT_TRUE(j.contains("message") && j["message"].is_string()) << line;
    pids.insert(j["pid"].get<int64_t>());
    bool from_node = j["pid"].get<int64_t>() == n.proc().pid();
    EXPECT_EQ(j.contains("provider"), !from_node) << line;
    if (!from_node) {
      ++worker_lines;
      EXPECT_EQ(j.value("provider", ""), "builtin") << line;
    }
    std::smatch m;
    std::string message = j["message"];
    if (std::regex_search(message, m, chunk_re)) {
      ++chunk_lines;
      EXPECT_EQ(j.value("chunk", ""), m[1].str()) << line;
      EXPECT_EQ(j.value("task", ""), m[2].str()) << line;
      EXPECT_EQ(m[2].str(), task);
    } else if (from_node) {
      EXPECT_FALSE(j.contains("chunk")) << line;
    }
  }
  EXPECT_GT(lines, 5);
  EXPECT_GT(worker_lines, 0) << "no line from a worker process";
  EXPECT_GT(chunk_lines, 0) << "no line about a chunk";
  EXPECT_GE(pids.size(), 2u);
}

// Verifies KG_LOG_FORMAT other than text or json stops the start-up with exit 2, naming the
// variable, before anything runs.
TEST(JsonLog, UnknownFormatIsAConfigurationError) {
  testing::TempDir dir;
  auto run = testing::RunToEnd({"start"}, dir.path(), {{"KG_LOG_FORMAT", "yaml"}, {"KG_DATA_DIR", dir.File("data")}}, 30s);
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("KG_LOG_FORMAT='yaml'"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace kg
