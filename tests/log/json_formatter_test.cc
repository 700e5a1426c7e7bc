// The JSON log line format (KG_LOG_FORMAT=json) on its own: fields, escaping, the log context.
#include "log/json_formatter.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "log/context.h"

namespace kg {
namespace {

using nlohmann::json;

std::string Format(JsonLogFormatter& f, spdlog::level::level_enum level, std::string_view message,
                   spdlog::log_clock::time_point t = spdlog::log_clock::now()) {
  spdlog::details::log_msg msg(t, spdlog::source_loc{}, "kgflow", level, message);
  spdlog::memory_buf_t buf;
  f.format(msg, buf);
  return std::string(buf.data(), buf.size());
}

// One line, ending in a newline, that parses as a JSON object.
json ParseLine(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line: " << line;
  return json::parse(line);  // throws (and fails the test) on invalid JSON
}

// Verifies the fields of a line: RFC 3339 UTC time with milliseconds, the level by the name
// KG_LOG_LEVEL uses, node, pid, provider when given, the message as logged, and no task or chunk
// outside a LogScope.
TEST(JsonLogFormatter, Fields) {
  JsonLogFormatter f("node-7", "builtin");
  // 2026-01-02T03:04:05.678Z
  auto t = spdlog::log_clock::time_point(std::chrono::milliseconds(1767323045678));
  json j = ParseLine(Format(f, spdlog::level::warn, "hello", t));
  EXPECT_EQ(j["time"], "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["node"], "node-7");
  EXPECT_EQ(j["pid"], getpid());
  EXPECT_EQ(j["provider"], "builtin");
  EXPECT_EQ(j["message"], "hello");
  EXPECT_FALSE(j.contains("task"));
  EXPECT_FALSE(j.contains("chunk"));
  // A whole second: still three digits of milliseconds.
  json k = ParseLine(Format(f, spdlog::level::err, "x", spdlog::log_clock::time_point(std::chrono::seconds(0))));
  EXPECT_EQ(k["time"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(k["level"], "error");
  // A node (not a worker process) has no provider field.
  JsonLogFormatter node("node-7", "");
  EXPECT_FALSE(ParseLine(Format(node, spdlog::level::info, "x")).contains("provider"));
}

// Verifies that any message makes one valid JSON line that gives it back: quotes, backslashes,
// newlines, every control character, valid UTF-8 kept as is, invalid UTF-8 (a lone continuation
// byte, a truncated sequence, 0xff, an overlong encoding) replaced by U+FFFD.
TEST(JsonLogFormatter, EscapesAnyMessage) {
  JsonLogFormatter f("n", "");
  std::string tricky = "say \"hi\" \\ back\nnew line\r\t";
  for (int c = 0; c < 0x20; ++c) tricky += static_cast<char>(c);
  tricky += "\x7f é 李明 🙂";
  EXPECT_EQ(ParseLine(Format(f, spdlog::level::info, tricky))["message"], tricky);

  std::string invalid = std::string("a\x80") + "b\xe6\x9d" + "c\xff" + "d\xc0\xaf" + "e";
  std::string line = Format(f, spdlog::level::info, invalid);
  json j = ParseLine(line);
  std::string m = j["message"];
  EXPECT_EQ(m.front(), 'a');
  EXPECT_EQ(m.back(), 'e');
  EXPECT_NE(m.find("\xef\xbf\xbd"), std::string::npos) << m;  // U+FFFD
  for (char ch : {'b', 'c', 'd'}) EXPECT_NE(m.find(ch), std::string::npos);
  // An empty message, and a node name that needs escaping too.
  JsonLogFormatter g("node \"q\"\n", "");
  json e = ParseLine(Format(g, spdlog::level::info, ""));
  EXPECT_EQ(e["message"], "");
  EXPECT_EQ(e["node"], "node \"q\"\n");
}

// Verifies task and chunk come from this thread's LogScope: set inside it, restored by a nested
// scope's end, gone after it, and never seen by another thread.
TEST(JsonLogFormatter, TaskAndChunkFromTheThreadsScope) {
  JsonLogFormatter f("n", "p");
  {
    LogScope outer("t-1", "c-1");
    json j = ParseLine(Format(f, spdlog::level::info, "m"));
    EXPECT_EQ(j["task"], "t-1");
    EXPECT_EQ(j["chunk"], "c-1");
    {
      LogScope inner("t-2", "");
      json k = ParseLine(Format(f, spdlog::level::info, "m"));
      EXPECT_EQ(k["task"], "t-2");
      EXPECT_FALSE(k.contains("chunk"));
    }
    EXPECT_EQ(ParseLine(Format(f, spdlog::level::info, "m"))["chunk"], "c-1");
    json other;
    std::thread([&] { other = ParseLine(Format(f, spdlog::level::info, "m")); }).join();
    EXPECT_FALSE(other.contains("task"));
  }
  EXPECT_FALSE(ParseLine(Format(f, spdlog::level::info, "m")).contains("task"));
}

// Verifies SetLogFormat through a real logger: "json" gives JSON lines (clone() keeps the
// fields), "text" the usual pattern.
TEST(JsonLogFormatter, SetLogFormatOnALogger) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("t", sink);
  SetLogFormat(logger, "json", "node-1", "");
  logger.info("value {}", 42);
  json j = ParseLine(out.str());
  EXPECT_EQ(j["message"], "value 42");
  EXPECT_EQ(j["node"], "node-1");
  out.str("");
  SetLogFormat(logger, "text", "node-1", "");
  logger.info("plain");
  EXPECT_NE(out.str().find(" info ["), std::string::npos) << out.str();
  EXPECT_EQ(out.str().front() == '{', false);
}

}  // namespace
}  // namespace kg
