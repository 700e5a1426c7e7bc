#include "telemetry/worker_stats.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace kg::telemetry {
namespace {

// Verifies that a snapshot survives the trip through its pipe line, field by field.
TEST(WorkerStats, JsonRoundTrip) {
  Recorder r;
  r.Chunk(kChunkDone, 0.2);
  r.Chunk(kChunkDone, 500);
  r.Chunk(kChunkDeadLettered, 0.001);
  r.Chunk(kChunkGivenBack, 0);
  r.TaskFinished("done");
  r.LlmRequest(200);
  r.LlmRequest(429);
  r.LlmRequest(0);
  r.LlmUsage(100, 20, 0.5);
  r.LlmCacheHit();
  r.RateLimitWait(1.5);
  r.SetConnections("neo4j", 2, 5);
  WorkerStats s = r.Snapshot();
  auto back = WorkerStats::FromJson(s.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(s.chunks.at("done"), 2);
  EXPECT_EQ(s.chunks.at("given_back"), 1);
  EXPECT_EQ(s.ChunksObserved(), 3);  // the given-back chunk is not timed
  EXPECT_EQ(s.chunk_seconds_buckets.front(), 1);  // 0.001 s
  EXPECT_EQ(s.chunk_seconds_buckets.back(), 1);   // 500 s: +Inf
  EXPECT_EQ(s.llm_requests.at("transport"), 1);
  EXPECT_EQ(s.connections_open.at("neo4j"), 5);
}

// Verifies that bad lines are refused with a reason, not read as zeros.
TEST(WorkerStats, BadLinesAreRefused) {
  for (const char* bad : {"", "[]", "{\"chunks\": 3}", "{\"chunks\": {\"done\": \"x\"}}", "{\"secs\": [1, 2]}",
                          "{\"ptok\": \"many\"}"}) {
    auto r = WorkerStats::FromJson(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
  EXPECT_TRUE(WorkerStats::FromJson("{\"unknown\": 1}").ok());
}

// Verifies that an API answering with many distinct statuses cannot grow a line past one
// atomic pipe write.
TEST(WorkerStats, DistinctKeysAreCappedUnderOneAtomicWrite) {
  Recorder r;
  for (int code = 100; code < 1000; ++code) r.LlmRequest(code);
  for (int i = 0; i < 100; ++i) r.TaskFinished("status-" + std::to_string(i));
  WorkerStats s = r.Snapshot();
  EXPECT_EQ(s.llm_requests.size(), kMaxKeys + 1);  // kMaxKeys codes and "other"
  EXPECT_EQ(s.llm_requests.at("other"), 900 - static_cast<int64_t>(kMaxKeys));
  EXPECT_LT(s.ToJson().size() + 7, 4096u);  // "stats " + line + "\n" within PIPE_BUF
}

// Verifies that summing snapshots keeps every key: a code counted by one process never moves
// into "other" because another process's codes came first (its series would fall).
TEST(WorkerStats, SumsNeverMoveAKeyIntoOther) {
  WorkerStats a, b;
  for (int code = 500; code < 500 + static_cast<int>(kMaxKeys); ++code) a.llm_requests[std::to_string(code)] = 1;
  b.llm_requests["200"] = 7;
  b.llm_requests["201"] = 1;
  WorkerStats sum;
  sum.AddCounters(a);
  sum.AddCounters(b);
  EXPECT_EQ(sum.llm_requests.at("200"), 7);
  EXPECT_FALSE(sum.llm_requests.count("other"));
  auto back = WorkerStats::FromJson(sum.ToJson());
  EXPECT_FALSE(back.ok()) << "a line with more keys than a Recorder writes is refused";
}

// Verifies that gauges are summed over processes but a retired process leaves only its counters.
TEST(WorkerStats, RetiredProcessesLeaveCountersNotGauges) {
  WorkerStats a, b;
  a.chunks["done"] = 3;
  a.connections_in_use["mysql"] = 2;
  b.chunks["done"] = 4;
  b.connections_in_use["mysql"] = 1;
  WorkerStats sum = a;
  sum.Add(b);
  EXPECT_EQ(sum.chunks.at("done"), 7);
  EXPECT_EQ(sum.connections_in_use.at("mysql"), 3);
  WorkerStats retired;
  retired.AddCounters(a);
  EXPECT_EQ(retired.chunks.at("done"), 3);
  EXPECT_TRUE(retired.connections_in_use.empty());
}

// Verifies that the recorder loses no count under concurrent use.
TEST(WorkerStats, RecorderIsThreadSafe) {
  Recorder r;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        r.Chunk(kChunkDone, 0.25);
        r.LlmRequest(200);
      }
    });
  }
  for (auto& t : ts) t.join();
  WorkerStats s = r.Snapshot();
  EXPECT_EQ(s.chunks.at("done"), 4000);
  EXPECT_EQ(s.llm_requests.at("200"), 4000);
  EXPECT_DOUBLE_EQ(s.chunk_seconds_sum, 4000 * 0.25);  // exact in binary
}

}  // namespace
}  // namespace kg::telemetry
