#include "eval/predict.h"

#include <filesystem>
#include <map>
#include <memory>

#include "graph/graph_store.h"
#include "pipeline/document.h"

namespace kg::eval {
namespace {

// Removes the graph store's files (database, WAL, shared memory) however PredictGraph ends.
class ScratchGraph {
 public:
  explicit ScratchGraph(std::string path) : path_(std::move(path)) { Remove(); }
  ~ScratchGraph() { Remove(); }
  ScratchGraph(const ScratchGraph&) = delete;
  ScratchGraph& operator=(const ScratchGraph&) = delete;
  const std::string& path() const { return path_; }

 private:
  void Remove() {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path_ + suffix, ec);
  }
  std::string path_;
};

}  // namespace

Result<Prediction> PredictGraph(Provider& provider, const std::string& text, const ChunkOptions& options,
                                const std::string& scratch_dir) {
  TaskPlan plan = PlanTask("eval", provider.name(), "", "eval", "kgflow eval", text, options);
  ScratchGraph scratch(scratch_dir + "/graph-" + plan.doc_id + ".db");
  Prediction out;
  {
    auto store = OpenSqliteGraphStore(scratch.path());
    if (!store.ok()) return Status::Internal("temporary graph: " + store.status().message());
    for (const auto& item : plan.items) {
      auto payload = DecodePayload(item.payload);
      if (!payload.ok()) return Status::Internal(payload.status().message());
      ProviderReply reply = ExtractNow(provider, payload->text);
      if (!reply.status.ok()) {
        return reply.status.With("provider " + provider.name() + ", chunk " + std::to_string(payload->idx));
      }
      if (Status s = (*store)->Merge({BuildBatch(*payload, reply.extraction)}); !s.ok()) {
        return Status::Internal("temporary graph: " + s.message());
      }
    }
    auto snapshot = (*store)->Export();
    if (!snapshot.ok()) return Status::Internal("temporary graph: " + snapshot.status().message());
    std::map<std::string, std::string> name_of;  // entity key -> name
    for (const auto& e : snapshot->entities) {
      name_of[e.key] = e.name;
      out.entities.push_back({e.name, e.type});
    }
    for (const auto& r : snapshot->relations) out.relations.push_back({name_of[r.src], r.type, name_of[r.dst]});
  }
  return out;
}

}  // namespace kg::eval
