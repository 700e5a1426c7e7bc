#pragma once
// The API's routes and their handlers (docs/architecture.md, "External contract").
//
// Thread safety: handlers run on the HTTP server's threads; the backends in ApiDeps are
// thread-safe, and the routes keep no other mutable state.

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <string>

#include "api/events.h"
#include "api/server.h"
#include "api/submission.h"
#include "common/outage_log.h"
#include "pipeline/document.h"
#include "http/server.h"

namespace kg::api {

class TextUpload;

class Routes {
 public:
  // `deps` and `svr` are borrowed and must outlive the Routes.
  Routes(ApiDeps deps, http::Server& svr);
  // Registers every route on the server; call once, before serving.
  void Register();
  // See ApiServer::StopTakingWork.
  void StopTakingWork() { stopping_ = true; }
  // Ends the live-update publisher (before the server stops).
  void StopEvents() { events_.Stop(); }

  // POST /api/v1/tasks with the body read whole (public: the text/plain upload calls it).
  void Submit(const http::Request& req, http::Response& res);

 private:
  friend class TextUpload;  // plans a streamed upload, then Accept()s it
  using Handler = http::Handler;
  void Route(const std::string& method, const std::string& pattern, Handler h, http::RouteOptions o = {});
  bool Authorized(const http::Request& req) const;
  // Answers 401 into `res` and returns false when the token is required and wrong.
  bool Guard(const http::Request& req, http::Response& res) const;

  // A text/plain submission read piece by piece as it arrives (api/submission.h).
  std::unique_ptr<http::BodyConsumer> StartSubmit(const http::Request& head, http::Response& res);
  // What Submit does once it has the document's text (markup stripped): plan, queue, answer.
  void Accept(const std::string& provider, const std::string& title, const std::string& source, TaskPlan plan,
              bool markup, int64_t token_budget, http::Response& res);
  // A provider and id check shared by every submission path (an empty provider becomes the
  // first enabled one); kInvalidArgument naming the field.
  Status CheckFields(std::string* provider, const std::string& doc_id) const;
  // CheckFields, false with `res` answered.
  bool CheckSubmission(std::string* provider, const std::string& doc_id, http::Response& res) const;
  // A document read whole, checked (text, format, provider, id), stripped of its markup and
  // planned; nothing is written. kInvalidArgument naming the field.
  struct Planned {
    std::string provider, title, source, task_id;
    bool markup = false;  // the text was stripped of markup
    int chunks = 0;
    int64_t token_budget = 0;
    TaskPlan plan;
  };
  Result<Planned> Plan(const Submission& sub) const;
  // POST /api/v1/tasks/batch (NDJSON or a JSON array): all documents or none.
  void SubmitBatch(const http::Request& req, http::Response& res);
  void Events(const http::Request& req, http::Response& res);
  std::map<std::string, LiveItem> LiveSnapshot(const std::vector<std::string>& tasks);
  void GetTask(const http::Request& req, http::Response& res);
  void ListTasks(const http::Request& req, http::Response& res);
  void Cancel(const http::Request& req, http::Response& res);
  void Retry(const http::Request& req, http::Response& res);
  void Scale(const http::Request& req, http::Response& res);
  void ResetScale(const http::Request& req, http::Response& res);
  void Providers(http::Response& res);
  void Workers(http::Response& res);
  // What /readyz answers and kg_ready reports: ok, or why not (stopping, or the backend that
  // failed). One round trip to each backend.
  Status Readiness();
  void Ready(http::Response& res);
  void Metrics(http::Response& res);
  void Stats(http::Response& res);
  void Search(const http::Request& req, http::Response& res);
  void Entity(const http::Request& req, http::Response& res);
  void Export(const http::Request& req, http::Response& res);
  // TaskViewOf with the task's LLM usage ("usage"); with `chunks`, per chunk too ("chunks_usage",
  // of the listed chunks only), and each chunk's state, attempts, times and usage ("chunks", the
  // first kMaxListedChunks).
  // The ledger unreadable: "usage" null and "usage_error" saying why (the rest still answers).
  Result<nlohmann::json> TaskView(const std::string& id, bool chunks = false);
  // The view of a task row already read; `served` as ServedProviders() gives it. `listed`, if
  // given, is the task's first chunks as the caller read them (the dead letters come from it
  // instead of another read of the queue); borrowed for the call.
  nlohmann::json TaskViewOf(TaskRecord t, const std::set<std::string>& served,
                            const std::vector<ChunkInfo>* listed = nullptr);
  // Nodes of the registry with their heartbeat age and `stale` marker; a stale node's
  // processes are shown as unknown (pid 0, last_pid the one it reported). With `error`, the store's
  // failure to list them is reported there (else an unreadable registry reads as no node).
  nlohmann::json NodesJson(Status* error = nullptr);
  // Providers with a live process (starting, idle or busy) on a node that is not stale.
  std::set<std::string> ServedProviders();
  static std::set<std::string> ServedFrom(const nlohmann::json& nodes);  // of NodesJson()
  // "no worker is serving provider P" while a task of `provider` in `status` waits for one; null otherwise.
  static nlohmann::json ServingWarning(const std::set<std::string>& served, const std::string& provider,
                                       const std::string& status);
  nlohmann::json ScalingJson();

  ApiDeps d_;
  const Config& c_;
  http::Server& svr_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> tasks_submitted_{0};  // tasks accepted (kg_tasks_submitted_total)
  OutageLog list_progress_outage_{"list: task progress"};  // once per outage, not per request
  OutageLog usage_outage_{"api: LLM usage"};
  OutageLog depths_outage_{"api: queue depths"};
  EventHub events_;
};

}  // namespace kg::api
