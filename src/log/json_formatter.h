#pragma once
// KG_LOG_FORMAT=json: one JSON object per log line, for log stacks to index (README,
// "Configuration"):
//   {"time":"2026-01-02T03:04:05.678Z","level":"info","node":"node-1","pid":123,
//    "provider":"builtin","task":"t-..","chunk":"c-..","message":"..."}
// time is RFC 3339 in UTC with milliseconds; level one of trace, debug, info, warn, error,
// critical; provider only in a worker process; task and chunk only while the logging thread is
// inside a LogScope (log/context.h) that names them. The line is valid JSON whatever the message
// holds: quotes, backslashes and control characters are escaped, invalid UTF-8 is replaced by
// U+FFFD.
//
// Thread safety: format() may run on any thread (spdlog calls it under its sink's lock).

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace kg {

class JsonLogFormatter : public spdlog::formatter {
 public:
  // `provider`: "" except in a worker process. The pid is this process's, read once.
  JsonLogFormatter(std::string node, std::string provider);
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::string node_;
  std::string provider_;
  long pid_;
};

// Sets `logger`'s output to `format`: "text" (the default pattern) or "json" (JsonLogFormatter).
// Precondition: `format` is one of them (the configuration checked KG_LOG_FORMAT).
void SetLogFormat(spdlog::logger& logger, const std::string& format, const std::string& node,
                  const std::string& provider);

}  // namespace kg
