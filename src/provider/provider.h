#pragma once
// A provider names the entities and relations in one chunk of text.
//
// The call is asynchronous: a chunk's extraction may wait seconds on an LLM, and a worker
// keeps hundreds in flight, so a call in flight costs a socket and a buffer, not a thread.
// The builtin extractor answers at once, in the calling thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"
#include "provider/extraction.h"

namespace kg {

namespace telemetry {
class Recorder;  // telemetry/worker_stats.h
}

// What one chunk's extraction cost (LLM providers; all zero for builtin).
struct Usage {
  int64_t prompt_tokens = 0;      // sum of usage.prompt_tokens over every request sent for the chunk
  int64_t completion_tokens = 0;  // likewise usage.completion_tokens
  int64_t requests = 0;           // HTTP requests sent (retries and re-asks included)
  double cost = 0;                // tokens x the provider's prices per million (0 when no price is set)
};

struct ProviderReply {
  // ok; kUnavailable: failed this time, worth retrying later (transport, 429/5xx past the
  // provider's own retries, output still unusable after the re-ask); kInvalidArgument: can never
  // succeed (dead-letter at once). The message says why, with at most a short snippet of the
  // model's output; it never carries a secret.
  Status status;
  Extraction extraction;   // valid records only (see dropped_records)
  Usage usage;             // spent on this chunk by this call, also when it failed
  int dropped_records = 0; // records of the output that failed validation and were left out
  // The model output that was accepted, for the response cache (empty: nothing to cache).
  std::string cache_content;
};

class Provider {
 public:
  using Done = std::function<void(ProviderReply)>;
  virtual ~Provider() = default;
  // Starts the extraction of `text`. Calls `done` exactly once: in the calling thread before
  // returning (builtin) or later from a thread of the provider's own. Safe to call from several
  // threads at once. `done` must not block for long (it runs on the provider's event loop).
  // Destroying the provider abandons the calls in flight (their `done` is never called).
  virtual void Extract(const std::string& text, Done done) = 0;
  virtual const std::string& name() const = 0;

  // The response-cache key of `text`: a hash of (provider kind, base URL, model, prompt version,
  // text); empty when this provider's answers are not cached (builtin: it is cheaper to rerun).
  virtual std::string CacheKey(const std::string& text) const { (void)text; return {}; }
  // At most what extracting `text` should spend in tokens, before the call (prompt estimate plus the
  // output cap); 0 when the provider spends none (builtin). Token budgets reserve it.
  virtual int64_t EstimateTokens(const std::string& text) const { (void)text; return 0; }

  // Turns cached content (a former reply's cache_content for `text`) back into a reply, with no
  // request and zero usage: the same extraction a live answer gave, evidence sentences included.
  // kInvalidArgument when the content no longer parses (then it is not used).
  virtual ProviderReply FromCache(const std::string& content, const std::string& text) const {
    (void)content;
    (void)text;
    return ProviderReply{Status::Invalid("no response cache"), {}, {}, 0, {}};
  }
};

// The provider of `config` (kind builtin or openai). An openai provider needs the whole
// configuration for its cluster-wide limits (Redis when REDIS_HOST is set). kInvalidArgument
// names what is wrong (a missing API key names its variable). `recorder` (borrowed, may be null,
// must outlive the provider) receives what an openai provider counts (llm/openai_provider.h).
Result<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& config, const Config& node,
                                               telemetry::Recorder* recorder = nullptr);
Result<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& config);  // builtin only

// Runs one extraction to the end (for tools and tests: blocks the calling thread).
ProviderReply ExtractNow(Provider& provider, const std::string& text);

// The offline rule-based extractor behind kind "builtin" (see docs/builtin-extractor.md).
// Deterministic: the same text gives the same extraction.
Extraction BuiltinExtract(std::string_view text);

}  // namespace kg
