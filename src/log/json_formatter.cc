#include "log/json_formatter.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "log/context.h"

namespace kg {

namespace {

// The names KG_LOG_LEVEL uses (spdlog says "warning").
const char* LevelName(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

// 2026-01-02T03:04:05.678Z
std::string Rfc3339Ms(spdlog::log_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<time_t>(ms / 1000);
  auto frac = ms % 1000;
  if (frac < 0) {  // before 1970: floor, not truncate
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(frac));
  return buf;
}

}  // namespace

JsonLogFormatter::JsonLogFormatter(std::string node, std::string provider)
    : node_(std::move(node)), provider_(std::move(provider)), pid_(static_cast<long>(::getpid())) {}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  nlohmann::ordered_json j;
  j["time"] = Rfc3339Ms(msg.time);
  j["level"] = LevelName(msg.level);
  j["node"] = node_;
  j["pid"] = pid_;
  if (!provider_.empty()) j["provider"] = provider_;
  const LogContext& ctx = CurrentLogContext();
  if (!ctx.task.empty()) j["task"] = ctx.task;
  if (!ctx.chunk.empty()) j["chunk"] = ctx.chunk;
  j["message"] = std::string(msg.payload.data(), msg.payload.size());
  // replace: invalid UTF-8 becomes U+FFFD instead of an exception; ensure_ascii off keeps valid
  // UTF-8 as it is. Control characters are escaped either way.
  std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  dest.append(line.data(), line.data() + line.size());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>(node_, provider_);
}

void SetLogFormat(spdlog::logger& logger, const std::string& format, const std::string& node,
                  const std::string& provider) {
  if (format == "json") {
    logger.set_formatter(std::make_unique<JsonLogFormatter>(node, provider));
  } else {
    logger.set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%P] %v");
  }
}

}  // namespace kg
