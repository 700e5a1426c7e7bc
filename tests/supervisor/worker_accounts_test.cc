// What the supervisor keeps of its workers' "stats" lines: the accounting class alone, then
// through real child processes that write the lines on their status pipe and die.
#include "supervisor/worker_accounts.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>

#include "config/config.h"
#include "supervisor/supervisor.h"
#include "testing/testing.h"
#include "worker/exit_codes.h"

namespace kg {
namespace {

using namespace std::chrono_literals;
using telemetry::WorkerStats;

WorkerStats Stats(int64_t done, int64_t open_conns) {
  WorkerStats s;
  s.chunks["done"] = done;
  s.chunk_seconds_buckets[0] = done;
  s.chunk_seconds_sum = 0.001 * static_cast<double>(done);
  s.connections_open["mysql"] = open_conns;
  s.connections_in_use["mysql"] = open_conns;
  return s;
}

// Verifies a process's counters outlive it (added to its provider's retired total when it
// ends) while its gauges go with it, a later snapshot replaces an earlier one (no double
// count), a bad line changes nothing, and every exit reason exists from the start.
TEST(WorkerAccounts, RetiredCountersSurviveAndGaugesDoNot) {
  WorkerAccounts a({"p", "q"});
  EXPECT_EQ(a.Exits().at("q"), (std::map<std::string, int64_t>{{"crashed", 0}, {"recycled", 0}, {"stopped", 0}}));
  ASSERT_TRUE(a.Record(100, "p", Stats(2, 1).ToJson()).ok());
  ASSERT_TRUE(a.Record(100, "p", Stats(5, 2).ToJson()).ok());  // cumulative: replaces the first
  ASSERT_TRUE(a.Record(101, "p", Stats(1, 1).ToJson()).ok());
  EXPECT_FALSE(a.Record(101, "p", "{not json").ok());
  auto s = a.Stats();
  EXPECT_EQ(s["p"].chunks["done"], 6);
  EXPECT_EQ(s["p"].connections_open["mysql"], 3);
  a.Ended(100, "p", kExitCrashed);
  s = a.Stats();
  EXPECT_EQ(s["p"].chunks["done"], 6) << "the dead process's counters stay";
  EXPECT_EQ(s["p"].chunk_seconds_buckets[0], 6);
  EXPECT_EQ(s["p"].connections_open["mysql"], 1) << "its connections went with it";
  EXPECT_EQ(s["p"].connections_in_use["mysql"], 1);
  EXPECT_EQ(a.Exits().at("p").at("crashed"), 1);
  a.Ended(102, "q", kExitStopped);  // never reported: the exit counts, nothing else
  EXPECT_EQ(a.Exits().at("q").at("stopped"), 1);
  EXPECT_EQ(a.Stats()["q"].chunks.count("done"), 0u);
}

// Verifies the supervisor reads "stats" lines from real worker processes' status pipes: a
// SIGKILLed process's counters stay in its provider's total and its connection gauge goes, a
// line that is not a snapshot is ignored, and exits are counted by reason (crashed, recycled,
// stopped). The "worker" is a shell script that writes the lines a worker writes.
TEST(SupervisorTelemetry, StatsLinesFromRealProcessesSurviveTheirDeath) {
  BlockSupervisorSignals();  // precondition of the supervisor, before any thread exists
  testing::TempDir dir;
  std::string line = "stats " + Stats(3, 2).ToJson();
  // Run 1 sleeps (to be killed), run 2 exits as recycled, run 3 sleeps until the stop.
  std::string script = dir.File("fake-worker.sh");
  testing::WriteFile(script, "#!/bin/sh\n"
                             "echo x >> '" + dir.File("runs") + "'\n"
                             "echo ready >&3\n"
                             "echo 'stats {not json' >&3\n"
                             "echo 'what is this' >&3\n"
                             "echo '" + line + "' >&3\n"
                             "if [ \"$(wc -l < '" + dir.File("runs") + "')\" -eq 2 ]; then exit " +
                             std::to_string(kWorkerExitRecycled) + "; fi\n"
                             "exec sleep 600\n");
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  auto c = LoadConfig([&](const std::string& k) -> std::optional<std::string> {
    if (k == "KG_DATA_DIR") return dir.path() + "/data";
    return std::nullopt;
  });
  ASSERT_TRUE(c.ok()) << c.status().message();
  Config cfg = std::move(c).value();
  auto sup = Supervisor::Create(cfg, script);
  ASSERT_TRUE(sup.ok()) << sup.status().message();
  (*sup)->Start();
  auto t = [&] { return (*sup)->Telemetry().at("builtin"); };
  ASSERT_TRUE(testing::WaitFor([&] { return t().stats.chunks["done"] == 3; }, 10s));
  EXPECT_EQ(t().stats.connections_open["mysql"], 2);
  auto procs = (*sup)->Snapshot();
  ASSERT_EQ(procs.size(), 1u);
  ASSERT_GT(procs[0].pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(procs[0].pid), SIGKILL), 0);
  // Run 2 reports 3 more and exits recycled; run 3 reports 3 more and stays.
  ASSERT_TRUE(testing::WaitFor([&] { return t().stats.chunks["done"] == 9; }, 10s)) << t().stats.ToJson();
  auto now = t();
  EXPECT_EQ(now.exits["crashed"], 1);
  EXPECT_EQ(now.exits["recycled"], 1);
  EXPECT_EQ(now.exits["stopped"], 0);
  EXPECT_EQ(now.stats.connections_open["mysql"], 2) << "only the live process's connections";
  EXPECT_EQ(now.spawns, 3);
  EXPECT_EQ(now.restarts, 2);
  EXPECT_FALSE(now.quarantined);
  (*sup)->Stop(false);
  (*sup)->Wait();
  now = t();
  EXPECT_EQ(now.exits["stopped"], 1);
  EXPECT_EQ(now.stats.chunks["done"], 9) << "counters outlive every process";
  EXPECT_EQ(now.stats.connections_open["mysql"], 0);
}

}  // namespace
}  // namespace kg
