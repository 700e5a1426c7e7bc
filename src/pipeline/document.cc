#include "pipeline/document.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "common/util.h"

namespace kg {

std::string EncodePayload(const ChunkPayload& p) {
  nlohmann::json j = {{"doc_id", p.doc_id}, {"title", p.title}, {"source", p.source},
                      {"chunk_id", p.chunk_id}, {"idx", p.idx}, {"text", p.text}};
  if (p.offset >= 0) j["offset"] = p.offset;
  std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // dump() grows its string by doubling: a plan of 50 MB of chunks held 95 MB of payloads.
  out.shrink_to_fit();
  return out;
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
    p.offset = j.value("offset", int64_t{-1});  // absent in payloads queued by an older kgflow
    if (p.offset < -1) return Status::Invalid("bad chunk payload: negative offset");
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
  // Copied only when there is something to replace: a valid 50 MB document is chunked in place.
  std::string sanitized;
  if (!IsValidUtf8(text)) text = sanitized = SanitizeUtf8(text);
  auto chunks = ChunkText(text, options);
  for (size_t i = 0; i < chunks.size(); ++i) {
    ChunkPayload p{plan.doc_id, title, source, plan.doc_id + ":" + std::to_string(i), std::move(chunks[i].text),
                   static_cast<int>(i), static_cast<int64_t>(chunks[i].offset)};
    plan.items.push_back({task_id + ":" + std::to_string(i), task_id, provider, static_cast<int>(i),
                          EncodePayload(p)});
  }
  return plan;
}

namespace {

// The byte offset in `text` of the sentence `r` was read from: the one holding the start of
// its quote, else the first naming both ends that starts at or after `from`.
std::optional<size_t> SentenceOf(std::string_view text, const std::vector<SentenceSpan>& sentences,
                                 const ExtractedRelation& r, size_t from) {
  if (!r.sentence.empty()) {
    size_t quote = text.find(r.sentence);
    if (quote != std::string_view::npos) {
      for (const SentenceSpan& s : sentences) {
        if (quote < s.offset + s.size) return s.offset;  // the first sentence not before the quote
      }
    }
  }
  if (r.source.empty() || r.target.empty()) return std::nullopt;
  for (const SentenceSpan& s : sentences) {
    if (s.offset < from) continue;
    std::string_view t = text.substr(s.offset, s.size);
    if (t.find(r.source) != std::string_view::npos && t.find(r.target) != std::string_view::npos) return s.offset;
  }
  return std::nullopt;
}

}  // namespace

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
  // (src, dst, type) -> position in b.relations, and where to look for its next sentence
  std::map<std::tuple<std::string, std::string, std::string>, std::pair<size_t, size_t>> seen;
  std::optional<std::vector<SentenceSpan>> sentences;  // the chunk's, found when first needed
  for (const auto& r : x.relations) {
    std::string type = NormalizeName(r.type);
    for (char& ch : type) ch = ch == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::string s = add(r.source, r.source_type, "");
    std::string d = add(r.target, r.target_type, "");
    if (s.empty() || d.empty() || s == d || type.empty()) continue;
    auto [it, fresh] = seen.try_emplace({s, d, type}, b.relations.size(), 0);
    if (fresh) b.relations.push_back({s, d, type, {}, 0});
    if (c.offset < 0) continue;
    if (!sentences) sentences = FindSentences(c.text);
    // An extractor reading sentence by sentence reports a relation once per sentence stating
    // it: its second report is looked for after the sentence of its first.
    auto& [index, from] = it->second;
    std::optional<size_t> at = SentenceOf(c.text, *sentences, r, from);
    if (!at) continue;
    if (r.sentence.empty()) from = *at + 1;
    std::string id = c.doc_id + "@" + std::to_string(c.offset + static_cast<int64_t>(*at));
    auto& ids = b.relations[index].sentences;
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
  }
  return b;
}

}  // namespace kg
