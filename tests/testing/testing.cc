#include "testing/testing.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace kg::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kgtest-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Process::Process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                 const std::string& log_dir, int start_gate_fd) {
  static int seq = 0;
  ++seq;
  out_ = log_dir + "/proc" + std::to_string(seq) + ".out";
  err_ = log_dir + "/proc" + std::to_string(seq) + ".err";
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string k = kv.substr(0, kv.find('='));
    if (env.count(k) || k.rfind("KG_", 0) == 0 || k == "NODE_ROLE") continue;  // tests own these
    envs.push_back(kv);
  }
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<std::string> argv_s;
  if (args.empty() || args[0].empty() || args[0][0] != '/') argv_s.push_back(KgflowBinary());
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls (the test process has other threads).
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& kv : envs) envp.push_back(kv.data());
  envp.push_back(nullptr);
  sigset_t none;
  sigemptyset(&none);
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no node behind
    int o = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (start_gate_fd >= 0) {
      // Every other descriptor first: a copy of the gate's write end held here would never let it read EOF.
      if (start_gate_fd > 3) close_range(3, static_cast<unsigned>(start_gate_fd) - 1, 0);
      close_range(static_cast<unsigned>(start_gate_fd) + 1, ~0U, 0);
      char c;
      while (read(start_gate_fd, &c, 1) != 0 && errno == EINTR) {
      }
    }
    close_range(3, ~0U, 0);  // the node under test inherits nothing of the test process
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !exited_) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

bool Process::Signal(int sig) const { return !exited_ && kill(pid_, sig) == 0; }

int Process::Wait(std::chrono::milliseconds timeout) {
  if (exited_) return status_;
  bool ok = WaitFor(
      [&] {
        int st = 0;
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
          exited_ = true;
          status_ = st;
          return true;
        }
        return false;
      },
      timeout);
  return ok ? status_ : -1;
}

std::string Process::Stdout() const { return ReadFile(out_); }
std::string Process::Stderr() const { return ReadFile(err_); }

std::string KgflowBinary() { return KG_TEST_BINARY; }
std::string SamplesDir() { return KG_TEST_SAMPLES; }

CliRun RunToEnd(const std::vector<std::string>& args, const std::string& log_dir,
                const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout) {
  Process p(args, env, log_dir);
  int st = p.Wait(timeout);
  CliRun r;
  if (st != -1 && WIFEXITED(st)) r.code = WEXITSTATUS(st);
  r.out = p.Stdout();
  r.err = p.Stderr();
  return r;
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(t.path() / "children");
    pid_t c;
    while (f >> c) out.push_back(c);
  }
  return out;
}

long StatusKb(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

std::string ProcState(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return "";
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return "";
  return line.substr(close + 2, 1);
}

bool Alive(pid_t pid) {
  std::string s = ProcState(pid);
  return !s.empty() && s != "Z" && s != "X";
}

Node::Node(const TempDir& dir, std::map<std::string, std::string> env, std::vector<std::string> args,
           bool wait_ready, int start_gate_fd)
    : port_(FreePort()) {
  env.emplace("KG_DATA_DIR", dir.path() + "/data");
  env.emplace("KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(port_));
  env.emplace("KG_HEALTH_ADDR", "127.0.0.1:" + std::to_string(port_));  // what a worker node listens on
  proc_ = std::make_unique<Process>(args, env, dir.path(), start_gate_fd);
  client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  client_->set_connection_timeout(2);
  if (wait_ready) {
    ready_ = WaitFor(
        [&] {
          auto r = client_->Get("/readyz");
          return r && r->status == 200;
        },
        std::chrono::seconds(15));
  }
}

nlohmann::json Node::Get(const std::string& path) {
  auto r = client_->Get(path);
  if (!r || r->status != 200) return nlohmann::json();
  return nlohmann::json::parse(r->body, nullptr, false);
}

std::string WorkerProvider(pid_t pid) {
  std::string cmd = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i < cmd.size(); ++i) {
    if (cmd[i] == '\0') {
      parts.push_back(cmd.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts.size() < 4 || parts[1] != "__worker") return "";
  for (size_t i = 2; i + 1 < parts.size(); ++i) {
    if (parts[i] == "--provider") return parts[i + 1];
  }
  return "";
}

std::map<pid_t, std::string> Node::Workers() {
  std::map<pid_t, std::string> out;
  for (pid_t c : ChildrenOf(proc_->pid())) {
    if (!Alive(c)) continue;
    std::string p = WorkerProvider(c);
    if (!p.empty()) out[c] = p;
  }
  return out;
}

std::string DocumentText(int i) {
  static const char* kPeople[] = {"Alice Moreau", "Bruno Keller", "Chen Wei", "Dana Okafor", "Emil Sato"};
  static const char* kOrgs[] = {"Meridian Analytics", "Helix Dynamics", "Linden Institute", "Aurora Labs"};
  static const char* kCities[] = {"Lisbon", "Oslo", "Nairobi", "Osaka", "Quito"};
  std::string p = kPeople[i % 5], o = kOrgs[i % 4], c = kCities[(i / 5) % 5];
  return p + " joined " + o + " in " + c + " in " + std::to_string(1990 + i) + ". " + o + " is based in " + c +
         ". " + p + " founded " + kOrgs[(i + 1) % 4] + " with " + kPeople[(i + 2) % 5] + ". Report number " +
         std::to_string(i) + " was filed by " + p + ".";
}

nlohmann::json GraphOf(Node& n) {
  auto r = n.http().Get("/api/v1/graph/export?format=json");
  EXPECT_TRUE(r && r->status == 200);
  if (!r || r->status != 200) return nlohmann::json();
  nlohmann::json g = nlohmann::json::parse(r->body);
  for (auto& e : g["entities"]) e.erase("description");
  return g;
}

std::string GraphDiff(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_null() || b.is_null()) return "a graph could not be read";
  std::string out;
  for (const auto& [section, items] : a.items()) {
    if (!b.contains(section)) {
      out += "section " + section + " missing\n";
      continue;
    }
    const nlohmann::json& other = b[section];
    if (items == other) continue;
    out += section + ": " + std::to_string(items.size()) + " vs " + std::to_string(other.size()) + " items";
    for (size_t i = 0; i < std::max(items.size(), other.size()); ++i) {
      nlohmann::json x = i < items.size() ? items[i] : nlohmann::json();
      nlohmann::json y = i < other.size() ? other[i] : nlohmann::json();
      if (x != y) {
        out += "; first difference at " + std::to_string(i) + ": " + x.dump().substr(0, 400) + " vs " +
               y.dump().substr(0, 400);
        break;
      }
    }
    out += "\n";
  }
  return out;
}

}  // namespace kg::testing
