#include "log/context.h"

#include <utility>

namespace kg {

namespace {
thread_local LogContext t_context;
}  // namespace

const LogContext& CurrentLogContext() { return t_context; }

LogScope::LogScope(std::string task, std::string chunk)
    : saved_(std::exchange(t_context, LogContext{std::move(task), std::move(chunk)})) {}

LogScope::~LogScope() { t_context = std::move(saved_); }

}  // namespace kg
