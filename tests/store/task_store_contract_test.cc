// The TaskStore contract; every backend runs it unchanged.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "common/util.h"
#include "mysql/mysql.h"
#include "store/task_store.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<TaskStore>(const std::string& dir)> open;
};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }


class TaskStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { s_ = GetParam().open(dir_.path()); }
  TaskRecord Task(const std::string& id, int total) {
    TaskRecord t;
    t.id = id;
    t.title = "Title " + id;
    t.provider = "builtin";
    t.doc_id = "d-" + id;
    t.chunks_total = total;
    return t;
  }
  testing::TempDir dir_;
  std::unique_ptr<TaskStore> s_;
};

// Verifies create/get round-trips and an unknown id is kNotFound.
TEST_P(TaskStoreContract, CreateGet) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  auto t = s_->Get("a");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->title, "Title a");
  EXPECT_EQ(t->status, "queued");
  EXPECT_EQ(t->chunks_total, 3);
  EXPECT_EQ(s_->Get("nope").status().code(), Code::kNotFound);
  EXPECT_FALSE(s_->Create(Task("a", 1)).ok()) << "ids are unique";
}

// Verifies the status derives from chunk counts, and cancelled sticks until reopened.
TEST_P(TaskStoreContract, ProgressDerivesStatus) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 1, 1, 1, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "running");
  EXPECT_EQ(s_->Get("a")->chunks_done, 1);
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 0, 0, 3, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "done");
  ASSERT_TRUE(s_->Create(Task("b", 2)).ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {2, 0, 0, 1, 1, 0}, "chunk b:1: boom").ok());
  EXPECT_EQ(s_->Get("b")->status, "failed");
  EXPECT_EQ(s_->Get("b")->error, "chunk b:1: boom");
  ASSERT_TRUE(s_->MarkCancelled("b").ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {2, 0, 0, 2, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "cancelled");
  ASSERT_TRUE(s_->Reopen("b").ok());
  EXPECT_EQ(s_->Get("b")->status, "queued");
  EXPECT_EQ(s_->MarkCancelled("nope").code(), Code::kNotFound);
}

// Verifies a task's state is monotonic: progress written from an older read of the queue
// (two executors finishing a task's last chunks, the slower writer last) never moves the
// stored counts or status backwards; only Reopen leaves done or failed.
TEST_P(TaskStoreContract, ProgressNeverGoesBackwards) {
  ASSERT_TRUE(s_->Create(Task("a", 2)).ok());
  // TaskCounts: total, ready, leased, done, dead, cancelled.
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 2, 0, 0}, "").ok());  // the writer that saw both done
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 1, 1, 0, 0}, "").ok());  // the one that read first, writes last
  auto a = s_->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->status, "done");
  EXPECT_EQ(a->chunks_done, 2);
  EXPECT_EQ(s_->List("running", 10)->size(), 0u);

  ASSERT_TRUE(s_->Create(Task("b", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 2, 1, 0, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "running");
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 3, 0, 0, 0, 0}, "").ok());  // its lease was given back
  EXPECT_EQ(s_->Get("b")->status, "running");
  // Stale reads interleaved with the final one, in either order, end failed.
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 0, 2, 1, 0}, "chunk b:2: boom").ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 1, 2, 0, 0}, "").ok());
  auto b = s_->Get("b");
  EXPECT_EQ(b->status, "failed");
  EXPECT_EQ(b->chunks_done, 2);
  EXPECT_EQ(b->chunks_failed, 1);
  EXPECT_EQ(b->error, "chunk b:2: boom");
  ASSERT_TRUE(s_->Reopen("b").ok());
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 1, 2, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "running");
  ASSERT_TRUE(s_->UpdateProgress("b", {3, 0, 0, 3, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("b")->status, "done");
}

// Verifies progress that changes nothing writes nothing (updated_at stays), and that a task
// whose chunks are all finished with some cancelled ends cancelled even if its row was never
// marked (a cancel that failed between the queue and the store).
TEST_P(TaskStoreContract, UnchangedProgressIsNotWrittenAndCancelledChunksEndTheTask) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 2, 1, 0, 0, 0}, "").ok());
  int64_t stamp = s_->Get("a")->updated_at_ms;
  ASSERT_TRUE(testing::WaitFor([&] { return NowMs() > stamp + 2; }, std::chrono::seconds(1)));
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 2, 1, 0, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->updated_at_ms, stamp) << "an update with nothing new rewrote the row";
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 1, 1, 1, 0, 0}, "").ok());
  EXPECT_GT(s_->Get("a")->updated_at_ms, stamp);
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 0, 0, 1, 0, 2}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "cancelled");
}

// Verifies progress read before a retry cannot land after it: Reopen bumps the epoch, and an
// update carrying the old epoch changes nothing (it would mark the retried task failed again).
TEST_P(TaskStoreContract, ProgressFromBeforeARetryIsIgnored) {
  ASSERT_TRUE(s_->Create(Task("a", 2)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 1, 1, 0}, "chunk a:1: boom").ok());
  auto failed = s_->Get("a");
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->status, "failed");
  int64_t before = failed->epoch;
  ASSERT_TRUE(s_->Reopen("a").ok());
  EXPECT_GT(s_->Get("a")->epoch, before);
  // A writer that read the counts before the retry writes now, with the epoch it saw.
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 1, 1, 0}, "chunk a:1: boom", before).ok());
  EXPECT_EQ(s_->Get("a")->status, "queued") << "a stale write undid the retry";
  ASSERT_TRUE(s_->UpdateProgress("a", {2, 0, 0, 2, 0, 0}, "", s_->Get("a")->epoch).ok());
  EXPECT_EQ(s_->Get("a")->status, "done");
}

// Verifies listing filters by status and honours the limit.
TEST_P(TaskStoreContract, ListFilters) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s_->Create(Task("t" + std::to_string(i), 1)).ok());
  ASSERT_TRUE(s_->UpdateProgress("t1", {1, 0, 0, 1, 0, 0}, "").ok());
  auto all = s_->List("", 10);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
  EXPECT_EQ(s_->List("", 2)->size(), 2u);
  auto done = s_->List("done", 10);
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].id, "t1");
}

// A filter; designated initializers would leave fields out, which -Wextra refuses.
TaskFilter Filter(const std::string& status, const std::string& provider, const std::string& text, int limit = 50,
                  int offset = 0) {
  TaskFilter f;
  f.status = status;
  f.provider = provider;
  f.text = text;
  f.limit = limit;
  f.offset = offset;
  return f;
}

// Verifies ListFiltered selects by status, provider and a case-insensitive substring of the
// title or id in which % and _ are plain characters, pages with offset and limit (newest first,
// no task twice) and counts every match whatever the page.
TEST_P(TaskStoreContract, ListFilteredByProviderTextAndPage) {
  auto make = [&](const std::string& id, const std::string& title, const std::string& provider) {
    TaskRecord t = Task(id, 1);
    t.title = title;
    t.provider = provider;
    ASSERT_TRUE(s_->Create(t).ok());
  };
  make("a1", "Alpha report", "builtin");
  make("a2", "ALPHA 100% done", "other");
  make("b1", "beta_x", "builtin");
  make("b2", "betaXx", "builtin");
  make("zeta-9", "Gamma", "other");
  ASSERT_TRUE(s_->UpdateProgress("a2", {1, 0, 0, 1, 0, 0}, "").ok());
  auto ids = [&](const TaskFilter& f) {
    auto r = s_->ListFiltered(f);
    EXPECT_TRUE(r.ok()) << r.status().message();
    std::set<std::string> out;
    if (r.ok()) {
      for (const auto& t : r->tasks) out.insert(t.id);
      EXPECT_EQ(static_cast<int64_t>(out.size()), std::min<int64_t>(r->total, f.limit)) << "offset 0: page = first matches";
    }
    return out;
  };
  using Ids = std::set<std::string>;
  EXPECT_EQ(ids(Filter("", "", "")).size(), 5u);
  EXPECT_EQ(ids(Filter("", "other", "")), (Ids{"a2", "zeta-9"}));
  EXPECT_EQ(ids(Filter("", "", "aLpHa")), (Ids{"a1", "a2"}));
  EXPECT_EQ(ids(Filter("", "", "ZETA")), (Ids{"zeta-9"})) << "the id matches too";
  EXPECT_EQ(ids(Filter("", "", "%")), (Ids{"a2"})) << "% is no wildcard";
  EXPECT_EQ(ids(Filter("", "", "a_x")), (Ids{"b1"})) << "_ is no wildcard";
  EXPECT_EQ(ids(Filter("", "", "!")), Ids{}) << "the escape character is escaped too";
  EXPECT_EQ(ids(Filter("done", "other", "")), (Ids{"a2"}));
  EXPECT_EQ(ids(Filter("done", "builtin", "")), Ids{});
  EXPECT_EQ(ids(Filter("", "builtin", "beta")), (Ids{"b1", "b2"}));

  std::set<std::string> seen;
  for (int offset = 0; offset < 6; offset += 2) {
    auto page = s_->ListFiltered(Filter("", "", "", 2, offset));
    ASSERT_TRUE(page.ok()) << page.status().message();
    EXPECT_EQ(page->total, 5);
    EXPECT_EQ(page->tasks.size(), offset < 4 ? 2u : 1u);
    for (const auto& t : page->tasks) EXPECT_TRUE(seen.insert(t.id).second) << t.id << " listed twice";
  }
  EXPECT_EQ(seen.size(), 5u);
  auto past = s_->ListFiltered(Filter("", "", "beta", 10, 10));
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->tasks.empty());
  EXPECT_EQ(past->total, 2) << "the total does not depend on the page";
}

// Verifies settings are last-writer-wins and deletable, and nodes list by heartbeat age.
TEST_P(TaskStoreContract, SettingsAndNodes) {
  EXPECT_FALSE(s_->GetSetting("k")->has_value());
  ASSERT_TRUE(s_->PutSetting("k", "1").ok());
  ASSERT_TRUE(s_->PutSetting("k", "2").ok());
  EXPECT_EQ(**s_->GetSetting("k"), "2");
  ASSERT_TRUE(s_->DeleteSetting("k").ok());
  EXPECT_FALSE(s_->GetSetting("k")->has_value());
  EXPECT_TRUE(s_->DeleteSetting("k").ok()) << "deleting what is not there is no error";
  int64_t now = NowMs();
  ASSERT_TRUE(*s_->PutNodeIf({"n1", "all", "h", 1, now, "[]", 1000}, std::nullopt));
  ASSERT_TRUE(*s_->PutNodeIf({"n2", "worker", "h", 2, now - 60000, "[]"}, std::nullopt));
  auto nodes = s_->ListNodes(now - 30000);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].name, "n1");
  EXPECT_EQ((*nodes)[0].heartbeat_ms, 1000);
  ASSERT_TRUE(s_->RemoveNode("n1", "h", 1).ok());
  EXPECT_TRUE(s_->ListNodes(now - 30000)->empty());
  EXPECT_FALSE(s_->GetNode("n1")->has_value());
}

// Verifies a node record's info (what the console shows of the node) round-trips: given on the
// insert, replaced by a beat, listed, and "{}" for a record written without one.
TEST_P(TaskStoreContract, NodeInfoRoundTrips) {
  int64_t now = NowMs();
  const std::string first = R"({"version":"1.2.3","caps":{"total":4,"per_provider":2},"quarantine":[]})";
  NodeRecord a{"info", "all", "h1", 10, now, "[]", 5000, first};
  ASSERT_TRUE(*s_->PutNodeIf(a, std::nullopt));
  EXPECT_EQ((*s_->GetNode("info"))->info_json, first);
  NodeRecord beat = a;
  beat.heartbeat_at_ms = now + 1;
  beat.info_json = R"({"quarantine":[{"provider":"p","remaining_s":12.5}]})";
  ASSERT_TRUE(*s_->PutNodeIf(beat, a)) << "a beat of the holder";
  EXPECT_EQ((*s_->GetNode("info"))->info_json, beat.info_json);
  NodeRecord plain{"plain", "web", "h2", 11, now, "[]", 5000};
  ASSERT_TRUE(*s_->PutNodeIf(plain, std::nullopt));
  auto nodes = s_->ListNodes(now - 1000);
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].name, "info");
  EXPECT_EQ((*nodes)[0].info_json, beat.info_json);
  EXPECT_EQ((*nodes)[1].info_json, "{}");
}

// Verifies a node record is a compare-and-set: a name is inserted only when absent, replaced only while the
// stored record is still the expected one (host, pid and, when given, heartbeat), and removed only by its owner.
TEST_P(TaskStoreContract, NodeRecordsAreCompareAndSet) {
  int64_t now = NowMs();
  NodeRecord a{"dup", "web", "h1", 10, now, "[]", 5000};
  NodeRecord b{"dup", "web", "h1", 20, now + 1, "[]", 5000};
  ASSERT_TRUE(*s_->PutNodeIf(a, std::nullopt));
  EXPECT_FALSE(*s_->PutNodeIf(b, std::nullopt)) << "a second insert of the name loses";
  EXPECT_EQ((*s_->GetNode("dup"))->pid, 10);
  NodeRecord other = b;
  other.heartbeat_at_ms = 0;
  EXPECT_FALSE(*s_->PutNodeIf(b, other)) << "b is not the holder";
  NodeRecord old = a;
  old.heartbeat_at_ms = now - 1;
  EXPECT_FALSE(*s_->PutNodeIf(b, old)) << "the holder beat since it was read";
  ASSERT_TRUE(*s_->PutNodeIf(b, a)) << "a takeover of the record as read";
  EXPECT_EQ((*s_->GetNode("dup"))->pid, 20);
  NodeRecord beat = b;
  beat.heartbeat_at_ms = now + 2;
  beat.processes_json = R"([{"pid":7}])";
  NodeRecord ours{"", "", "h1", 20, 0, "", 0};
  ASSERT_TRUE(*s_->PutNodeIf(beat, ours)) << "a beat of the holder";
  EXPECT_EQ((*s_->GetNode("dup"))->processes_json, R"([{"pid":7}])");
  ASSERT_TRUE(s_->RemoveNode("dup", "h1", 10).ok());
  EXPECT_TRUE(s_->GetNode("dup")->has_value()) << "a's stop does not remove b's record";
  ASSERT_TRUE(s_->RemoveNode("dup", "h1", 20).ok());
  EXPECT_FALSE(s_->GetNode("dup")->has_value());
}

UsageTotals Usage(int64_t prompt, int64_t completion, int64_t requests, int64_t cached, double cost) {
  UsageTotals u;
  u.prompt_tokens = prompt;
  u.completion_tokens = completion;
  u.requests = requests;
  u.cached_chunks = cached;
  u.cost = cost;
  return u;
}

void ExpectUsage(const UsageTotals& got, const UsageTotals& want, const std::string& what) {
  EXPECT_EQ(got.prompt_tokens, want.prompt_tokens) << what;
  EXPECT_EQ(got.completion_tokens, want.completion_tokens) << what;
  EXPECT_EQ(got.requests, want.requests) << what;
  EXPECT_EQ(got.cached_chunks, want.cached_chunks) << what;
  EXPECT_DOUBLE_EQ(got.cost, want.cost) << what;
}

// Verifies a task's token budget round-trips through Create, Get and List, and defaults to 0.
TEST_P(TaskStoreContract, TokenBudgetRoundTrips) {
  TaskRecord t = Task("a", 2);
  t.token_budget = 12345678901;  // past 32 bits
  ASSERT_TRUE(s_->Create(t).ok());
  ASSERT_TRUE(s_->Create(Task("b", 1)).ok());
  EXPECT_EQ(s_->Get("a")->token_budget, 12345678901);
  EXPECT_EQ(s_->Get("b")->token_budget, 0);
  auto all = s_->List("", 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  for (const auto& r : *all) EXPECT_EQ(r.token_budget, r.id == "a" ? 12345678901 : 0) << r.id;
}

// Verifies the response cache: an unknown key is nullopt, Put then Get round-trips (bytes of
// any kind, a large content included), and Put of a known key overwrites.
TEST_P(TaskStoreContract, ResponseCacheRoundTripsAndOverwrites) {
  auto none = s_->GetCachedResponse("0123abcd");
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_FALSE(none->has_value());
  const std::string content = R"({"entities":[{"name":"Zoë 'x' \"y\" ; DROP TABLE llm_cache;--"}]})";
  ASSERT_TRUE(s_->PutCachedResponse("0123abcd", content).ok());
  auto got = s_->GetCachedResponse("0123abcd");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, content);
  const std::string large(300000, 'x');
  ASSERT_TRUE(s_->PutCachedResponse("0123abcd", large).ok());
  EXPECT_EQ(**s_->GetCachedResponse("0123abcd"), large) << "a second Put overwrites";
  EXPECT_FALSE(s_->GetCachedResponse("0123abcD")->has_value()) << "keys compare exactly";
}

// Verifies the ledger: adds to one (task, chunk) accumulate, the per-chunk rows sum to the
// task's totals, each provider's totals are the sums of its tasks', and an unknown task (or a
// provider with nothing spent) reads as zero.
TEST_P(TaskStoreContract, UsageAddsUpPerChunkTaskAndProvider) {
  ASSERT_TRUE(s_->AddUsage("a", "a:0", "openai", Usage(100, 20, 1, 0, 0.25)).ok());
  ASSERT_TRUE(s_->AddUsage("a", "a:0", "openai", Usage(50, 10, 1, 0, 0.125)).ok());  // a redelivery
  ASSERT_TRUE(s_->AddUsage("a", "a:1", "openai", Usage(0, 0, 0, 1, 0)).ok());        // from the cache
  ASSERT_TRUE(s_->AddUsage("b", "b:0", "openai", Usage(7, 3, 2, 0, 0.5)).ok());
  ASSERT_TRUE(s_->AddUsage("c", "c:0", "local", Usage(1000, 1, 1, 0, 0)).ok());

  auto chunks = s_->ChunkUsage("a");
  ASSERT_TRUE(chunks.ok()) << chunks.status().message();
  ASSERT_EQ(chunks->size(), 2u);
  ExpectUsage(chunks->at("a:0"), Usage(150, 30, 2, 0, 0.375), "chunk a:0");
  ExpectUsage(chunks->at("a:1"), Usage(0, 0, 0, 1, 0), "chunk a:1");
  auto a = s_->TaskUsage("a");
  ASSERT_TRUE(a.ok()) << a.status().message();
  ExpectUsage(*a, Usage(150, 30, 2, 1, 0.375), "task a");
  EXPECT_EQ(a->tokens(), 180);
  ExpectUsage(*s_->TaskUsage("nope"), UsageTotals{}, "unknown task");
  EXPECT_TRUE(s_->ChunkUsage("nope")->empty());

  auto providers = s_->ProviderUsage();
  ASSERT_TRUE(providers.ok()) << providers.status().message();
  ASSERT_EQ(providers->size(), 2u);
  ExpectUsage(providers->at("openai"), Usage(157, 33, 4, 1, 0.875), "provider openai");
  ExpectUsage(providers->at("local"), *s_->TaskUsage("c"), "provider local");
}

// Verifies ChunkUsageOf reads the ledger rows of the asked chunks only: of that task (the same
// chunk id under another task is not read), ids without a row absent, duplicates harmless, more ids
// than one statement binds (several batches), ids with quotes bound as plain text, none asked none read.
TEST_P(TaskStoreContract, ChunkUsageOfReadsOnlyTheAskedChunks) {
  for (int i = 0; i < 1200; i += 3) {
    ASSERT_TRUE(s_->AddUsage("t", "t:" + std::to_string(i), "openai", Usage(i, 1, 1, 0, 0)).ok());
  }
  ASSERT_TRUE(s_->AddUsage("other", "t:1", "openai", Usage(5, 5, 1, 0, 0)).ok());
  ASSERT_TRUE(s_->AddUsage("t", "t:'x\"", "openai", Usage(9, 9, 1, 0, 0)).ok());
  std::vector<std::string> ask = {"t:1", "t:0", "t:0", "t:'x\""};
  for (int i = 600; i < 1800; ++i) ask.push_back("t:" + std::to_string(i));
  auto got = s_->ChunkUsageOf("t", ask);
  ASSERT_TRUE(got.ok()) << got.status().message();
  // t:0, t:'x", and the rows among 600..1199 (every third: 200 of them).
  EXPECT_EQ(got->size(), 202u);
  EXPECT_EQ(got->count("t:1"), 0u) << "the row of another task with that chunk id";
  EXPECT_EQ(got->count("t:3"), 0u) << "a row not asked for";
  ExpectUsage(got->at("t:0"), Usage(0, 1, 1, 0, 0), "chunk t:0");
  ExpectUsage(got->at("t:1197"), Usage(1197, 1, 1, 0, 0), "chunk t:1197 (a later batch)");
  ExpectUsage(got->at("t:'x\""), Usage(9, 9, 1, 0, 0), "a quoted id");
  auto none = s_->ChunkUsageOf("t", {});
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_TRUE(none->empty());
}

// Verifies AddUsage is an atomic add: 8 threads adding to the same chunks at once lose none of
// it, and the per-task, per-chunk and per-provider totals all agree with what was added.
TEST_P(TaskStoreContract, ConcurrentUsageAddsSumExactly) {
  constexpr int kThreads = 8, kAdds = 40;
  std::vector<std::thread> ts;
  std::vector<Status> failures(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([&, i] {
      for (int k = 0; k < kAdds; ++k) {
        // Two tasks of one provider; chunk rows contended by every thread.
        std::string task = k % 2 ? "odd" : "even";
        Status s = s_->AddUsage(task, task + ":" + std::to_string(k % 3), "openai", Usage(3, 2, 1, k % 2, 0.0625));
        if (!s.ok()) failures[i] = s;
      }
    });
  }
  for (auto& t : ts) t.join();
  for (const Status& f : failures) ASSERT_TRUE(f.ok()) << f.message();
  const int64_t per_task = kThreads * kAdds / 2;
  ExpectUsage(*s_->TaskUsage("even"), Usage(3 * per_task, 2 * per_task, per_task, 0, 0.0625 * per_task), "even");
  ExpectUsage(*s_->TaskUsage("odd"), Usage(3 * per_task, 2 * per_task, per_task, per_task, 0.0625 * per_task), "odd");
  UsageTotals chunk_sum;
  for (const std::string task : {"even", "odd"}) {
    auto chunks = s_->ChunkUsage(task);
    ASSERT_TRUE(chunks.ok()) << chunks.status().message();
    for (const auto& [id, u] : *chunks) {
      chunk_sum.prompt_tokens += u.prompt_tokens;
      chunk_sum.completion_tokens += u.completion_tokens;
      chunk_sum.requests += u.requests;
      chunk_sum.cached_chunks += u.cached_chunks;
      chunk_sum.cost += u.cost;
    }
  }
  const int64_t all = kThreads * kAdds;
  ExpectUsage(chunk_sum, Usage(3 * all, 2 * all, all, per_task, 0.0625 * all), "chunks of both tasks");
  ExpectUsage(s_->ProviderUsage()->at("openai"), chunk_sum, "provider openai");
}

// Verifies MarkStopped cancels the task and records its reason; later progress (even a chunk's
// failure) moves neither the status nor the reason, Reopen clears both, and an unknown id is
// kNotFound.
TEST_P(TaskStoreContract, MarkStoppedCancelsWithAReasonThatProgressKeeps) {
  ASSERT_TRUE(s_->Create(Task("a", 3)).ok());
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 1, 1, 1, 0, 0}, "").ok());
  const std::string reason = "token budget reached: 10234 of 10000 tokens spent";
  ASSERT_TRUE(s_->MarkStopped("a", reason).ok());
  auto a = s_->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->status, "cancelled");
  EXPECT_EQ(a->error, reason);
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 0, 0, 2, 1, 0}, "chunk a:2: boom").ok());
  a = s_->Get("a");
  EXPECT_EQ(a->status, "cancelled") << "progress moved a stopped task";
  EXPECT_EQ(a->error, reason) << "a chunk's failure replaced the reason the task was stopped";
  EXPECT_EQ(a->chunks_done, 2) << "counts still grow";
  EXPECT_EQ(a->chunks_failed, 1) << "counts still grow";
  ASSERT_TRUE(s_->UpdateProgress("a", {3, 0, 0, 3, 0, 0}, "").ok());
  EXPECT_EQ(s_->Get("a")->status, "cancelled") << "all chunks done moved a stopped task";
  ASSERT_TRUE(s_->Reopen("a").ok());
  a = s_->Get("a");
  EXPECT_EQ(a->status, "queued");
  EXPECT_EQ(a->error, "");
  EXPECT_EQ(s_->MarkStopped("nope", reason).code(), Code::kNotFound);
}

// Verifies Connections(), what a worker reports as kg_store_connections: none for the embedded
// store; for MySQL the backend, the connections open (at least the one a call used, kept idle)
// and none in use once the call is over.
TEST_P(TaskStoreContract, ConnectionsReportThePool) {
  ASSERT_TRUE(s_->Create(Task("t1", 1)).ok());
  std::optional<PoolUsage> c = s_->Connections();
  if (GetParam().name == "sqlite") {
    EXPECT_FALSE(c.has_value());
    return;
  }
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->backend, "mysql");
  EXPECT_GE(c->open, 1);
  EXPECT_EQ(c->in_use, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, TaskStoreContract,
                         ::testing::Values(Backend{"sqlite",
                                                   [](const std::string& dir) {
                                                     auto s = OpenSqliteTaskStore(dir + "/tasks.db");
                                                     EXPECT_TRUE(s.ok()) << s.status().message();
                                                     return std::move(s).value();
                                                   }},
                                           Backend{"mysql",
                                                   [](const std::string&) {
                                                     auto s = OpenMysqlTaskStore(
                                                         testing::MysqlAt(testing::SharedMariaDb(), testing::UniqueName("ts")));
                                                     EXPECT_TRUE(s.ok()) << s.status().message();
                                                     return s.ok() ? std::move(s).value() : nullptr;
                                                   }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace kg
