#include "eval/command.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include "eval/predict.h"
#include "eval/report.h"
#include "provider/provider.h"

namespace kg::eval {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

Result<std::string> ReadGoldFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::Invalid("cannot read " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::Invalid("cannot read " + path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A directory of its own under $TMPDIR for the temporary graphs; removed on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    std::string base = std::filesystem::temp_directory_path(ec).string();
    if (ec) {
      error_ = "$TMPDIR: " + ec.message();
      return;
    }
    std::string templ = base + "/kgflow-eval-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      error_ = base + ": " + std::strerror(errno);
      return;
    }
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }  // empty when it could not be made
  const std::string& error() const { return error_; }  // why not

 private:
  std::string path_, error_;
};

}  // namespace

Result<Report> Evaluate(Provider& provider, const std::vector<GoldItem>& items, const ChunkOptions& chunking) {
  ScratchDir scratch;
  if (scratch.path().empty()) return Status::Internal("cannot make a temporary directory: " + scratch.error());
  std::vector<ItemResult> results;
  for (const auto& item : items) {
    auto predicted = PredictGraph(provider, item.text, chunking, scratch.path());
    if (!predicted.ok()) {
      return predicted.status().With("line " + std::to_string(item.line) + " (item " + item.id + ")");
    }
    results.push_back(ScoreItem(item, *predicted));
  }
  return Summarize(std::move(results));
}

int RunEval(const Config& config, const EvalOptions& o, std::ostream& out, std::ostream& err) {
  auto pc = config.providers.find(o.provider);
  if (pc == config.providers.end()) {
    err << "kgflow eval: unknown provider '" << o.provider << "'; this configuration has: " << config.KnownProviders()
        << "\n";
    return kExitUsage;
  }
  auto content = ReadGoldFile(o.gold_file);
  if (!content.ok()) {
    err << "kgflow eval: " << content.status().message() << "\n";
    return kExitUsage;
  }
  auto gold = ParseGold(*content);
  if (!gold.ok()) {
    err << "kgflow eval: " << o.gold_file << ": " << gold.status().message() << "\n";
    return kExitUsage;
  }
  auto provider = MakeProvider(pc->second, config);
  if (!provider.ok()) {
    err << "kgflow eval: provider " << o.provider << ": " << provider.status().message() << "\n";
    return provider.status().code() == Code::kInvalidArgument ? kExitUsage : kExitRuntime;
  }
  auto report = Evaluate(**provider, *gold, ChunkOptions{config.chunk_size, config.chunk_overlap});
  if (!report.ok()) {
    err << "kgflow eval: " << o.gold_file << " " << report.status().message() << "\n";
    return kExitRuntime;
  }
  ReportHeader header{o.gold_file, o.provider};
  out << (o.json ? FormatJson(header, *report) : FormatTable(header, *report, static_cast<size_t>(std::max(0, o.max_misses))));
  return 0;
}

}  // namespace kg::eval
