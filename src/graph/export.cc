// The JSON and GraphML serialisations of the graph, written as GraphSinks so that the
// same code serialises a streamed export (bounded memory) and an in-memory snapshot.
#include <functional>
#include <nlohmann/json.hpp>

#include "graph/graph_store.h"

namespace kg {
namespace {

using nlohmann::json;

constexpr size_t kFlushBytes = 64 * 1024;

// Buffers text and hands it to a ByteSink in pieces of about kFlushBytes.
class Out {
 public:
  explicit Out(const ByteSink& sink) : sink_(sink) {}
  Status Add(std::string_view s) {
    buf_ += s;
    return buf_.size() >= kFlushBytes ? Flush() : Status::Ok();
  }
  Status Flush() {
    if (buf_.empty()) return Status::Ok();
    bool ok = sink_(buf_);
    buf_.clear();
    return ok ? Status::Ok() : Status::Unavailable("export: the reader went away");
  }

 private:
  const ByteSink& sink_;
  std::string buf_;
};

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// {"documents":[...],"chunks":[...],"entities":[...],"mentions":[...],"relations":[...]},
// one record a line. Invalid UTF-8 is replaced, so the document is always valid JSON.
class JsonWriter final : public GraphSink {
 public:
  explicit JsonWriter(Out& out) : out_(out) {}
  Status Begin() { return Status::Ok(); }  // the opening comes with the first section
  Status Document(const DocumentRec& d) override {
    return Item(0, {{"id", d.id}, {"title", d.title}, {"source", d.source}});
  }
  Status Chunk(const ChunkRec& c) override {
    return Item(1, {{"id", c.id}, {"document", c.doc_id}, {"idx", c.idx}, {"text", c.text}});
  }
  Status Entity(const EntityRec& e) override {
    return Item(2, {{"key", e.key}, {"name", e.name}, {"type", e.type}, {"description", e.description}});
  }
  Status Mention(const std::string& chunk_id, const std::string& entity_key) override {
    return Item(3, {{"chunk", chunk_id}, {"entity", entity_key}});
  }
  Status Relation(const RelationRec& r) override {
    return Item(4, {{"source", r.src}, {"target", r.dst}, {"type", r.type}, {"weight", r.weight},
                    {"evidence", r.evidence}});
  }
  Status Finish() {
    KG_RETURN_IF_ERROR(Enter(kSections));
    return out_.Add("\n}\n");
  }

 private:
  static constexpr int kSections = 5;
  static constexpr const char* kNames[kSections] = {"documents", "chunks", "entities", "mentions", "relations"};

  // Closes the sections before `section` (opening any that had no records) and opens it.
  Status Enter(int section) {
    while (open_ < section) {
      if (open_ >= 0) KG_RETURN_IF_ERROR(out_.Add(first_ ? "]" : "\n]"));
      ++open_;
      first_ = true;
      if (open_ < kSections) {
        KG_RETURN_IF_ERROR(out_.Add(std::string(open_ == 0 ? "{\n" : ",\n") + "\"" + kNames[open_] + "\": ["));
      }
    }
    return Status::Ok();
  }
  Status Item(int section, const json& j) {
    KG_RETURN_IF_ERROR(Enter(section));
    KG_RETURN_IF_ERROR(out_.Add(first_ ? "\n  " : ",\n  "));
    first_ = false;
    return out_.Add(Dump(j));
  }

  Out& out_;
  int open_ = -1;
  bool first_ = true;
};

// GraphML: documents, chunks and entities are nodes; HAS_CHUNK follows each chunk's node,
// MENTIONS and RELATION edges come after the nodes.
class GraphmlWriter final : public GraphSink {
 public:
  explicit GraphmlWriter(Out& out) : out_(out) {}
  Status Begin() {
    return out_.Add(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n"
        "  <key id=\"label\" for=\"node\" attr.name=\"label\" attr.type=\"string\"/>\n"
        "  <key id=\"name\" for=\"node\" attr.name=\"name\" attr.type=\"string\"/>\n"
        "  <key id=\"type\" for=\"all\" attr.name=\"type\" attr.type=\"string\"/>\n"
        "  <key id=\"text\" for=\"node\" attr.name=\"text\" attr.type=\"string\"/>\n"
        "  <key id=\"weight\" for=\"edge\" attr.name=\"weight\" attr.type=\"long\"/>\n"
        "  <key id=\"evidence\" for=\"edge\" attr.name=\"evidence\" attr.type=\"string\"/>\n"
        "  <graph id=\"kgflow\" edgedefault=\"directed\">\n");
  }
  Status Finish() { return out_.Add("  </graph>\n</graphml>\n"); }

  Status Document(const DocumentRec& d) override { return Node("doc:" + d.id, "Document", d.title, "", ""); }
  Status Chunk(const ChunkRec& c) override {
    KG_RETURN_IF_ERROR(Node("chunk:" + c.id, "Chunk", "", "", c.text));
    return Edge("doc:" + c.doc_id, "chunk:" + c.id, "HAS_CHUNK", 0, "");
  }
  Status Entity(const EntityRec& e) override {
    return Node("entity:" + e.key, "Entity", e.name, e.type, e.description);
  }
  Status Mention(const std::string& chunk_id, const std::string& entity_key) override {
    return Edge("chunk:" + chunk_id, "entity:" + entity_key, "MENTIONS", 0, "");
  }
  Status Relation(const RelationRec& r) override {
    std::string ev;
    for (const auto& c : r.evidence) ev += (ev.empty() ? "" : " ") + c;
    return Edge("entity:" + r.src, "entity:" + r.dst, r.type, r.weight, ev);
  }

 private:
  Status Node(const std::string& id, const char* label, const std::string& name, const std::string& type,
              const std::string& text) {
    std::string o = "    <node id=\"" + GraphmlEscape(id) + "\"><data key=\"label\">" + label + "</data>";
    if (!name.empty()) o += "<data key=\"name\">" + GraphmlEscape(name) + "</data>";
    if (!type.empty()) o += "<data key=\"type\">" + GraphmlEscape(type) + "</data>";
    if (!text.empty()) o += "<data key=\"text\">" + GraphmlEscape(text) + "</data>";
    o += "</node>\n";
    return out_.Add(o);
  }
  Status Edge(const std::string& a, const std::string& b, const std::string& type, int64_t weight,
              const std::string& evidence) {
    std::string o = "    <edge id=\"e" + std::to_string(edges_++) + "\" source=\"" + GraphmlEscape(a) +
                    "\" target=\"" + GraphmlEscape(b) + "\"><data key=\"type\">" + GraphmlEscape(type) + "</data>";
    if (weight) o += "<data key=\"weight\">" + std::to_string(weight) + "</data>";
    if (!evidence.empty()) o += "<data key=\"evidence\">" + GraphmlEscape(evidence) + "</data>";
    o += "</edge>\n";
    return out_.Add(o);
  }

  Out& out_;
  int64_t edges_ = 0;
};

// Replays a snapshot into a sink, in ExportTo's order.
Status Replay(const GraphSnapshot& s, GraphSink& sink) {
  for (const auto& d : s.documents) KG_RETURN_IF_ERROR(sink.Document(d));
  for (const auto& c : s.chunks) KG_RETURN_IF_ERROR(sink.Chunk(c));
  for (const auto& e : s.entities) KG_RETURN_IF_ERROR(sink.Entity(e));
  for (const auto& [chunk, key] : s.mentions) KG_RETURN_IF_ERROR(sink.Mention(chunk, key));
  for (const auto& r : s.relations) KG_RETURN_IF_ERROR(sink.Relation(r));
  return Status::Ok();
}

}  // namespace

std::string GraphmlEscape(std::string_view s) {
  static constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      switch (b) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        // Character references, so a parser keeps them in attribute values (which it
        // would normalise to spaces) and keeps CR (which it would turn into LF).
        case '\t': out += "&#9;"; break;
        case '\n': out += "&#10;"; break;
        case '\r': out += "&#13;"; break;
        default: out += b < 0x20 ? kReplacement : std::string(1, static_cast<char>(b));
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: well-formed UTF-8 only (no overlong forms, no surrogates,
    // nothing above U+10FFFF), and a code point XML 1.0 allows.
    int len = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    uint32_t cp = len == 2 ? b & 0x1Fu : len == 3 ? b & 0x0Fu : b & 0x07u;
    bool formed = len > 0 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; formed && k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      formed = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if (!formed) {
      out += kReplacement;
      ++i;  // resynchronise on the next byte
      continue;
    }
    bool shortest = len == 2 || (len == 3 && cp >= 0x800) || (len == 4 && cp >= 0x10000);
    bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    bool allowed = cp <= 0x10FFFF && cp != 0xFFFE && cp != 0xFFFF;
    if (shortest && !surrogate && allowed) out.append(s.substr(i, static_cast<size_t>(len)));
    else out += kReplacement;  // one replacement for the whole sequence
    i += static_cast<size_t>(len);
  }
  return out;
}

namespace {

// One whole document: the writer's opening, every record `feed` hands it, its closing.
template <typename Writer>
Status Write(const ByteSink& sink, const std::function<Status(GraphSink&)>& feed) {
  Out out(sink);
  Writer w(out);
  KG_RETURN_IF_ERROR(w.Begin());
  KG_RETURN_IF_ERROR(feed(w));
  KG_RETURN_IF_ERROR(w.Finish());
  return out.Flush();
}

template <typename Writer>
std::string ToString(const GraphSnapshot& s) {
  std::string text;
  // A string sink never fails, so neither does the write.
  (void)Write<Writer>([&](std::string_view piece) { text += piece; return true; },
                      [&](GraphSink& w) { return Replay(s, w); });
  return text;
}

}  // namespace

Status StreamJson(GraphStore& g, const ByteSink& sink) {
  return Write<JsonWriter>(sink, [&](GraphSink& w) { return g.ExportTo(w); });
}

Status StreamGraphml(GraphStore& g, const ByteSink& sink) {
  return Write<GraphmlWriter>(sink, [&](GraphSink& w) { return g.ExportTo(w); });
}

std::string ExportJson(const GraphSnapshot& s) { return ToString<JsonWriter>(s); }

std::string ExportGraphml(const GraphSnapshot& s) { return ToString<GraphmlWriter>(s); }

namespace {

// Gathers a streamed export into a snapshot.
struct CollectSink final : GraphSink {
  Status Document(const DocumentRec& d) override { return Add(snapshot.documents, d); }
  Status Chunk(const ChunkRec& c) override { return Add(snapshot.chunks, c); }
  Status Entity(const EntityRec& e) override { return Add(snapshot.entities, e); }
  Status Mention(const std::string& c, const std::string& e) override {
    return Add(snapshot.mentions, std::pair<std::string, std::string>(c, e));
  }
  Status Relation(const RelationRec& r) override { return Add(snapshot.relations, r); }
  template <typename V, typename T>
  static Status Add(V& v, const T& x) {
    v.push_back(x);
    return Status::Ok();
  }
  GraphSnapshot snapshot;
};

}  // namespace

Result<GraphSnapshot> CollectExport(const std::function<Status(GraphSink&)>& stream) {
  CollectSink collect;
  KG_RETURN_IF_ERROR(stream(collect));
  return std::move(collect.snapshot);
}

}  // namespace kg
