#include "llm/parse.h"

#include <cstdio>
#include <exception>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llm/prompt.h"

namespace kg::llm {

namespace {

using nlohmann::json;

// Our object is four levels deep; anything far deeper is not it, and is refused before
// nlohmann builds (and later tears down) a tree of that depth.
constexpr int kMaxDepth = 64;
// Objects tried in one output before giving up: prose may hold a few braces, not hundreds.
constexpr int kMaxCandidates = 64;

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

bool IsAsciiSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsUpper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(unsigned char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
char ToLower(unsigned char c) {
  return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
}
char ToUpper(unsigned char c) {
  return IsLower(c) ? static_cast<char>(c - 'a' + 'A') : static_cast<char>(c);
}

// Byte length of the whitespace character at s[i] (ASCII blanks, U+00A0, U+3000), or 0.
size_t SpaceLen(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (IsAsciiSpace(c)) return 1;
  if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) return 2;
  if (c == 0xE3 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
      static_cast<unsigned char>(s[i + 2]) == 0x80) {
    return 3;
  }
  return 0;
}

bool IsBlank(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = SpaceLen(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Trimmed, every run of whitespace made one ASCII space.
std::string Collapse(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  for (size_t i = 0; i < s.size();) {
    size_t n = SpaceLen(s, i);
    if (n > 0) {
      pending_space = !out.empty();
      i += n;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += s[i++];
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(static_cast<unsigned char>(c));
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(static_cast<unsigned char>(a[i])) != ToLower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// Length of the well-formed UTF-8 sequence at s[i], or 0 if it is not one.
size_t Utf8Len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

// The bracket structure of the text starting at s[start] == '{', up to its matching close.
struct Span {
  size_t end = 0;         // one past the matching close (balanced), else s.size()
  bool balanced = false;  // false: the text ended inside the object (or inside a string in it)
  bool too_deep = false;
};

Span ScanObject(std::string_view s, size_t start) {
  Span span;
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) span.too_deep = true;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) {
        span.end = i + 1;
        span.balanced = true;
        return span;
      }
    }
  }
  span.end = s.size();
  return span;
}

// Drops each comma (outside strings) that only whitespace separates from a closing bracket.
std::string RemoveTrailingCommas(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < s.size()) {
        out += s[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    if (c == ',') {
      size_t j = i + 1;
      while (j < s.size() && IsAsciiSpace(static_cast<unsigned char>(s[j]))) ++j;
      if (j < s.size() && (s[j] == '}' || s[j] == ']')) continue;
    }
    out += c;
  }
  return out;
}

// The start of a `{"entities"` (blanks allowed after the brace) at or after `from`, or npos.
size_t FindEntitiesObject(std::string_view s, size_t from) {
  constexpr std::string_view kKey = "\"entities\"";
  for (size_t k = s.find(kKey, from); k != std::string_view::npos; k = s.find(kKey, k + 1)) {
    size_t j = k;
    while (j > from && IsAsciiSpace(static_cast<unsigned char>(s[j - 1]))) --j;
    if (j > from && s[j - 1] == '{') return j - 1;
  }
  return std::string_view::npos;
}

// The first of `keys` present in `obj` with a non-null value: exact names first, then ignoring
// case. Null when none is.
const json* FindField(const json& obj, std::initializer_list<std::string_view> keys) {
  for (std::string_view k : keys) {
    auto it = obj.find(std::string(k));
    if (it != obj.end() && !it->is_null()) return &*it;
  }
  for (std::string_view k : keys) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!it->is_null() && EqualsIgnoreCase(it.key(), k)) return &*it;
    }
  }
  return nullptr;
}

// Whether `obj` has the key, ignoring case (whatever its value).
bool HasKey(const json& obj, std::string_view key) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (EqualsIgnoreCase(it.key(), key)) return true;
  }
  return false;
}

// A relation end: a string, or an object {"name": ...} (as deepseek-r1 writes them).
std::optional<std::string> EndName(const json* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) {
    const json* n = FindField(*v, {"name", "entity_name", "entity"});
    if (n != nullptr && n->is_string()) return n->get<std::string>();
  }
  return std::nullopt;
}

const std::unordered_map<std::string, std::string>& TypeSynonyms() {
  static const std::unordered_map<std::string, std::string> map = [] {
    std::unordered_map<std::string, std::string> m;
    auto add = [&](const char* canonical, std::initializer_list<const char*> names) {
      m[Lower(canonical)] = canonical;
      for (const char* n : names) m[Lower(n)] = canonical;
    };
    add("Person", {"人物", "人", "人名", "person", "per", "people", "human", "individual"});
    add("Organization", {"组织", "机构", "组织机构", "公司", "企业", "company", "org",
                         "organisation", "institution", "agency", "corporation"});
    add("Location", {"地点", "地名", "城市", "国家", "地区", "位置", "place", "location", "gpe",
                     "loc", "city", "country", "region"});
    add("Product", {"产品", "商品", "product"});
    add("Event", {"事件", "event"});
    add("Concept", {"概念", "concept"});
    add("Technology", {"技术", "科技", "technology", "tech"});
    add("Work",
        {"作品", "work", "book", "film", "movie", "work_of_art", "work of art", "书", "电影"});
    add("Other", {"其他", "other", "misc"});
    return m;
  }();
  return map;
}

std::string CanonicalType(std::string_view raw) {
  const auto& map = TypeSynonyms();
  auto it = map.find(Lower(Collapse(raw)));
  return it == map.end() ? "Other" : it->second;
}

// "works for", "worksFor", "works-for" -> WORKS_FOR; a type with non-ASCII text is kept as
// written (trimmed); nothing usable -> RELATED_TO.
std::string RelationType(std::string_view raw) {
  std::string t = Collapse(raw);
  for (unsigned char c : t) {
    if (c >= 0x80) return t;
  }
  std::string out;
  bool in_word = false;
  for (size_t i = 0; i < t.size(); ++i) {
    auto c = static_cast<unsigned char>(t[i]);
    bool alnum = IsUpper(c) || IsLower(c) || IsDigit(c);
    if (!alnum) {
      in_word = false;
      continue;
    }
    if (in_word && IsUpper(c)) {
      auto prev = static_cast<unsigned char>(t[i - 1]);
      bool next_lower = i + 1 < t.size() && IsLower(static_cast<unsigned char>(t[i + 1]));
      if (IsLower(prev) || IsDigit(prev) || (IsUpper(prev) && next_lower))
        in_word = false;  // camelCase, HTTPServer
    }
    if (!in_word && !out.empty()) out += '_';
    in_word = true;
    out += ToUpper(c);
  }
  return out.empty() ? "RELATED_TO" : out;
}

std::string Quoted(std::string_view output) { return "\"" + Snippet(output) + "\""; }

ParsedOutput Problem(OutputProblem p, std::string detail) {
  ParsedOutput out;
  out.problem = p;
  out.detail = std::move(detail);
  return out;
}

// Checks the records of a parsed object that has an "entities" field.
ParsedOutput FromObject(const json& root, std::string_view output, std::string_view chunk) {
  const json* entities = FindField(root, {"entities"});
  const json* relations = FindField(root, {"relations", "relationships"});
  if (entities != nullptr && !entities->is_array()) {
    return Problem(OutputProblem::kWrongSchema, std::string("\"entities\" is a JSON ") +
                                                    entities->type_name() +
                                                    ", not an array: " + Quoted(output));
  }
  if (relations != nullptr && !relations->is_array()) {
    return Problem(OutputProblem::kWrongSchema, std::string("\"relations\" is a JSON ") +
                                                    relations->type_name() +
                                                    ", not an array: " + Quoted(output));
  }
  static const json kEmpty = json::array();
  if (entities == nullptr) entities = &kEmpty;
  if (relations == nullptr) relations = &kEmpty;

  ParsedOutput out;
  Extraction& ex = out.extraction;
  std::unordered_map<std::string, size_t> by_name;  // lower-cased name -> index in ex.entities
  for (const json& rec : *entities) {
    if (!rec.is_object()) {
      ++out.dropped_records;
      continue;
    }
    const json* name = FindField(rec, {"name", "entity_name", "entity"});
    const json* type = FindField(rec, {"type", "entity_type", "label", "category"});
    const json* desc = FindField(rec, {"description", "desc"});
    if (name == nullptr || !name->is_string() || (type != nullptr && !type->is_string()) ||
        (desc != nullptr && !desc->is_string())) {
      ++out.dropped_records;
      continue;
    }
    std::string n = Collapse(name->get_ref<const std::string&>());
    if (n.empty()) {
      ++out.dropped_records;
      continue;
    }
    std::string d = desc == nullptr ? std::string() : Collapse(desc->get_ref<const std::string&>());
    auto [it, fresh] = by_name.try_emplace(Lower(n), ex.entities.size());
    if (!fresh) {
      // The same entity again: the first name and type stay, the longest description wins.
      ExtractedEntity& e = ex.entities[it->second];
      if (d.size() > e.description.size()) e.description = std::move(d);
      continue;
    }
    std::string t =
        CanonicalType(type == nullptr ? std::string_view() : type->get_ref<const std::string&>());
    ex.entities.push_back({std::move(n), std::move(t), std::move(d)});
  }
  if (!entities->empty() && ex.entities.empty()) {
    return Problem(
        OutputProblem::kWrongSchema,
        "none of the " + std::to_string(entities->size()) +
            " \"entities\" records is an object with a string \"name\": " + Quoted(output));
  }

  auto entity_of = [&](const std::optional<std::string>& raw) -> const ExtractedEntity* {
    if (!raw) return nullptr;
    auto it = by_name.find(Lower(Collapse(*raw)));
    return it == by_name.end() ? nullptr : &ex.entities[it->second];
  };
  for (const json& rec : *relations) {
    if (!rec.is_object()) {
      ++out.dropped_records;
      continue;
    }
    const ExtractedEntity* source =
        entity_of(EndName(FindField(rec, {"source", "head", "subject"})));
    const ExtractedEntity* target =
        entity_of(EndName(FindField(rec, {"target", "tail", "object"})));
    const json* type = FindField(rec, {"type", "relation", "relation_type", "label", "predicate"});
    if (source == nullptr || target == nullptr || (type != nullptr && !type->is_string())) {
      ++out.dropped_records;
      continue;
    }
    ExtractedRelation r;
    r.source = source->name;
    r.source_type = source->type;
    r.target = target->name;
    r.target_type = target->type;
    r.type =
        RelationType(type == nullptr ? std::string_view() : type->get_ref<const std::string&>());
    const json* evidence = FindField(rec, {"evidence", "sentence", "quote"});
    if (evidence != nullptr && evidence->is_string()) {
      std::string_view ev = evidence->get_ref<const std::string&>();
      while (!ev.empty() && IsAsciiSpace(static_cast<unsigned char>(ev.front())))
        ev.remove_prefix(1);
      while (!ev.empty() && IsAsciiSpace(static_cast<unsigned char>(ev.back())))
        ev.remove_suffix(1);
      if (!ev.empty() && chunk.find(ev) != std::string_view::npos) r.sentence = std::string(ev);
    }
    ex.relations.push_back(std::move(r));
  }
  out.nothing_found = ex.entities.empty();
  return out;
}

ParsedOutput Parse(std::string_view content, std::string_view finish_reason,
                   std::string_view chunk) {
  const bool cut = finish_reason == "length";
  if (IsBlank(content))
    return Problem(OutputProblem::kEmpty, "the output was empty: " + Quoted(content));

  // A reasoning block: <think>...</think> first, or only its end when the chat template
  // already opened it. An unclosed one was cut by the token limit (or never closed).
  std::string_view body = content;
  size_t lead = 0;
  while (lead < body.size() && IsAsciiSpace(static_cast<unsigned char>(body[lead]))) ++lead;
  bool thought = false;
  if (body.substr(lead).starts_with(kThinkOpen)) {
    thought = true;
    size_t close = body.find(kThinkClose, lead + kThinkOpen.size());
    if (close == std::string_view::npos) {
      if (cut) {
        return Problem(OutputProblem::kTruncated,
                       "the output was cut off (finish_reason \"length\") inside its "
                       "<think> block, before any JSON: " +
                           Quoted(content));
      }
      body.remove_prefix(lead + kThinkOpen.size());
    } else {
      body.remove_prefix(close + kThinkClose.size());
    }
  } else if (size_t close = body.find(kThinkClose); close != std::string_view::npos) {
    thought = true;
    body.remove_prefix(close + kThinkClose.size());
  }
  if (IsBlank(body)) {
    if (cut) {
      return Problem(OutputProblem::kTruncated,
                     "the output was cut off (finish_reason \"length\") after its <think> block: " +
                         Quoted(content));
    }
    return Problem(OutputProblem::kEmpty, std::string("the output held ") +
                                              (thought ? "only a <think> block" : "nothing") +
                                              ": " + Quoted(content));
  }

  // A code fence: read inside the first one (to its end, or to the end of a cut output).
  std::string_view region = body;
  if (size_t fence = body.find("```"); fence != std::string_view::npos) {
    size_t start = fence + 3;
    while (start < body.size() && (IsLower(static_cast<unsigned char>(body[start])) ||
                                   IsUpper(static_cast<unsigned char>(body[start])))) {
      ++start;  // the language tag
    }
    size_t close = body.find("```", start);
    std::string_view inner = body.substr(
        start, close == std::string_view::npos ? std::string_view::npos : close - start);
    if (inner.find('{') != std::string_view::npos) region = inner;
  }

  // Objects in order: the first holding "entities" is the answer. Each scan starts past the
  // previous object's end, so the whole search reads the output about once.
  std::optional<json> other_object;  // the first object parsed that is not ours
  std::string parse_error;
  bool unbalanced = false, retried = false;
  int candidates = 0;
  for (size_t pos = region.find('{');
       pos != std::string_view::npos && candidates < kMaxCandidates;) {
    ++candidates;
    Span span = ScanObject(region, pos);
    if (!span.balanced) {
      // Maybe a stray brace in prose opened it: look once more from a `{"entities"` further on.
      size_t again = retried ? std::string_view::npos : FindEntitiesObject(region, pos + 1);
      retried = true;
      if (again != std::string_view::npos) {
        pos = again;
        continue;
      }
      unbalanced = true;
      break;
    }
    if (span.too_deep) {
      if (parse_error.empty())
        parse_error = "brackets nested more than " + std::to_string(kMaxDepth) + " deep";
    } else {
      try {
        json j = json::parse(RemoveTrailingCommas(region.substr(pos, span.end - pos)));
        if (j.is_object()) {
          if (HasKey(j, "entities")) return FromObject(j, content, chunk);
          if (!other_object) other_object = std::move(j);
        }
      } catch (const json::exception& e) {
        if (parse_error.empty()) {
          std::string_view what =
              e.what();  // "[json.exception.parse_error.101] parse error at ..."
          if (size_t tag = what.find("] "); tag != std::string_view::npos)
            what.remove_prefix(tag + 2);
          parse_error = Snippet(what, 200);
        }
      }
    }
    pos = region.find('{', span.end);
  }

  if (unbalanced || cut) {
    return Problem(OutputProblem::kTruncated,
                   std::string("the output was cut off before its JSON object ended") +
                       (cut ? " (finish_reason \"length\")" : " (unbalanced brackets at the end)") +
                       ": " + Quoted(content));
  }
  if (other_object) {
    std::string keys;
    int shown = 0;
    for (auto it = other_object->begin(); it != other_object->end() && shown < 8; ++it, ++shown) {
      keys += (keys.empty() ? "" : ", ") + Snippet(it.key(), 40);
    }
    return Problem(OutputProblem::kWrongSchema,
                   "the JSON object has no \"entities\" array (its keys: " +
                       (keys.empty() ? std::string("none") : keys) + "): " + Quoted(content));
  }
  if (!parse_error.empty()) {
    return Problem(OutputProblem::kNotJson,
                   "the output was not valid JSON (" + parse_error + "): " + Quoted(content));
  }
  return Problem(OutputProblem::kNotJson, "the output holds no JSON object: " + Quoted(content));
}

}  // namespace

const char* OutputProblemName(OutputProblem p) {
  switch (p) {
    case OutputProblem::kNone:
      return "none";
    case OutputProblem::kEmpty:
      return "empty";
    case OutputProblem::kNotJson:
      return "not_json";
    case OutputProblem::kTruncated:
      return "truncated";
    case OutputProblem::kWrongSchema:
      return "wrong_schema";
  }
  return "unknown";
}

ParsedOutput ParseExtractionOutput(std::string_view content, std::string_view finish_reason,
                                   std::string_view chunk) {
  try {
    return Parse(content, finish_reason, chunk);
  } catch (const std::exception& e) {
    // Nothing above should throw but allocation; an answer is still owed to the caller.
    ParsedOutput out;
    out.problem = OutputProblem::kNotJson;
    out.detail = std::string("the output could not be read (") + e.what() + "): \"" +
                 Snippet(content) + "\"";
    return out;
  } catch (...) {
    ParsedOutput out;
    out.problem = OutputProblem::kNotJson;
    out.detail = "the output could not be read: \"" + Snippet(content) + "\"";
    return out;
  }
}

std::string Snippet(std::string_view text, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t len = Utf8Len(text, i);
    size_t take = len == 0 ? 1 : len;
    if (i + take > max_bytes) break;
    auto c = static_cast<unsigned char>(text[i]);
    if (len == 0 || c < 0x20 || c == 0x7F) {
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default: {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        }
      }
    } else {
      out.append(text.substr(i, len));
    }
    i += take;
  }
  if (i < text.size()) out += "...";
  return out;
}

}  // namespace kg::llm
