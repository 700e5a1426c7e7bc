#include "supervisor/reaper.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

namespace kg {

std::string ExitStatus::Describe() const {
  if (exited) return "exit code " + std::to_string(code);
  const char* n = sigabbrev_np(signal);
  return std::string("killed by SIG") + (n ? n : std::to_string(signal).c_str());
}

void Reaper::Track(pid_t pid) { pids_.insert(pid); }

std::vector<std::pair<pid_t, ExitStatus>> Reaper::ReapExited() {
  std::vector<std::pair<pid_t, ExitStatus>> out;
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (!pids_.erase(pid)) continue;
    ExitStatus e;
    e.exited = WIFEXITED(status);
    e.code = e.exited ? WEXITSTATUS(status) : 0;
    e.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    out.emplace_back(pid, e);
  }
  return out;
}

}  // namespace kg
