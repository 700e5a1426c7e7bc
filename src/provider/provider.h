#pragma once
// A provider names the entities and relations in one chunk of text.

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"
#include "provider/extraction.h"

namespace kg {

class Provider {
 public:
  virtual ~Provider() = default;
  // Blocking; safe to call from several threads at once. A retryable failure is
  // kUnavailable; kInvalidArgument means the chunk can never succeed.
  virtual Result<Extraction> Extract(const std::string& text) = 0;
  virtual const std::string& name() const = 0;
};

Result<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& config);

// The offline rule-based extractor behind kind "builtin" (see docs/builtin-extractor.md).
// Deterministic: the same text gives the same extraction.
Extraction BuiltinExtract(std::string_view text);

}  // namespace kg
