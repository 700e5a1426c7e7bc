#include <algorithm>

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

void Collector::AddRelation(const std::string& src, const std::string& dst, const std::string& type) {
  relations_.push_back({src, dst, type});
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
  for (const auto& [name, e] : entities_) {
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
    x.relations.push_back({s, entities_.at(s).type, d, entities_.at(d).type, r.type});
  }
  return x;
}

bool EndsSentence(const std::string& s) {
  size_t e = s.size();
  while (e > 0 && (s[e - 1] == '"' || s[e - 1] == '\'' || s[e - 1] == ')')) --e;
  return e > 0 && (s[e - 1] == '.' || s[e - 1] == '!' || s[e - 1] == '?' || s[e - 1] == ':' || s[e - 1] == ';');
}

}  // namespace builtin

Extraction BuiltinExtract(std::string_view text) {
  builtin::Collector c;
  for (const auto& sentence : SplitSentences(text)) {
    bool han = false;
    for (size_t i = 0; i < sentence.size() && !han;) han = IsHan(DecodeUtf8(sentence, i));
    if (han) builtin::ExtractChineseSentence(sentence, c);
    else builtin::ExtractEnglishSentence(sentence, !builtin::EndsSentence(sentence), c);
  }
  return c.Finish();
}

}  // namespace kg
