#include "eval/gold.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "text/text.h"

namespace kg::eval {
namespace {

using nlohmann::json;

// The value of `key` as a non-blank string, or why not.
Result<std::string> NonBlankString(const json& obj, const std::string& key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Invalid(where + "missing \"" + key + "\"");
  if (!it->is_string()) return Status::Invalid(where + "\"" + key + "\" must be a string");
  std::string s = it->get<std::string>();
  if (FoldName(s).empty()) return Status::Invalid(where + "\"" + key + "\" is empty");
  return s;
}

Status CheckKeys(const json& obj, const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& [k, v] : obj.items()) {
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return Status::Invalid(where + "unknown key \"" + k + "\" (expected " + list + ")");
    }
  }
  return Status::Ok();
}

Result<GoldItem> ParseItem(const json& j, int line) {
  if (!j.is_object()) return Status::Invalid("expected a JSON object");
  KG_RETURN_IF_ERROR(CheckKeys(j, {"id", "lang", "text", "entities", "relations"}, ""));
  GoldItem item;
  item.line = line;
  KG_ASSIGN_OR_RETURN(item.id, NonBlankString(j, "id", ""));
  KG_ASSIGN_OR_RETURN(item.lang, NonBlankString(j, "lang", ""));
  if (item.lang != "en" && item.lang != "zh") {
    return Status::Invalid("\"lang\" is \"" + item.lang + "\" (expected \"en\" or \"zh\")");
  }
  KG_ASSIGN_OR_RETURN(item.text, NonBlankString(j, "text", ""));
  for (const char* key : {"entities", "relations"}) {
    if (!j.contains(key)) return Status::Invalid(std::string("missing \"") + key + "\" (an empty list is fine)");
    if (!j.at(key).is_array()) return Status::Invalid(std::string("\"") + key + "\" must be a list");
  }
  std::map<std::string, std::string> names;  // folded name or alias -> the entity's name
  for (size_t i = 0; i < j.at("entities").size(); ++i) {
    const json& e = j.at("entities")[i];
    std::string where = "entities[" + std::to_string(i) + "]: ";
    if (!e.is_object()) return Status::Invalid(where + "expected an object");
    KG_RETURN_IF_ERROR(CheckKeys(e, {"name", "type", "aliases"}, where));
    GoldEntity g;
    KG_ASSIGN_OR_RETURN(g.name, NonBlankString(e, "name", where));
    KG_ASSIGN_OR_RETURN(g.type, NonBlankString(e, "type", where));
    if (e.contains("aliases")) {
      if (!e.at("aliases").is_array()) return Status::Invalid(where + "\"aliases\" must be a list of strings");
      for (const json& a : e.at("aliases")) {
        if (!a.is_string() || FoldName(a.get<std::string>()).empty()) {
          return Status::Invalid(where + "\"aliases\" must be a list of non-empty strings");
        }
        g.aliases.push_back(a.get<std::string>());
      }
    }
    std::vector<std::string> all = g.aliases;
    all.insert(all.begin(), g.name);
    std::set<std::string> own;
    for (const auto& n : all) {
      std::string f = FoldName(n);
      if (!own.insert(f).second) continue;  // an alias equal to the name once folded
      if (auto it = names.find(f); it != names.end()) {
        return Status::Invalid(where + "\"" + n + "\" also names entity \"" + it->second +
                               "\" (names and aliases must tell the entities apart)");
      }
      names[f] = g.name;
    }
    item.entities.push_back(std::move(g));
  }
  for (size_t i = 0; i < j.at("relations").size(); ++i) {
    const json& r = j.at("relations")[i];
    std::string where = "relations[" + std::to_string(i) + "]: ";
    if (!r.is_object()) return Status::Invalid(where + "expected an object");
    KG_RETURN_IF_ERROR(CheckKeys(r, {"source", "type", "target"}, where));
    GoldRelation g;
    KG_ASSIGN_OR_RETURN(g.source, NonBlankString(r, "source", where));
    KG_ASSIGN_OR_RETURN(g.type, NonBlankString(r, "type", where));
    KG_ASSIGN_OR_RETURN(g.target, NonBlankString(r, "target", where));
    for (const auto* end : {&g.source, &g.target}) {
      if (!names.count(FoldName(*end))) {
        return Status::Invalid(where + "\"" + *end + "\" is not among the item's entities or their aliases");
      }
    }
    if (FoldName(g.source) == FoldName(g.target) || names[FoldName(g.source)] == names[FoldName(g.target)]) {
      return Status::Invalid(where + "source and target are the same entity");
    }
    item.relations.push_back(std::move(g));
  }
  return item;
}

}  // namespace

std::string FoldName(std::string_view name) { return NormalizeName(name); }  // EntityKey's name part

Result<std::vector<GoldItem>> ParseGold(std::string_view content) {
  std::vector<GoldItem> items;
  std::set<std::string> ids;
  int line_no = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    std::string prefix = "line " + std::to_string(line_no) + ": ";
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (Status s = CheckText(line); !s.ok()) return Status::Invalid(prefix + s.message());
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      return Status::Invalid(prefix + "not valid JSON: " + e.what());
    }
    auto item = ParseItem(j, line_no);
    if (!item.ok()) return Status::Invalid(prefix + item.status().message());
    if (!ids.insert(item->id).second) return Status::Invalid(prefix + "id \"" + item->id + "\" is used twice");
    items.push_back(std::move(item).value());
  }
  if (items.empty()) return Status::Invalid("no items (one JSON object per line is expected)");
  return items;
}

}  // namespace kg::eval
