#pragma once
// A fake OpenAI-compatible LLM server for tests and benchmarks: tests/testing/fake_llm.py run as a
// child process on a free loopback port.
//
// POST /v1/chat/completions answers a deterministic graph read off the first user message (the
// "chunk text"): entities are runs of capitalised words, a leading The/A/An/In/On/It/He/She/They/
// This/That dropped (Organization when the run ends with Inc/Corp/Labs/Group/Company/Ltd, else
// Person), and 2-4 CJK characters before 公司, not across a particle such as 了/和/的
// (Organization, 公司 included); each sentence (ended by . ! ? 。！？) with two
// entities or more gives one RELATED_TO relation from its first entity to its second, the
// sentence as evidence. Usage: prompt_tokens = ceil(bytes of all message contents / 4),
// completion_tokens = ceil(characters of the content / 4).
//
// A FAKE_* marker in the chunk text makes it misbehave instead (the first marker in the text
// wins; *_ONCE markers only on the first request with that chunk text since the last Reset):
//   FAKE_429_ONCE (Retry-After: 1), FAKE_429_MS_ONCE (retry-after-ms: 300), FAKE_500_ONCE,
//   FAKE_503_ALWAYS, FAKE_HANG_ONCE (never answers, holds the connection), FAKE_GARBAGE,
//   FAKE_GARBAGE_ONCE (prose, not JSON), FAKE_FENCED (```json fences), FAKE_THINK (<think> block
//   first), FAKE_PROSE (prose around the JSON), FAKE_TRAILING_COMMA, FAKE_TRUNCATED_ONCE (half the
//   JSON, finish_reason "length"), FAKE_WRONG_SCHEMA ({"nodes","edges"}), FAKE_EMPTY (content ""),
//   FAKE_BAD_RECORDS (plus an entity with no name and a relation to a non-entity),
//   FAKE_INSUFFICIENT_QUOTA (429, type and code "insufficient_quota"), FAKE_NOTHING (empty graph).
// With an api_key, a request without "Authorization: Bearer KEY" gets 401; with an rpm_limit, the
// request that would be the (N+1)th admitted one in the last 60 s gets 429 with Retry-After: 1.
// Every answer but a hang waits latency_ms plus a uniform jitter, without holding up the others.
//
// Thread safety: all methods are const and may be called from any thread (each call opens its
// own HTTP client). Construct it on a thread that outlives it: the child is started with
// PR_SET_PDEATHSIG (testing.h's Process), which fires when the creating thread exits.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "testing/testing.h"

namespace kg::testing {

class FakeLlm {
 public:
  struct Options {
    int latency_ms = 0;
    int jitter_ms = 0;
    std::string api_key;  // "" accepts any request
    int rpm_limit = 0;    // 0: no limit
  };

  // Starts the script (python3, found by CMake) and waits up to 10 s until it listens; on failure
  // the calling test fails (ADD_FAILURE, with what the script printed) and port() is 0.
  FakeLlm();  // default Options
  explicit FakeLlm(Options o);
  // SIGTERM, then SIGKILL if it has not exited within 5 s; reaped by pid.
  ~FakeLlm();
  FakeLlm(const FakeLlm&) = delete;
  FakeLlm& operator=(const FakeLlm&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT/v1", the provider's base URL.
  std::string base_url() const;

  // GET /stats: {"requests", "in_flight", "max_in_flight", "by_status": {"200": n, ...},
  // "arrivals": [seconds since start of each request's arrival, in order], "by_marker":
  // {"FAKE_...": n}, "auth": [distinct Authorization values seen]}. Requests are the ones to
  // paths other than /stats, /reset and /config; by_marker counts those past the api key and the
  // rpm limit. Null (and a test failure) when unreachable.
  nlohmann::json Stats() const;
  // Clears the counters, the arrivals, the rpm window and the ONCE markers' memory.
  void Reset() const;
  // Changes settings of the running server: {"latency_ms", "jitter_ms", "rpm_limit"}, any subset.
  void Configure(const nlohmann::json& settings) const;
  // The largest number of arrivals in any window of `seconds` (half-open, sliding over
  // Stats()["arrivals"]).
  int MaxInWindow(double seconds) const;

 private:
  nlohmann::json Post(const std::string& path, const nlohmann::json& body) const;

  TempDir dir_;
  std::unique_ptr<Process> proc_;
  int port_ = 0;
};

// The command that runs the script ({python3, path of fake_llm.py}); its options follow.
std::vector<std::string> FakeLlmCommand();

}  // namespace kg::testing
