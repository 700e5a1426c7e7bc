#pragma once
// A real Prometheus server for tests: Debian's /usr/bin/prometheus as a child process on a free
// loopback port, its TSDB in a temp dir, scraping the given targets every 2 seconds (timeout 2 s)
// and evaluating the given rule files every second (so an alert with `for: 0m` fires about a
// second after its expression first holds on a scraped sample).
//
// Thread safety: the const methods may be called from any thread (each call opens its own HTTP
// client). Construct it on a thread that outlives it: the child is started with PR_SET_PDEATHSIG
// (testing.h's Process), which fires when the creating thread exits.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "testing/testing.h"

namespace kg::testing {

class Prometheus {
 public:
  struct Options {
    // "HOST:PORT" of each target, scraped at /metrics every 2 seconds.
    std::vector<std::string> targets;
    // The job label of the targets.
    std::string job = "kgflow";
    // Absolute paths of rule files (alerting or recording); a file Prometheus refuses fails the
    // start, with what it printed.
    std::vector<std::string> rule_files;
  };

  // Writes prometheus.yml, starts the server (--web.listen-address=127.0.0.1:PORT,
  // --storage.tsdb.path in a temp dir) and waits up to 20 s for GET /-/ready to answer 200. On
  // failure (the binary missing, a bad rule file, no readiness) the calling test fails
  // (ADD_FAILURE, with the server's stderr) and ready() is false.
  explicit Prometheus(Options o);
  // SIGTERM, then SIGKILL to its process group if it has not exited within 5 s; reaped by pid.
  ~Prometheus();
  Prometheus(const Prometheus&) = delete;
  Prometheus& operator=(const Prometheus&) = delete;

  bool ready() const { return ready_; }
  int port() const { return port_; }
  // What the server printed (its log), for failure messages.
  std::string Log() const;
  // The prometheus.yml it was started with.
  std::string Config() const;

  // GET /api/v1/query?query=EXPR (an instant query at the current time): the response's `data`
  // ({"resultType": "vector", "result": [{"metric": {...}, "value": [ts, "v"]}, ...]} and so on).
  // A PromQL error is kInvalidArgument with Prometheus's errorType and error; an unreachable
  // server kUnavailable.
  Result<nlohmann::json> Query(const std::string& expr) const;
  // The samples of an instant vector query, each as its labels and value; an error as Query's (a
  // query whose result is not a vector is kInvalidArgument).
  struct Sample {
    nlohmann::json labels;
    double value = 0;
  };
  Result<std::vector<Sample>> Vector(const std::string& expr) const;
  // GET /api/v1/alerts: the `alerts` array ({"labels", "annotations", "state": "pending"|"firing",
  // "activeAt", "value"} each); errors as Query's.
  Result<nlohmann::json> Alerts() const;
  // GET /api/v1/targets: the `activeTargets` array ({"labels", "health": "up"|"down"|"unknown",
  // "lastError", "lastScrape", ...} each).
  Result<nlohmann::json> Targets() const;

 private:
  Result<nlohmann::json> GetData(const std::string& path, const httplib::Params& params) const;

  TempDir dir_;
  std::unique_ptr<Process> proc_;
  int port_ = 0;
  bool ready_ = false;
};

// The Prometheus server binary (Debian's package: /usr/bin/prometheus).
inline constexpr const char* kPrometheusBinary = "/usr/bin/prometheus";

}  // namespace kg::testing
