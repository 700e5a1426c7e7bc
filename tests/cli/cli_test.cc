// The kgflow command line as a user runs it: exit codes, messages, checks before sending.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "testing/testing.h"

namespace kg {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct CliRun {
  int code = -1;  // exit code, or -1 when killed by a signal or timed out
  std::string out, err;
};

CliRun Kgflow(const std::vector<std::string>& args, const testing::TempDir& dir,
           std::map<std::string, std::string> env = {}) {
  testing::Process p(args, env, dir.path());
  int st = p.Wait(30s);
  CliRun r;
  if (st != -1 && WIFEXITED(st)) r.code = WEXITSTATUS(st);
  r.out = p.Stdout();
  r.err = p.Stderr();
  return r;
}

size_t Lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// Verifies a --url the client cannot use is one line saying what is accepted and exit 2, never an
// abort (ftp:// used to throw std::invalid_argument: exit 134).
TEST(Cli, BadUrlIsAUsageError) {
  testing::TempDir dir;
  for (const std::string url : {"ftp://x", "http://host:port", "http://127.0.0.1:99999", "http://", "localhost:8080:1"}) {
    CliRun r = Kgflow({"tasks", "--url", url}, dir);
    EXPECT_EQ(r.code, 2) << url << ": " << r.err;
    EXPECT_EQ(Lines(r.err), 1u) << url << ": " << r.err;
    EXPECT_NE(r.err.find("expected http[s]://HOST[:PORT]"), std::string::npos) << url << ": " << r.err;
  }
}

// Verifies a --url with a path (http://host:port/api/v1, as people paste it) reaches the running
// node, with a note that the path was ignored (it used to say the node cannot be reached).
TEST(Cli, UrlWithAPathReachesTheNode) {
  testing::TempDir dir;
  testing::Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string base = "http://127.0.0.1:" + std::to_string(n.port());
  for (const std::string& url : std::vector<std::string>{base + "/api/v1", base + "/", "127.0.0.1:" + std::to_string(n.port())}) {
    CliRun r = Kgflow({"graph", "stats", "--url", url}, dir);
    EXPECT_EQ(r.code, 0) << url << ": " << r.err;
    EXPECT_NE(r.out.find("documents 0"), std::string::npos) << url << ": " << r.out;
  }
  CliRun r = Kgflow({"graph", "stats", "--url", base + "/api/v1"}, dir);
  EXPECT_NE(r.err.find("path '/api/v1' ignored"), std::string::npos) << r.err;
}

// Verifies an unknown command is named (CLI11 said "A subcommand is required") and exits 2.
TEST(Cli, UnknownCommandIsNamed) {
  testing::TempDir dir;
  CliRun r = Kgflow({"frobnicate"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
  r = Kgflow({"graph", "frobnicate"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown command 'graph frobnicate'"), std::string::npos) << r.err;
}

// Verifies every command-line parse error exits 2 (usage), not CLI11's own codes (105 for a value
// outside a set, 106 for a bad number, ...), and --help/--version exit 0.
TEST(Cli, ParseErrorsExitTwo) {
  testing::TempDir dir;
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:1"}};
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"graph", "export", "--format", "csv"},
           {"tasks", "--limit", "many"},
           {"tasks", "--limit", "0"},
           {"submit"},
           {"tasks", "--no-such-flag"},
           {},
           {"graph"}}) {
    CliRun r = Kgflow(args, dir, env);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << ": " << r.err;
  }
  EXPECT_EQ(Kgflow({"--help"}, dir).code, 0);
  EXPECT_EQ(Kgflow({"--version"}, dir).code, 0);
}

}  // namespace
}  // namespace kg
