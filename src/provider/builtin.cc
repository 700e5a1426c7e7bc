#include <algorithm>
#include <cctype>
#include <string_view>

#include "text/text.h"
#include "provider/builtin_rules.h"
#include "provider/provider.h"

namespace kg {
namespace builtin {

void Collector::AddEntity(const std::string& name, const std::string& type, int strength,
                          const std::string& sentence) {
  auto [it, inserted] = entities_.try_emplace(name);
  Entry& e = it->second;
  if (inserted) {
    e.order = entities_.size();
    std::string d = sentence;
    if (CodePointCount(d) > 240) {
      size_t i = 0, n = 0;
      while (i < d.size() && n < 240) {
        DecodeUtf8(d, i);
        ++n;
      }
      d = d.substr(0, i) + "...";
    }
    e.description = d;
  }
  if (strength > e.strength) {
    e.type = type;
    e.strength = strength;
  }
}

std::vector<std::pair<std::string, std::string>> Collector::Known() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, e] : entities_) out.emplace_back(name, e.type);
  return out;
}

void Collector::AddRelation(const std::string& src, const std::string& dst, const std::string& type,
                            const std::string& sentence) {
  relations_.push_back({src, dst, type, sentence});
}

namespace {

bool HasHan(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    if (IsHan(DecodeUtf8(s, i))) return true;
  }
  return false;
}

// "Orbital Freight Inc." -> "Orbital Freight": the name without its trailing organisation
// suffix words, or empty if nothing (or only one word) is left.
std::string WithoutOrgSuffix(const std::string& name) {
  std::string out = name;
  bool dropped = false;
  while (true) {
    size_t sp = out.rfind(' ');
    if (sp == std::string::npos || !IsOrgSuffixWord(out.substr(sp + 1))) break;
    out.resize(sp);
    while (!out.empty() && out.back() == ',') out.pop_back();
    dropped = true;
  }
  return dropped && out.find(' ') != std::string::npos ? out : "";
}

}  // namespace

Extraction Collector::Finish() const {
  std::map<std::string, std::string> alias;
  // Unique candidate or nothing.
  auto choose = [&](const std::string& name, auto&& fits) {
    std::string target;
    int matches = 0;
    for (const auto& [full, f] : entities_) {
      if (full == name || alias.count(full) || !fits(full, f)) continue;
      target = full;
      ++matches;
    }
    if (matches == 1) alias[name] = target;
  };
  // First an organisation without its suffix ("Orbital Freight" -> "Orbital Freight Inc.")
  // and a Chinese short name ("华为" -> "华为技术有限公司"), so that a single word meets
  // only the full names after them.
  std::vector<std::string> longest_first;
  for (const auto& [name, e] : entities_) longest_first.push_back(name);
  std::stable_sort(longest_first.begin(), longest_first.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& name : longest_first) {
    if (HasHan(name)) {
      if (CodePointCount(name) < 2) continue;
      choose(name, [&](const std::string& full, const Entry& f) {
        return f.type == "Organization" && full.size() > name.size() && full.rfind(name, 0) == 0;
      });
    } else if (name.find(' ') != std::string::npos) {
      // "Orbital Freight" for "Orbital Freight Inc.", or any longer organisation it begins
      // ("Quinta Verde" for "Quinta Verde Agro").
      choose(name, [&](const std::string& full, const Entry& f) {
        return f.type == "Organization" && (WithoutOrgSuffix(full) == name || full.rfind(name + " ", 0) == 0);
      });
    }
  }
  // Then a single word: "Voss" -> "Mara Voss" (person), "Helix" -> "Helix Dynamics" (organisation).
  for (const auto& entry : entities_) {
    const std::string& name = entry.first;  // not a structured binding: the lambda captures it
    if (name.find(' ') != std::string::npos || HasHan(name) || alias.count(name)) continue;
    choose(name, [&](const std::string& full, const Entry& f) {
      if (full.find(' ') == std::string::npos) return false;
      bool person = f.type == "Person" && full.size() > name.size() &&
                    full.compare(full.size() - name.size(), name.size(), name) == 0 &&
                    full[full.size() - name.size() - 1] == ' ';
      bool org = f.type == "Organization" && full.rfind(name + " ", 0) == 0;
      // "Marcus" for "Marcus Feld": a first name alone, when no other name begins with it.
      bool first_name = f.type == "Person" && full.rfind(name + " ", 0) == 0;
      return person || org || first_name;
    });
  }
  auto resolve = [&](const std::string& n) {
    auto it = alias.find(n);
    return it == alias.end() ? n : it->second;  // targets are never aliased themselves
  };
  std::vector<std::pair<size_t, std::string>> ordered;
  for (const auto& [name, e] : entities_) {
    if (!alias.count(name)) ordered.emplace_back(e.order, name);
  }
  std::sort(ordered.begin(), ordered.end());
  Extraction x;
  for (const auto& [_, name] : ordered) {
    const Entry& e = entities_.at(name);
    x.entities.push_back({name, e.type, e.description});
  }
  for (const auto& r : relations_) {
    std::string s = resolve(r.src), d = resolve(r.dst);
    if (s == d) continue;
    x.relations.push_back({s, entities_.at(s).type, d, entities_.at(d).type, r.type, r.sentence});
  }
  return x;
}

bool EndsSentence(const std::string& s) {
  size_t e = s.size();
  while (e > 0 && (s[e - 1] == '"' || s[e - 1] == '\'' || s[e - 1] == ')')) --e;
  return e > 0 && (s[e - 1] == '.' || s[e - 1] == '!' || s[e - 1] == '?' || s[e - 1] == ':' || s[e - 1] == ';');
}

}  // namespace builtin

namespace builtin {
namespace {

// The trimmed cells of a table row ("a | b | c", outer pipes optional; or cells separated by
// tabs, as Markdown and HTML tables come out of src/markup and as TSV is written); empty if the
// line has fewer than two cells.
std::vector<std::string> Cells(std::string_view line) {
  std::vector<std::string> cells;
  char sep = line.find('|') != std::string_view::npos ? '|' : '\t';
  if (line.find(sep) == std::string_view::npos) return cells;
  size_t b = 0;
  while (true) {
    size_t e = line.find(sep, b);
    std::string_view cell = line.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
    while (!cell.empty() && std::isspace(static_cast<unsigned char>(cell.front()))) cell.remove_prefix(1);
    while (!cell.empty() && std::isspace(static_cast<unsigned char>(cell.back()))) cell.remove_suffix(1);
    cells.emplace_back(cell);
    if (e == std::string_view::npos) break;
    b = e + 1;
  }
  if (!cells.empty() && cells.front().empty()) cells.erase(cells.begin());
  if (!cells.empty() && cells.back().empty()) cells.pop_back();
  if (cells.size() < 2) cells.clear();
  return cells;
}

bool IsRuleRow(const std::vector<std::string>& cells) {  // "---|:---:"
  return std::all_of(cells.begin(), cells.end(), [](const std::string& c) {
    return !c.empty() && c.find_first_not_of("-:= ") == std::string::npos;
  });
}

// Whether a table cell can be a name: short, no sentence inside it, no role word (a row of
// prose that happens to hold tabs or pipes is not a table of names).
bool NameLikeCell(const std::string& cell) {
  if (cell.size() > 80) return false;
  if (std::count(cell.begin(), cell.end(), ' ') > 7) return false;
  for (const char* stop : {". ", "?", "!", ";", "\"", "\xe3\x80\x82" /* 。 */, "\xef\xbc\x9f" /* ？ */,
                           "\xef\xbc\x81" /* ！ */, "\xef\xbc\x9b" /* ； */}) {
    if (cell.find(stop) != std::string::npos) return false;
  }
  for (const char* role : {"CEO", "CTO", "CFO", "COO", "Chief ", "chief ", "\xe9\xa6\x96\xe5\xb8\xad" /* 首席 */,
                           "\xe6\x89\xa7\xe8\xa1\x8c\xe5\xae\x98" /* 执行官 */, "\xe8\x91\xa3\xe4\xba\x8b\xe9\x95\xbf" /* 董事长 */,
                           "\xe6\x80\xbb\xe8\xa3\x81" /* 总裁 */, "\xe5\x88\x9b\xe5\xa7\x8b\xe4\xba\xba" /* 创始人 */}) {
    if (cell.find(role) != std::string::npos) return false;
  }
  return true;
}

// What a column holds, from its header: the entity type and, for people, the role that
// ties them to the row's organisation.
struct Column {
  const char* type = nullptr;  // nullptr: not an entity column
  const char* role = nullptr;
};
Column Classify(const std::string& header) {
  std::string h;
  for (char c : header) h.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  auto has = [&](std::initializer_list<const char*> words) {
    return std::any_of(words.begin(), words.end(), [&](const char* w) { return h.find(w) != std::string::npos; });
  };
  if (has({"company", "organization", "organisation", "firm", "employer", "business", "startup", "公司", "企业",
           "机构", "单位", "供应商"})) {
    return {"Organization", nullptr};
  }
  if (has({"city", "location", "headquarters", "hq", "country", "place", "based", "所在地", "城市", "总部", "地点",
           "地区", "国家"})) {
    return {"Location", nullptr};
  }
  struct RoleHeader {
    std::initializer_list<const char*> words;
    const char* role;
  };
  static const RoleHeader kRoles[] = {
      {{"chief executive", "ceo", "首席执行官"}, "CEO_OF"}, {{"founder", "创始人"}, "FOUNDER_OF"},
      {{"chair", "董事长"}, "CHAIR_OF"}, {{"president", "总裁"}, "PRESIDENT_OF"},
      {{"cto", "首席技术官"}, "CTO_OF"}, {{"cfo", "首席财务官"}, "CFO_OF"},
      {{"director", "负责人"}, "DIRECTOR_OF"}, {{"head"}, "HEAD_OF"}};
  for (const auto& r : kRoles) {
    if (has(r.words)) return {"Person", r.role};
  }
  if (has({"person", "contact", "姓名"})) return {"Person", nullptr};
  return {};
}

// Reads the tables of `text` (a header row and at least one row, cells split by '|'):
// each cell under a known header is an entity of that column's type; in a row, the
// organisation is LOCATED_IN its places and its people hold the column's role. Returns
// the text with the table lines blanked, for the sentence rules.
std::string ExtractTables(std::string_view text, Collector& out) {
  std::string rest(text);
  std::vector<std::pair<size_t, size_t>> lines;  // [begin, end) of each line
  for (size_t b = 0; b <= text.size();) {
    size_t e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    lines.emplace_back(b, e);
    b = e + 1;
  }
  for (size_t i = 0; i < lines.size();) {
    auto line = [&](size_t k) { return text.substr(lines[k].first, lines[k].second - lines[k].first); };
    std::vector<std::string> header = Cells(line(i));
    size_t j = i + 1;
    while (j < lines.size() && Cells(line(j)).size() == header.size() && !header.empty()) ++j;
    if (header.empty() || j - i < 2) {
      ++i;
      continue;
    }
    std::vector<Column> cols;
    for (const auto& h : header) cols.push_back(Classify(h));
    for (size_t k = i + 1; k < j; ++k) {
      std::vector<std::string> cells = Cells(line(k));
      if (IsRuleRow(cells)) continue;
      std::string row(line(k));
      std::string org;
      for (size_t c = 0; c < cells.size(); ++c) {
        if (!cols[c].type || cells[c].empty() || cells[c] == "-" || !NameLikeCell(cells[c])) continue;
        out.AddEntity(cells[c], cols[c].type, 3, row);
        if (org.empty() && std::string_view(cols[c].type) == "Organization") org = cells[c];
      }
      if (org.empty()) continue;
      for (size_t c = 0; c < cells.size(); ++c) {
        if (!cols[c].type || cells[c].empty() || cells[c] == "-" || !NameLikeCell(cells[c])) continue;
        if (std::string_view(cols[c].type) == "Location") out.AddRelation(org, cells[c], "LOCATED_IN", row);
        if (cols[c].role) out.AddRelation(cells[c], org, cols[c].role, row);
      }
    }
    for (size_t k = i; k < j; ++k) {
      std::fill(rest.begin() + static_cast<std::ptrdiff_t>(lines[k].first),
                rest.begin() + static_cast<std::ptrdiff_t>(lines[k].second), ' ');
    }
    i = j;
  }
  return rest;
}

}  // namespace
}  // namespace builtin

Extraction BuiltinExtract(std::string_view text) {
  builtin::Collector c;
  const std::string prose = builtin::ExtractTables(text, c);
  for (const auto& sentence : SplitSentences(prose)) {
    bool han = false;
    for (size_t i = 0; i < sentence.size() && !han;) han = IsHan(DecodeUtf8(sentence, i));
    if (han) builtin::ExtractChineseSentence(sentence, c);
    else builtin::ExtractEnglishSentence(sentence, !builtin::EndsSentence(sentence), c);
  }
  Extraction x = c.Finish();
  // A quote locates its sentence by its first occurrence: a sentence written twice in the
  // chunk is left unquoted, for the pipeline to find each occurrence in turn.
  for (auto& r : x.relations) {
    size_t first = text.find(r.sentence);
    if (first != std::string_view::npos && text.find(r.sentence, first + 1) != std::string_view::npos) r.sentence.clear();
  }
  return x;
}

}  // namespace kg
