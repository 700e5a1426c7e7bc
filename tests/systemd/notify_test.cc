// A node under a stand-in for systemd: NOTIFY_SOCKET is a unix datagram socket this test bound,
// WATCHDOG_USEC asks for watchdog pings. What the node sends there, when, and from which pid.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include "testing/testing.h"

namespace kg {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Notice {
  std::string text;
  pid_t pid = 0;  // the sender's, from SCM_CREDENTIALS
  Clock::time_point at;
  bool Has(const std::string& line) const { return ("\n" + text + "\n").find("\n" + line + "\n") != std::string::npos; }
};

// The socket systemd would listen on: datagrams with the sender's credentials.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    int on = 1;
    EXPECT_EQ(::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
  }
  ~NotifySocket() { ::close(fd_); }
  const std::string& path() const { return path_; }

  // The next datagram within `timeout`, or nullopt.
  std::optional<Notice> Next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &m, 0);
    if (n < 0) return std::nullopt;
    Notice out{std::string(buf, static_cast<size_t>(n)), 0, Clock::now()};
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        out.pid = cred.pid;
      }
    }
    return out;
  }

  // Datagrams until one has `line` (returned) or `timeout` passes (nullopt); all seen go to `seen`.
  std::optional<Notice> Until(const std::string& line, std::chrono::milliseconds timeout,
                              std::vector<Notice>* seen = nullptr) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto n = Next(std::max(left, 1ms));
      if (!n) continue;
      if (seen) seen->push_back(*n);
      if (n->Has(line)) return n;
    }
    return std::nullopt;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// The thread of `pid` named `name` (pthread_setname_np), or -1.
pid_t ThreadNamed(pid_t pid, const std::string& name) {
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::string comm = testing::ReadFile(e.path().string() + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == name) return static_cast<pid_t>(std::stol(e.path().filename().string()));
  }
  return -1;
}

// Stops one thread of a child process, leaving its other threads running (ptrace seize and
// interrupt: a hung thread, induced from outside with no hook in the node); resumes it on Resume()
// or destruction.
class FrozenThread {
 public:
  explicit FrozenThread(pid_t tid) : tid_(tid) {
    if (::ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) != 0) {
      error_ = std::string("PTRACE_SEIZE: ") + std::strerror(errno);
      return;
    }
    attached_ = true;
    if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) {
      error_ = std::string("PTRACE_INTERRUPT: ") + std::strerror(errno);
      return;
    }
    int status = 0;
    if (::waitpid(tid_, &status, __WALL) != tid_ || !WIFSTOPPED(status)) error_ = "the thread did not stop";
  }
  ~FrozenThread() { Resume(); }
  void Resume() {
    if (attached_) (void)::ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
    attached_ = false;
  }
  const std::string& error() const { return error_; }

 private:
  pid_t tid_;
  bool attached_ = false;
  std::string error_;
};

int CountWatchdogPings(NotifySocket& sock, std::chrono::milliseconds during, pid_t from) {
  int pings = 0;
  auto deadline = Clock::now() + during;
  while (Clock::now() < deadline) {
    auto n = sock.Next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) + 1ms);
    if (n && n->Has("WATCHDOG=1") && n->pid == from) ++pings;
  }
  return pings;
}

// Waits until no WATCHDOG=1 has come for `quiet` (true), or `timeout` passes (false).
bool PingsStop(NotifySocket& sock, std::chrono::milliseconds quiet, std::chrono::milliseconds timeout,
               std::vector<Notice>* seen) {
  auto deadline = Clock::now() + timeout;
  auto last_ping = Clock::now();
  while (Clock::now() < deadline) {
    if (Clock::now() - last_ping >= quiet) return true;
    auto n = sock.Next(100ms);
    if (!n) continue;
    seen->push_back(*n);
    if (n->Has("WATCHDOG=1")) last_ping = n->at;
  }
  return false;
}

std::map<std::string, std::string> SystemdEnv(const NotifySocket& sock) {
  // 2 s: a ping every 500 ms.
  return {{"NOTIFY_SOCKET", sock.path()}, {"WATCHDOG_USEC", "2000000"}};
}

// Verifies a node (role all) under Type=notify: READY=1 comes from the node's own pid once its
// port listens (at that moment /healthz answers), with a STATUS line; WATCHDOG=1 follows again and
// again (every quarter of WATCHDOG_USEC); SIGTERM brings STOPPING=1 and then exit 0.
TEST(SystemdNotify, ReadyOnceListeningPingsAndStoppingOnSigterm) {
  testing::TempDir dir;
  NotifySocket sock(dir.File("notify.sock"));
  testing::Node n(dir, SystemdEnv(sock), {"start"}, /*wait_ready=*/false);
  std::vector<Notice> before;
  auto ready = sock.Until("READY=1", 30s, &before);
  ASSERT_TRUE(ready) << n.proc().Stderr();
  // Right away: the port must listen and answer (READY after the listener, never before).
  auto health = n.http().Get("/healthz");
  ASSERT_TRUE(health) << "READY=1 came before the port listened";
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(ready->pid, n.proc().pid()) << "only the node itself notifies (NotifyAccess=main)";
  EXPECT_NE(ready->text.find("STATUS="), std::string::npos) << ready->text;
  for (const auto& b : before) EXPECT_FALSE(b.Has("WATCHDOG=1")) << "a watchdog ping before READY=1";

  // 3 s of pings every 500 ms: at least 3 (slack for a loaded or sanitized run), all from the node.
  EXPECT_GE(CountWatchdogPings(sock, 3000ms, n.proc().pid()), 3) << n.proc().Stderr();

  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  auto stopping = sock.Until("STOPPING=1", 20s);
  ASSERT_TRUE(stopping) << n.proc().Stderr();
  EXPECT_EQ(stopping->pid, n.proc().pid());
  int st = n.proc().Wait(60s);
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0) << n.proc().Stderr();
}

// Once a frozen thread runs again: the pings resume, and SIGTERM stops the node cleanly.
void ExpectPingsResumeAndACleanStop(NotifySocket& sock, testing::Node& n) {
  EXPECT_GE(CountWatchdogPings(sock, 3000ms, n.proc().pid()), 2) << "pings did not resume";
  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  int st = n.proc().Wait(60s);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();
}

// Verifies the watchdog pings follow the guard loop: with the guard thread ("kg-guard") stopped
// from outside (ptrace; the node has no test hook) while the rest of the node runs, the pings stop
// (the supervisor's reconcile loop no longer turns) and the node says why in STATUS and its log;
// once the thread runs again, the pings resume.
TEST(SystemdNotify, HungGuardLoopStopsThePings) {
  testing::TempDir dir;
  NotifySocket sock(dir.File("notify.sock"));
  testing::Node n(dir, SystemdEnv(sock), {"start"}, /*wait_ready=*/false);
  ASSERT_TRUE(sock.Until("READY=1", 30s)) << n.proc().Stderr();
  ASSERT_GE(CountWatchdogPings(sock, 1500ms, n.proc().pid()), 2);
  pid_t guard = ThreadNamed(n.proc().pid(), "kg-guard");
  ASSERT_GT(guard, 0);
  std::vector<Notice> seen;
  {
    FrozenThread frozen(guard);
    ASSERT_EQ(frozen.error(), "");
    // The guard turns at least every 10 s; the node allows 15 s before it withholds the pings.
    EXPECT_TRUE(PingsStop(sock, 3s, 30s, &seen)) << "pings went on with the guard loop stopped";
    bool said = false;
    for (const auto& s : seen) said = said || s.text.find("STATUS=watchdog pings withheld: guard loop") != std::string::npos;
    EXPECT_TRUE(said) << "no STATUS saying why";
    EXPECT_NE(n.proc().Stderr().find("withholding watchdog pings: guard loop"), std::string::npos) << n.proc().Stderr();
    // The HTTP side still answers: only the guard hangs.
    auto health = n.http().Get("/healthz");
    EXPECT_TRUE(health && health->status == 200);
  }
  ExpectPingsResumeAndACleanStop(sock, n);
}

// Verifies a web-only node (no supervisor) pings from its HTTP event loop: READY=1 once the API
// listens, pings while the loop answers, and none once the loop's thread ("kg-http") is stopped,
// withheld only after /healthz has not answered for half the watchdog interval.
TEST(SystemdNotify, WebNodePingsFollowTheHttpEventLoop) {
  testing::TempDir dir;
  NotifySocket sock(dir.File("notify.sock"));
  auto env = SystemdEnv(sock);
  env["NODE_ROLE"] = "web";
  testing::Node n(dir, env, {"start"}, /*wait_ready=*/false);
  ASSERT_TRUE(sock.Until("READY=1", 30s)) << n.proc().Stderr();
  auto health = n.http().Get("/healthz");
  ASSERT_TRUE(health && health->status == 200);
  ASSERT_GE(CountWatchdogPings(sock, 3000ms, n.proc().pid()), 3) << n.proc().Stderr();
  pid_t loop = ThreadNamed(n.proc().pid(), "kg-http");
  ASSERT_GT(loop, 0);
  std::vector<Notice> seen;
  {
    FrozenThread frozen(loop);
    ASSERT_EQ(frozen.error(), "");
    EXPECT_TRUE(PingsStop(sock, 3s, 15s, &seen)) << "pings went on with the HTTP event loop stopped";
  }
  const std::string log = n.proc().Stderr();
  EXPECT_NE(log.find("withholding watchdog pings: HTTP event loop"), std::string::npos) << log;
  // Not at the first slow answer: only once /healthz has not answered for half the watchdog
  // interval (2 s here).
  size_t gap_at = log.find("(no answer for ");
  ASSERT_NE(gap_at, std::string::npos) << log;
  EXPECT_GT(std::stoll(log.substr(gap_at + 15)), 1000) << log;
  ExpectPingsResumeAndACleanStop(sock, n);
}

// Verifies that without NOTIFY_SOCKET the node sends nothing and starts no watchdog (WATCHDOG_USEC
// alone is ignored), and runs as usual.
TEST(SystemdNotify, NoNotifySocketNoNotifications) {
  testing::TempDir dir;
  testing::Node n(dir, {{"WATCHDOG_USEC", "2000000"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  EXPECT_EQ(n.proc().Stderr().find("systemd:"), std::string::npos) << n.proc().Stderr();
  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  int st = n.proc().Wait(60s);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();
}

}  // namespace
}  // namespace kg
