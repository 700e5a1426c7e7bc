#include "supervisor/reaper.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <unistd.h>

#include <cerrno>

namespace kg {

std::string ExitStatus::Describe() const {
  if (exited) return "exit code " + std::to_string(code);
  if (signal == 0) return "exit status unknown (reaped elsewhere)";
  const char* n = sigabbrev_np(signal);
  return std::string("killed by SIG") + (n ? n : std::to_string(signal).c_str());
}

void Reaper::Track(pid_t pid) {
  // The raw syscall: glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);  // pidfds are close-on-exec already; be explicit
  children_.emplace(pid, UniqueFd(fd));
}

std::vector<std::pair<pid_t, ExitStatus>> Reaper::ReapExited() {
  std::vector<std::pair<pid_t, ExitStatus>> out;
  for (auto it = children_.begin(); it != children_.end();) {
    siginfo_t info{};
    int rc = it->second.valid() ? waitid(P_PIDFD, static_cast<id_t>(it->second.get()), &info, WEXITED | WNOHANG)
                                : waitid(P_PID, static_cast<id_t>(it->first), &info, WEXITED | WNOHANG);
    if (rc != 0 && errno == ECHILD) {  // reaped by someone else: nothing more to learn
      out.emplace_back(it->first, ExitStatus{false, 0, 0});
      it = children_.erase(it);
      continue;
    }
    if (rc != 0 || info.si_pid == 0) {  // still running
      ++it;
      continue;
    }
    ExitStatus e;
    e.exited = info.si_code == CLD_EXITED;
    (e.exited ? e.code : e.signal) = info.si_status;
    out.emplace_back(it->first, e);
    it = children_.erase(it);
  }
  return out;
}

std::vector<int> Reaper::PollFds() const {
  std::vector<int> fds;
  for (const auto& [_, fd] : children_) {
    if (fd.valid()) fds.push_back(fd.get());
  }
  return fds;
}

bool Reaper::NeedsPolling() const {
  for (const auto& [_, fd] : children_) {
    if (!fd.valid()) return true;
  }
  return false;
}

}  // namespace kg
