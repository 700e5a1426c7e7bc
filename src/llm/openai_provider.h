#pragma once
// kind "openai": extraction by any OpenAI-compatible chat-completions API (docs/providers.md).
//
// One provider object per worker process. Its own thread runs a libcurl multi loop, so up to
// `max_in_flight` requests are in flight at once on reused connections (TLS verified), each
// with a connect timeout of min(10 s, timeout_s) and a total timeout of timeout_s.
// Before a request is sent the limiter admits it (rpm, tpm, concurrency, a 429 pause; cluster-wide with Redis);
// waiting requests queue in order, and only the oldest asks the limiter again.
// Failures follow a retry policy written as data (openai_provider.cc): 429 pauses the provider
// (Retry-After / retry-after-ms / x-ratelimit-reset-*, else a backoff of at least 500 ms) and
// retries, up to 100 times in a row, not counted in max_retries; 408/409/5xx
// and transport errors retry with exponential backoff and jitter, up to max_retries; billing
// answers (insufficient_quota, 402) are not retried. The in-flight cap adapts: down by a
// quarter on a 429, up by one on a success at the cap (never above max_in_flight).
// Unusable output gets one corrective re-ask in the same conversation; if that is unusable too
// the reply is kUnavailable with the reason and a snippet (the queue retries, then
// dead-letters). The API key goes into the Authorization header only; every reply message is
// scrubbed of it (and of any 8-byte piece of it an API's error text may echo).
// Other final answers: 401/403 and 404 are kUnavailable naming the configuration problem (logged
// once per provider); any other 4xx (400: e.g. the chunk exceeds the context) is kInvalidArgument.
// Destroying the provider abandons its requests and gives their concurrency slots back.
// Usage sums every request of the chunk; the token estimate the limiter counts before a request
// (prompt bytes / 3 + max_output_tokens) is corrected by the usage the answer reports.
// CacheKey hashes (kind, base_url, model, prompt version, json_mode, extra_body, text).
// FromCache re-parses against the chunk, so a cached answer keeps its evidence sentences.

#include <memory>
#include <string>

#include "common/status.h"
#include "config/config.h"
#include "llm/limiter.h"
#include "llm/prompt.h"
#include "provider/provider.h"
#include "telemetry/worker_stats.h"

namespace kg::llm {

struct OpenAiOptions {
  ProviderConfig config;  // kind "openai", validated by LoadConfig (api_key read)
  Prompt prompt;
  std::unique_ptr<Limiter> limiter;  // owned
  int max_in_flight = 4;             // KG_CONCURRENCY_PER_PROCESS
  // Borrowed, may be null; must outlive the provider. Counts every HTTP answer by status and
  // every transport failure (LlmRequest), and each request the limiter held back (rpm, tpm,
  // concurrency, another request's 429 pause) with the time it waited from being ready to send
  // (RateLimitWait), once per request; a request's own backoff after a 429 or an error is not a
  // limiter wait. Usage is the caller's to count (ProviderReply::usage).
  telemetry::Recorder* recorder = nullptr;
};

// Starts the provider's event-loop thread. kInvalidArgument for a config it cannot use.
Result<std::unique_ptr<Provider>> MakeOpenAiProvider(OpenAiOptions options);

}  // namespace kg::llm
