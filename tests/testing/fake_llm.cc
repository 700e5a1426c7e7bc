#include "testing/fake_llm.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <vector>

#include <httplib.h>

namespace kg::testing {

std::vector<std::string> FakeLlmCommand() {
  return {KG_TEST_PYTHON, std::string(KG_TEST_SOURCE_DIR) + "/tests/testing/fake_llm.py"};
}

FakeLlm::FakeLlm() : FakeLlm(Options{}) {}

FakeLlm::FakeLlm(Options o) {
  std::vector<std::string> args = FakeLlmCommand();
  args.insert(args.end(), {"--port", "0", "--port-file", dir_.File("port"),  //
                           "--latency-ms", std::to_string(o.latency_ms),       //
                           "--jitter-ms", std::to_string(o.jitter_ms),         //
                           "--rpm-limit", std::to_string(o.rpm_limit)});
  if (!o.api_key.empty()) {
    args.push_back("--api-key");
    args.push_back(o.api_key);
  }
  proc_ = std::make_unique<Process>(args, std::map<std::string, std::string>{}, dir_.path());
  const std::string port_file = dir_.File("port");
  bool up = WaitFor(
      [&] {
        if (proc_->Wait(std::chrono::milliseconds(0)) != -1) return true;  // exited: stop waiting
        port_ = std::atoi(ReadFile(port_file).c_str());
        return port_ > 0;
      },
      std::chrono::seconds(10));
  if (!up || port_ <= 0) {
    port_ = 0;
    ADD_FAILURE() << "fake LLM did not start within 10 s: " << proc_->Stderr();
  }
}

FakeLlm::~FakeLlm() {
  if (proc_->Signal(SIGTERM)) proc_->Wait(std::chrono::seconds(5));
  // ~Process kills (SIGKILL) and reaps it if it is still running.
}

std::string FakeLlm::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

nlohmann::json FakeLlm::Stats() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(10, 0);
  auto res = c.Get("/stats");
  if (!res || res->status != 200) {
    ADD_FAILURE() << "GET /stats of the fake LLM failed";
    return nullptr;
  }
  return nlohmann::json::parse(res->body, nullptr, false);
}

nlohmann::json FakeLlm::Post(const std::string& path, const nlohmann::json& body) const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(10, 0);
  auto res = c.Post(path, body.dump(), "application/json");
  if (!res || res->status != 200) {
    ADD_FAILURE() << "POST " << path << " to the fake LLM failed";
    return nullptr;
  }
  return nlohmann::json::parse(res->body, nullptr, false);
}

void FakeLlm::Reset() const { Post("/reset", nlohmann::json::object()); }

void FakeLlm::Configure(const nlohmann::json& settings) const { Post("/config", settings); }

int FakeLlm::MaxInWindow(double seconds) const {
  nlohmann::json stats = Stats();
  if (!stats.is_object() || !stats["arrivals"].is_array()) return 0;
  std::vector<double> t = stats["arrivals"].get<std::vector<double>>();
  std::sort(t.begin(), t.end());
  int best = 0;
  size_t first = 0;
  for (size_t last = 0; last < t.size(); ++last) {
    while (t[last] - t[first] >= seconds) ++first;
    best = std::max(best, static_cast<int>(last - first + 1));
  }
  return best;
}

}  // namespace kg::testing
