#pragma once
// The calling thread's log context: the task and chunk it works on, which the JSON log format
// (json_formatter.h) adds to every line the thread logs meanwhile.
//
// Thread safety: the context is thread-local; a scope affects only the thread that made it.

#include <string>

namespace kg {

struct LogContext {
  std::string task;   // "" when the thread works on no task
  std::string chunk;  // "" when it works on no single chunk
};

// This thread's context (empty outside every LogScope).
const LogContext& CurrentLogContext();

// Sets this thread's context for its lifetime and restores the previous one after (scopes nest).
class LogScope {
 public:
  LogScope(std::string task, std::string chunk);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  LogContext saved_;
};

}  // namespace kg
