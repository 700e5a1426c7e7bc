#include "pipeline/document.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/util.h"

namespace kg {

std::string EncodePayload(const ChunkPayload& p) {
  nlohmann::json j = {{"doc_id", p.doc_id}, {"title", p.title}, {"source", p.source},
                      {"chunk_id", p.chunk_id}, {"idx", p.idx}, {"text", p.text}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<ChunkPayload> DecodePayload(const std::string& s) {
  try {
    auto j = nlohmann::json::parse(s);
    ChunkPayload p;
    p.doc_id = j.at("doc_id").get<std::string>();
    p.title = j.at("title").get<std::string>();
    p.source = j.at("source").get<std::string>();
    p.chunk_id = j.at("chunk_id").get<std::string>();
    p.idx = j.at("idx").get<int>();
    p.text = j.at("text").get<std::string>();
    return p;
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("bad chunk payload: ") + e.what());
  }
}

std::string DocumentIdFor(std::string_view text) { return "d" + Sha256Hex(text).substr(0, 24); }

TaskPlan PlanTask(const std::string& task_id, const std::string& provider, std::string doc_id,
                  const std::string& title, const std::string& source, std::string_view text,
                  const ChunkOptions& options) {
  TaskPlan plan;
  plan.doc_id = doc_id.empty() ? DocumentIdFor(text) : std::move(doc_id);
  // Chunks are cut verbatim, so invalid bytes would reach the provider and the graph.
  auto chunks = ChunkText(SanitizeUtf8(text), options);
  for (size_t i = 0; i < chunks.size(); ++i) {
    ChunkPayload p{plan.doc_id, title, source, plan.doc_id + ":" + std::to_string(i), std::move(chunks[i].text),
                   static_cast<int>(i)};
    plan.items.push_back({task_id + ":" + std::to_string(i), task_id, provider, static_cast<int>(i),
                          EncodePayload(p)});
  }
  return plan;
}

GraphBatch BuildBatch(const ChunkPayload& c, const Extraction& x) {
  GraphBatch b;
  b.doc = {c.doc_id, c.title, c.source};
  b.chunk = {c.chunk_id, c.doc_id, c.idx, c.text};
  std::map<std::string, size_t> index;  // key -> position in b.entities
  auto add = [&](const std::string& name, const std::string& type, const std::string& desc) -> std::string {
    std::string t = type.empty() ? "Other" : type;
    if (NormalizeName(name).empty()) return "";
    std::string key = EntityKey(name, t);
    auto it = index.find(key);
    if (it == index.end()) {
      index[key] = b.entities.size();
      b.entities.push_back({key, name, t, desc, 0});
    } else if (b.entities[it->second].description.empty()) {
      b.entities[it->second].description = desc;
    }
    return key;
  };
  for (const auto& e : x.entities) add(e.name, e.type, e.description);
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  for (const auto& r : x.relations) {
    std::string type = NormalizeName(r.type);
    for (char& ch : type) ch = ch == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::string s = add(r.source, r.source_type, "");
    std::string d = add(r.target, r.target_type, "");
    if (s.empty() || d.empty() || s == d || type.empty()) continue;
    if (seen.insert({s, d, type}).second) b.relations.push_back({s, d, type, {}, 0});
  }
  return b;
}

}  // namespace kg
