#include <nlohmann/json.hpp>

#include "common/util.h"
#include "graph/graph_store.h"

namespace kg {

std::string ExportJson(const GraphSnapshot& s) {
  using nlohmann::json;
  json j = {{"documents", json::array()}, {"chunks", json::array()}, {"entities", json::array()},
            {"mentions", json::array()}, {"relations", json::array()}};
  for (const auto& d : s.documents) j["documents"].push_back({{"id", d.id}, {"title", d.title}, {"source", d.source}});
  for (const auto& c : s.chunks) {
    j["chunks"].push_back({{"id", c.id}, {"document", c.doc_id}, {"idx", c.idx}, {"text", c.text}});
  }
  for (const auto& e : s.entities) {
    j["entities"].push_back({{"key", e.key}, {"name", e.name}, {"type", e.type}, {"description", e.description}});
  }
  for (const auto& [chunk, key] : s.mentions) j["mentions"].push_back({{"chunk", chunk}, {"entity", key}});
  for (const auto& r : s.relations) {
    j["relations"].push_back({{"source", r.src}, {"target", r.dst}, {"type", r.type},
                              {"weight", r.weight}, {"evidence", r.evidence}});
  }
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string ExportGraphml(const GraphSnapshot& s) {
  std::string o =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n"
      "  <key id=\"label\" for=\"node\" attr.name=\"label\" attr.type=\"string\"/>\n"
      "  <key id=\"name\" for=\"node\" attr.name=\"name\" attr.type=\"string\"/>\n"
      "  <key id=\"type\" for=\"all\" attr.name=\"type\" attr.type=\"string\"/>\n"
      "  <key id=\"text\" for=\"node\" attr.name=\"text\" attr.type=\"string\"/>\n"
      "  <key id=\"weight\" for=\"edge\" attr.name=\"weight\" attr.type=\"long\"/>\n"
      "  <key id=\"evidence\" for=\"edge\" attr.name=\"evidence\" attr.type=\"string\"/>\n"
      "  <graph id=\"kgflow\" edgedefault=\"directed\">\n";
  auto node = [&](const std::string& id, const char* label, const std::string& name, const std::string& type,
                  const std::string& text) {
    o += "    <node id=\"" + XmlEscape(id) + "\"><data key=\"label\">" + label + "</data>";
    if (!name.empty()) o += "<data key=\"name\">" + XmlEscape(name) + "</data>";
    if (!type.empty()) o += "<data key=\"type\">" + XmlEscape(type) + "</data>";
    if (!text.empty()) o += "<data key=\"text\">" + XmlEscape(text) + "</data>";
    o += "</node>\n";
  };
  int e = 0;
  auto edge = [&](const std::string& a, const std::string& b, const std::string& type, int64_t weight,
                  const std::string& evidence) {
    o += "    <edge id=\"e" + std::to_string(e++) + "\" source=\"" + XmlEscape(a) + "\" target=\"" + XmlEscape(b) +
         "\"><data key=\"type\">" + XmlEscape(type) + "</data>";
    if (weight) o += "<data key=\"weight\">" + std::to_string(weight) + "</data>";
    if (!evidence.empty()) o += "<data key=\"evidence\">" + XmlEscape(evidence) + "</data>";
    o += "</edge>\n";
  };
  for (const auto& d : s.documents) node("doc:" + d.id, "Document", d.title, "", "");
  for (const auto& c : s.chunks) node("chunk:" + c.id, "Chunk", "", "", c.text);
  for (const auto& en : s.entities) node("entity:" + en.key, "Entity", en.name, en.type, en.description);
  for (const auto& c : s.chunks) edge("doc:" + c.doc_id, "chunk:" + c.id, "HAS_CHUNK", 0, "");
  for (const auto& [chunk, key] : s.mentions) edge("chunk:" + chunk, "entity:" + key, "MENTIONS", 0, "");
  for (const auto& r : s.relations) {
    std::string ev;
    for (const auto& c : r.evidence) ev += (ev.empty() ? "" : " ") + c;
    edge("entity:" + r.src, "entity:" + r.dst, r.type, r.weight, ev);
  }
  o += "  </graph>\n</graphml>\n";
  return o;
}

}  // namespace kg
