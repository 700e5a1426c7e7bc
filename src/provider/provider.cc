#include "provider/provider.h"

#include <chrono>
#include <cstdlib>
#include <thread>

namespace kg {
namespace {

class BuiltinProvider final : public Provider {
 public:
  explicit BuiltinProvider(ProviderConfig c) : c_(std::move(c)) {}

  Result<Extraction> Extract(const std::string& text) override {
    if (c_.fault == "crash_on_marker" && text.find(c_.crash_marker) != std::string::npos) {
      std::abort();  // deliberate: exercises crash attribution and poison handling
    }
    if (c_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c_.delay_ms));
    return BuiltinExtract(text);
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

}  // namespace kg
