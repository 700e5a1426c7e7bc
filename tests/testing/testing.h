#pragma once
// Helpers for hermetic tests: temp dirs, free ports, waiting for a condition with a
// deadline, and real child processes of the kgflow binary.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace kg::testing {

// Generated-input tests run a quarter of their cases under AddressSanitizer (several times
// slower there): the release run covers them all, the sanitizer run the code paths.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kSanitizerDivisor = 4;
#else
constexpr int kSanitizerDivisor = 1;
#endif
constexpr int Cases(int n) { return n / kSanitizerDivisor > 0 ? n / kSanitizerDivisor : 1; }

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// Polls `cond` every few milliseconds until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

// Writes `text` to `path`.
void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

// A child process running the kgflow binary with arguments `args` (or, when args[0] is an absolute
// path, that program with the rest) and extra environment variables; its
// stdout and stderr go to files. Killed (SIGKILL to its group) and reaped on destruction
// if still running.
class Process {
 public:
  // With `start_gate_fd` >= 0 the child waits, before exec, until that descriptor reads EOF
  // (the test closes the pipe's write end): processes released together start at once.
  Process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
          const std::string& log_dir, int start_gate_fd = -1);
  ~Process();
  pid_t pid() const { return pid_; }
  // Sends `sig`; returns false if the process is gone.
  bool Signal(int sig) const;
  // Waits for exit up to `timeout`; returns the wait status or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  bool Exited() const { return exited_; }
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string out_, err_;
};

// One run of a command to its end: the exit code (-1 when killed by a signal or still running
// at the deadline, then killed) and what it printed.
struct CliRun {
  int code = -1;
  std::string out, err;
};
// Runs `args` (as Process does) with `env` added, logs in `log_dir`.
CliRun RunToEnd(const std::vector<std::string>& args, const std::string& log_dir,
                const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout);

// The kgflow binary under test (set by CMake).
std::string KgflowBinary();
// The repository's sample documents.
std::string SamplesDir();

// Child pids of `pid` (from /proc/<pid>/task/*/children).
std::vector<pid_t> ChildrenOf(pid_t pid);
// True when /proc/<pid> exists and is not a zombie.
bool Alive(pid_t pid);
// "Z" when `pid` is a zombie, otherwise its state letter; "" when it does not exist.
std::string ProcState(pid_t pid);
// kB of a "Name:   123 kB" line of /proc/<pid>/status (VmRSS, VmHWM, ...), or -1.
long StatusKb(pid_t pid, const std::string& field);

// A `kgflow start` (or other command) node on a free port (KG_HTTP_ADDR, and KG_HEALTH_ADDR for a
// worker node, unless `env` sets them) with its data in `dir`.
class Node {
 public:
  Node(const TempDir& dir, std::map<std::string, std::string> env = {}, std::vector<std::string> args = {"start"},
       bool wait_ready = true, int start_gate_fd = -1);
  bool ready() const { return ready_; }
  int port() const { return port_; }
  Process& proc() { return *proc_; }
  httplib::Client& http() { return *client_; }
  // GET returning parsed JSON, or null on any failure.
  nlohmann::json Get(const std::string& path);
  // Worker pids of this node with their provider (from /proc/<pid>/cmdline).
  std::map<pid_t, std::string> Workers();

 private:
  int port_;
  std::unique_ptr<Process> proc_;
  std::unique_ptr<httplib::Client> client_;
  bool ready_ = false;
};

// The provider a `kgflow __worker` process serves, or "" if `pid` is not one.
std::string WorkerProvider(pid_t pid);

// Document `i` of a corpus the builtin extractor reads: 20 sentence shapes, varied by `i` so
// every document (and its id, a hash of its text) is distinct, and entities recur across
// documents (merges of the same entities meet).
std::string DocumentText(int i);

// A node's graph as JSON (/api/v1/graph/export), without entity descriptions: an entity keeps
// the first non-empty description merged (graph_store.h), so that one field depends on which
// chunk happened to finish first when several workers run. Everything else (documents, chunks,
// entities, mentions, relations with their evidence and weights) must match between two nodes
// given the same documents. Null (and a test failure) when the export cannot be read.
nlohmann::json GraphOf(Node& n);
// "" when two GraphOf answers are equal, else what differs first in each section.
std::string GraphDiff(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace kg::testing
