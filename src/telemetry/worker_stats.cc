#include "telemetry/worker_stats.h"

#include <nlohmann/json.hpp>

namespace kg::telemetry {

namespace {

using json = nlohmann::json;

// Adds `n` under `key`, or under "other" once the map holds kMaxKeys keys.
void Bump(std::map<std::string, int64_t>& m, std::string_view key, int64_t n) {
  auto it = m.find(std::string(key));
  if (it != m.end()) {
    it->second += n;
  } else if (m.size() < kMaxKeys) {
    m.emplace(std::string(key), n);
  } else {
    m["other"] += n;
  }
}

// Sums without the key cap: each snapshot is capped where it is counted (Recorder), and a key
// must never move into "other" while summing, or its series would fall (a counter reset).
void AddMap(std::map<std::string, int64_t>& into, const std::map<std::string, int64_t>& from) {
  for (const auto& [k, v] : from) into[k] += v;
}

Status ReadMap(const json& j, const char* field, std::map<std::string, int64_t>* out) {
  if (!j.contains(field)) return Status::Ok();
  const json& m = j.at(field);
  if (!m.is_object()) return Status(Code::kInvalidArgument, std::string("stats: ") + field + " is not an object");
  if (m.size() > kMaxKeys + 1) {
    return Status(Code::kInvalidArgument, std::string("stats: ") + field + " has more than " +
                                              std::to_string(kMaxKeys + 1) + " keys");
  }
  for (const auto& [k, v] : m.items()) {
    if (!v.is_number_integer()) return Status(Code::kInvalidArgument, std::string("stats: ") + field + "." + k + " is not an integer");
    (*out)[k] = v.get<int64_t>();
  }
  return Status::Ok();
}

}  // namespace

int64_t WorkerStats::ChunksObserved() const {
  int64_t n = 0;
  for (int64_t b : chunk_seconds_buckets) n += b;
  return n;
}

void WorkerStats::AddCounters(const WorkerStats& o) {
  AddMap(chunks, o.chunks);
  for (size_t i = 0; i < chunk_seconds_buckets.size(); ++i) chunk_seconds_buckets[i] += o.chunk_seconds_buckets[i];
  chunk_seconds_sum += o.chunk_seconds_sum;
  AddMap(tasks_finished, o.tasks_finished);
  AddMap(llm_requests, o.llm_requests);
  llm_prompt_tokens += o.llm_prompt_tokens;
  llm_completion_tokens += o.llm_completion_tokens;
  llm_cost += o.llm_cost;
  llm_cache_hits += o.llm_cache_hits;
  llm_rate_limit_waits += o.llm_rate_limit_waits;
  llm_rate_limit_wait_seconds += o.llm_rate_limit_wait_seconds;
}

void WorkerStats::Add(const WorkerStats& o) {
  AddCounters(o);
  AddMap(connections_in_use, o.connections_in_use);
  AddMap(connections_open, o.connections_open);
}

bool WorkerStats::operator==(const WorkerStats& o) const {
  return chunks == o.chunks && chunk_seconds_buckets == o.chunk_seconds_buckets &&
         chunk_seconds_sum == o.chunk_seconds_sum && tasks_finished == o.tasks_finished &&
         llm_requests == o.llm_requests && llm_prompt_tokens == o.llm_prompt_tokens &&
         llm_completion_tokens == o.llm_completion_tokens && llm_cost == o.llm_cost &&
         llm_cache_hits == o.llm_cache_hits && llm_rate_limit_waits == o.llm_rate_limit_waits &&
         llm_rate_limit_wait_seconds == o.llm_rate_limit_wait_seconds && connections_in_use == o.connections_in_use &&
         connections_open == o.connections_open;
}

std::string WorkerStats::ToJson() const {
  json j = json::object();
  // Empty maps and zero counters are left out: a builtin worker's line stays short.
  auto put_map = [&](const char* f, const std::map<std::string, int64_t>& m) {
    if (!m.empty()) j[f] = m;
  };
  put_map("chunks", chunks);
  if (ChunksObserved() > 0) {
    j["secs"] = chunk_seconds_buckets;
    j["secs_sum"] = chunk_seconds_sum;
  }
  put_map("tasks", tasks_finished);
  put_map("llm", llm_requests);
  if (llm_prompt_tokens) j["ptok"] = llm_prompt_tokens;
  if (llm_completion_tokens) j["ctok"] = llm_completion_tokens;
  if (llm_cost != 0) j["cost"] = llm_cost;
  if (llm_cache_hits) j["cache"] = llm_cache_hits;
  if (llm_rate_limit_waits) j["waits"] = llm_rate_limit_waits;
  if (llm_rate_limit_wait_seconds != 0) j["wait_s"] = llm_rate_limit_wait_seconds;
  put_map("conn_used", connections_in_use);
  put_map("conn_open", connections_open);
  return j.dump();
}

Result<WorkerStats> WorkerStats::FromJson(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status(Code::kInvalidArgument, "stats: not a JSON object");
  WorkerStats s;
  for (auto [f, m] : {std::pair{"chunks", &s.chunks}, {"tasks", &s.tasks_finished}, {"llm", &s.llm_requests},
                      {"conn_used", &s.connections_in_use}, {"conn_open", &s.connections_open}}) {
    if (Status st = ReadMap(j, f, m); !st.ok()) return st;
  }
  if (j.contains("secs")) {
    const json& b = j.at("secs");
    if (!b.is_array() || b.size() != s.chunk_seconds_buckets.size())
      return Status(Code::kInvalidArgument, "stats: secs is not an array of " +
                                                std::to_string(s.chunk_seconds_buckets.size()) + " counts");
    for (size_t i = 0; i < b.size(); ++i) {
      if (!b[i].is_number_integer()) return Status(Code::kInvalidArgument, "stats: secs holds a non-integer");
      s.chunk_seconds_buckets[i] = b[i].get<int64_t>();
    }
  }
  auto num = [&](const char* f, auto* out) -> Status {
    if (!j.contains(f)) return Status::Ok();
    if (!j.at(f).is_number()) return Status(Code::kInvalidArgument, std::string("stats: ") + f + " is not a number");
    *out = j.at(f).get<std::remove_pointer_t<decltype(out)>>();
    return Status::Ok();
  };
  for (Status st : {num("secs_sum", &s.chunk_seconds_sum), num("ptok", &s.llm_prompt_tokens),
                    num("ctok", &s.llm_completion_tokens), num("cost", &s.llm_cost), num("cache", &s.llm_cache_hits),
                    num("waits", &s.llm_rate_limit_waits), num("wait_s", &s.llm_rate_limit_wait_seconds)}) {
    if (!st.ok()) return st;
  }
  return s;
}

void Recorder::Chunk(std::string_view outcome, double seconds) {
  MutexLock l(mu_);
  Bump(s_.chunks, outcome, 1);
  if (outcome == kChunkGivenBack || outcome == kChunkSkipped) return;  // no work was timed
  size_t i = 0;
  while (i < kChunkSecondsBounds.size() && seconds > kChunkSecondsBounds[i]) ++i;
  s_.chunk_seconds_buckets[i]++;
  s_.chunk_seconds_sum += seconds;
}

void Recorder::TaskFinished(std::string_view status) {
  MutexLock l(mu_);
  Bump(s_.tasks_finished, status, 1);
}

void Recorder::LlmRequest(int http_status) {
  MutexLock l(mu_);
  Bump(s_.llm_requests, http_status > 0 ? std::to_string(http_status) : "transport", 1);
}

void Recorder::LlmUsage(int64_t prompt_tokens, int64_t completion_tokens, double cost) {
  MutexLock l(mu_);
  s_.llm_prompt_tokens += prompt_tokens;
  s_.llm_completion_tokens += completion_tokens;
  s_.llm_cost += cost;
}

void Recorder::LlmCacheHit() {
  MutexLock l(mu_);
  s_.llm_cache_hits++;
}

void Recorder::RateLimitWait(double seconds) {
  MutexLock l(mu_);
  s_.llm_rate_limit_waits++;
  s_.llm_rate_limit_wait_seconds += seconds;
}

void Recorder::SetConnections(const std::string& backend, int64_t in_use, int64_t open) {
  MutexLock l(mu_);
  // Gauges: set, not added (Bump only to keep the key cap).
  s_.connections_in_use.erase(backend);
  s_.connections_open.erase(backend);
  Bump(s_.connections_in_use, backend, in_use);
  Bump(s_.connections_open, backend, open);
}

WorkerStats Recorder::Snapshot() const {
  MutexLock l(mu_);
  return s_;
}

}  // namespace kg::telemetry
