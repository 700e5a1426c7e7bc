#include "testing/prometheus.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include <httplib.h>

namespace kg::testing {
namespace {

using json = nlohmann::json;

// A YAML double-quoted scalar: the paths and targets come from the test, never from a user, but
// a temp dir may still hold characters YAML reads specially.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out + "\"";
}

}  // namespace

Prometheus::Prometheus(Options o) {
  if (access(kPrometheusBinary, X_OK) != 0) {
    ADD_FAILURE() << kPrometheusBinary << " is not installed (Debian package prometheus; scripts/deps.sh)";
    return;
  }
  port_ = FreePort();
  // Scrapes every 2 s and rule evaluations every second: a test waits seconds, not minutes, for a
  // sample or an alert. A scrape of a kgflow node reads Redis, MySQL and Neo4j (several round
  // trips), which under a sanitizer may take most of a second: 2 s of timeout leave room (the
  // timeout may not exceed the interval).
  std::string yml =
      "global:\n"
      "  scrape_interval: 2s\n"
      "  scrape_timeout: 2s\n"
      "  evaluation_interval: 1s\n";
  if (!o.rule_files.empty()) {
    yml += "rule_files:\n";
    for (const auto& f : o.rule_files) yml += "  - " + Quoted(f) + "\n";
  }
  yml += "scrape_configs:\n  - job_name: " + Quoted(o.job) + "\n    static_configs:\n      - targets: [";
  for (size_t i = 0; i < o.targets.size(); ++i) yml += (i ? ", " : "") + Quoted(o.targets[i]);
  yml += "]\n";
  WriteFile(dir_.File("prometheus.yml"), yml);

  const std::string addr = "127.0.0.1:" + std::to_string(port_);
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{kPrometheusBinary, "--config.file=" + dir_.File("prometheus.yml"),
                               "--web.listen-address=" + addr, "--storage.tsdb.path=" + dir_.File("tsdb")},
      std::map<std::string, std::string>{}, dir_.path());
  bool exited = false;
  ready_ = WaitFor(
      [&] {
        if (proc_->Wait(std::chrono::milliseconds(0)) != -1) {
          exited = true;
          return true;  // stop waiting: it will never be ready
        }
        httplib::Client c("127.0.0.1", port_);
        c.set_connection_timeout(1, 0);
        c.set_read_timeout(2, 0);
        auto r = c.Get("/-/ready");
        return r && r->status == 200;
      },
      std::chrono::seconds(20));
  ready_ = ready_ && !exited;
  if (!ready_) {
    ADD_FAILURE() << "prometheus on " << addr << (exited ? " exited before it was ready" : " not ready within 20 s")
                  << "; config:\n"
                  << yml << "log:\n"
                  << Log();
  }
}

Prometheus::~Prometheus() {
  if (!proc_) return;
  if (proc_->Signal(SIGTERM)) proc_->Wait(std::chrono::seconds(5));
  // ~Process kills (SIGKILL, to its group) and reaps it if it is still running.
}

std::string Prometheus::Log() const { return proc_ ? proc_->Stderr() + proc_->Stdout() : ""; }

std::string Prometheus::Config() const { return ReadFile(dir_.File("prometheus.yml")); }

Result<json> Prometheus::GetData(const std::string& path, const httplib::Params& params) const {
  if (port_ == 0) return Status::Unavailable("prometheus was not started");
  httplib::Client c("127.0.0.1", port_);
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(10, 0);
  auto r = c.Get(path, params, httplib::Headers{});
  if (!r) return Status::Unavailable("GET " + path + " on prometheus: " + httplib::to_string(r.error()));
  json body = json::parse(r->body, nullptr, false);
  if (!body.is_object()) {
    return Status::Internal("GET " + path + ": HTTP " + std::to_string(r->status) + ", not JSON: " + r->body);
  }
  if (body.value("status", "") != "success") {
    return Status::Invalid(path + ": " + body.value("errorType", "?") + ": " + body.value("error", r->body));
  }
  return body["data"];
}

Result<json> Prometheus::Query(const std::string& expr) const {
  return GetData("/api/v1/query", {{"query", expr}});
}

Result<std::vector<Prometheus::Sample>> Prometheus::Vector(const std::string& expr) const {
  auto data = Query(expr);
  if (!data.ok()) return data.status();
  if (data->value("resultType", "") != "vector") {
    return Status::Invalid(expr + ": a " + data->value("resultType", "?") + ", not an instant vector");
  }
  std::vector<Sample> out;
  for (const auto& s : (*data)["result"]) {
    // Values come as strings ("1.5", "NaN", "+Inf"); strtod reads them all.
    out.push_back({s["metric"], std::strtod(s["value"][1].get<std::string>().c_str(), nullptr)});
  }
  return out;
}

Result<json> Prometheus::Alerts() const {
  auto data = GetData("/api/v1/alerts", {});
  if (!data.ok()) return data.status();
  return (*data)["alerts"];
}

Result<json> Prometheus::Targets() const {
  auto data = GetData("/api/v1/targets", {});
  if (!data.ok()) return data.status();
  return (*data)["activeTargets"];
}

}  // namespace kg::testing
