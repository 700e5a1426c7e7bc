#include "provider/provider.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "llm/limiter.h"
#include "llm/openai_provider.h"
#include "llm/prompt.h"

namespace kg {
namespace {

class BuiltinProvider final : public Provider {
 public:
  explicit BuiltinProvider(ProviderConfig c) : c_(std::move(c)) {}

  void Extract(const std::string& text, Done done) override {
    if (c_.fault == "crash_on_marker" && text.find(c_.crash_marker) != std::string::npos) {
      std::abort();  // deliberate: exercises crash attribution and poison handling
    }
    if (c_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c_.delay_ms));
    ProviderReply r;
    r.extraction = BuiltinExtract(text);
    done(std::move(r));
  }
  const std::string& name() const override { return c_.name; }

 private:
  ProviderConfig c_;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& config) {
  if (config.kind == "builtin") return std::unique_ptr<Provider>(std::make_unique<BuiltinProvider>(config));
  return Status::Invalid("provider " + config.name + ": unknown kind '" + config.kind + "'");
}

Result<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& config, const Config& node,
                                               telemetry::Recorder* recorder) {
  if (config.kind != "openai") return MakeProvider(config);
  llm::OpenAiOptions o;
  o.config = config;
  if (config.prompt_file.empty()) {
    o.prompt = llm::DefaultPrompt();
  } else {
    KG_ASSIGN_OR_RETURN(o.prompt, llm::LoadPrompt(config.prompt_file));
  }
  llm::RateLimits limits{config.max_concurrency, config.rpm, config.tpm};
  if (!node.redis_host.empty()) {
    // Cluster-wide limits: every process of every node on this Redis shares them.
    o.limiter = llm::MakeRedisLimiter(RedisEndpointOf(node), config.name,
                                      node.node_name + "/" + std::to_string(::getpid()), limits);
  } else {
    o.limiter = llm::MakeLocalLimiter(limits);
  }
  o.max_in_flight = std::max(1, ConcurrencyOf(node, config));
  o.recorder = recorder;
  return llm::MakeOpenAiProvider(std::move(o));
}

ProviderReply ExtractNow(Provider& provider, const std::string& text) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<ProviderReply> out;
  provider.Extract(text, [&](ProviderReply r) {
    std::lock_guard<std::mutex> l(mu);
    out = std::move(r);
    cv.notify_all();
  });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return out.has_value(); });
  return std::move(*out);
}

}  // namespace kg
