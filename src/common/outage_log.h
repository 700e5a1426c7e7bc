#pragma once
// Logs a backend outage once when it starts and once when it ends, never per failed attempt: a
// Redis or MySQL restart gives two lines per component, not one per retry (issue: log spam hides
// the one line that matters). Thread-safe.
#include <spdlog/spdlog.h>

#include <string>

#include "common/mutex.h"
#include "common/status.h"
#include "common/util.h"

namespace kg {

class OutageLog {
 public:
  explicit OutageLog(std::string what) : what_(std::move(what)) {}
  // Records the outcome of one attempt; logs only a change between failing and answering.
  void Record(const Status& s) {
    MutexLock l(mu_);
    if (!s.ok() && since_ms_ == 0) {
      since_ms_ = MonoMs();
      spdlog::warn("{}: {} (logged once until it recovers)", what_, s.message());
    } else if (s.ok() && since_ms_ != 0) {
      spdlog::info("{}: recovered after {:.1f} s", what_, (MonoMs() - since_ms_) / 1000.0);
      since_ms_ = 0;
    }
  }

 private:
  const std::string what_;
  Mutex mu_;
  int64_t since_ms_ KG_GUARDED_BY(mu_) = 0;  // 0: answering
};

}  // namespace kg
