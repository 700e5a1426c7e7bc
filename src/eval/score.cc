#include "eval/score.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <tuple>

#include "text/text.h"

namespace kg::eval {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool Symmetric(const std::string& canonical_type) {
  return canonical_type == "PARTNER_OF" || canonical_type == "COMPETES_WITH" || canonical_type == "MARRIED_TO";
}

// An end of a relation: a gold entity ("#<index>") or a name outside the gold ("?<folded name>").
using End = std::string;
using TypedRel = std::tuple<End, std::string, End>;
using Pair = std::pair<End, End>;

}  // namespace

std::optional<double> Counts::Precision() const {
  if (predicted == 0) return std::nullopt;
  return static_cast<double>(tp) / static_cast<double>(predicted);
}
std::optional<double> Counts::Recall() const {
  if (gold == 0) return std::nullopt;
  return static_cast<double>(tp) / static_cast<double>(gold);
}
std::optional<double> Counts::F1() const {
  if (predicted + gold == 0) return std::nullopt;
  return 2.0 * static_cast<double>(tp) / static_cast<double>(predicted + gold);
}
Counts& Counts::operator+=(const Counts& o) {
  tp += o.tp;
  predicted += o.predicted;
  gold += o.gold;
  return *this;
}
Scores& Scores::operator+=(const Scores& o) {
  entities_typed += o.entities_typed;
  entities_untyped += o.entities_untyped;
  relations_typed += o.relations_typed;
  relations_untyped += o.relations_untyped;
  return *this;
}
size_t Misses::size() const {
  return missed_entities.size() + spurious_entities.size() + missed_relations.size() + spurious_relations.size();
}

std::string CanonicalRelationType(std::string_view type) {
  std::string t = NormalizeName(type);
  for (char& ch : t) ch = ch == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (t == "FOUNDER_OF") t = "FOUNDED";
  return t;
}

ItemResult ScoreItem(const GoldItem& gold, const Prediction& predicted) {
  ItemResult r;
  r.id = gold.id;
  r.lang = gold.lang;
  r.line = gold.line;

  std::map<std::string, size_t> gold_by_name;  // folded name or alias -> gold entity
  for (size_t i = 0; i < gold.entities.size(); ++i) {
    gold_by_name.emplace(FoldName(gold.entities[i].name), i);
    for (const auto& a : gold.entities[i].aliases) gold_by_name.emplace(FoldName(a), i);
  }
  auto find_gold = [&](const std::string& folded) -> std::optional<size_t> {
    auto it = gold_by_name.find(folded);
    if (it == gold_by_name.end()) return std::nullopt;
    return it->second;
  };

  // Entities, in a fixed order so that which of two duplicates counts is deterministic.
  std::vector<std::tuple<std::string, std::string, const Prediction::Entity*>> ents;  // folded, type
  {
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& e : predicted.entities) {
      std::string f = FoldName(e.name);
      if (f.empty() || !seen.insert({f, Lower(e.type)}).second) continue;
      ents.emplace_back(f, Lower(e.type), &e);
    }
    // A gold entity's own name claims it before an alias does ("Kestrel" is the second entity
    // for Kestrel Labs, not the other way round).
    std::set<std::string> primary;
    for (const auto& g : gold.entities) primary.insert(FoldName(g.name));
    std::sort(ents.begin(), ents.end(), [&](const auto& a, const auto& b) {
      bool pa = primary.count(std::get<0>(a)) > 0, pb = primary.count(std::get<0>(b)) > 0;
      return std::tie(pb, std::get<0>(a), std::get<1>(a)) < std::tie(pa, std::get<0>(b), std::get<1>(b));
    });
  }
  std::vector<bool> typed_hit(gold.entities.size()), untyped_hit(gold.entities.size());
  std::set<std::string> untyped_seen;
  r.scores.entities_typed.gold = r.scores.entities_untyped.gold = static_cast<int64_t>(gold.entities.size());
  for (const auto& [folded, type, e] : ents) {
    auto g = find_gold(folded);
    ++r.scores.entities_typed.predicted;
    std::string shown = e->name + " (" + e->type + ")";
    if (g && Lower(gold.entities[*g].type) == type && !typed_hit[*g]) {
      typed_hit[*g] = true;
      ++r.scores.entities_typed.tp;
    } else if (g && Lower(gold.entities[*g].type) == type) {
      r.misses.spurious_entities.push_back(shown + ": a second entity for " + gold.entities[*g].name);
    } else if (g) {
      r.misses.spurious_entities.push_back(shown + ": " + gold.entities[*g].name + " is " +
                                           gold.entities[*g].type);
    } else {
      r.misses.spurious_entities.push_back(shown);
    }
    if (!untyped_seen.insert(folded).second) continue;
    ++r.scores.entities_untyped.predicted;
    if (g && !untyped_hit[*g]) {
      untyped_hit[*g] = true;
      ++r.scores.entities_untyped.tp;
    }
  }
  for (size_t i = 0; i < gold.entities.size(); ++i) {
    if (!typed_hit[i]) r.misses.missed_entities.push_back(gold.entities[i].name + " (" + gold.entities[i].type + ")");
  }

  // Relations.
  std::map<End, std::string> shown;  // end -> name for a reader
  auto end_of = [&](const std::string& name) -> End {
    std::string f = FoldName(name);
    End e;
    if (auto g = find_gold(f)) {
      e = "#" + std::to_string(*g);
      shown.emplace(e, gold.entities[*g].name);
    } else {
      e = "?" + f;
      shown.emplace(e, name);
    }
    return e;
  };
  auto add = [&](std::set<TypedRel>& typed, std::set<Pair>& untyped, const std::string& s, const std::string& t,
                 const std::string& d) {
    End a = end_of(s), b = end_of(d);
    std::string type = CanonicalRelationType(t);
    if (FoldName(s).empty() || FoldName(d).empty() || type.empty()) return;
    if (Symmetric(type) && b < a) std::swap(a, b);
    typed.insert({a, type, b});
    untyped.insert(a < b ? Pair{a, b} : Pair{b, a});
  };
  std::set<TypedRel> gold_typed, pred_typed;
  std::set<Pair> gold_pairs, pred_pairs;
  for (const auto& g : gold.relations) add(gold_typed, gold_pairs, g.source, g.type, g.target);
  for (const auto& p : predicted.relations) add(pred_typed, pred_pairs, p.source, p.type, p.target);
  auto line = [&](const TypedRel& t) { return shown[std::get<0>(t)] + " " + std::get<1>(t) + " " + shown[std::get<2>(t)]; };
  for (const auto& t : gold_typed) {
    if (pred_typed.count(t)) ++r.scores.relations_typed.tp;
    else r.misses.missed_relations.push_back(line(t));
  }
  for (const auto& t : pred_typed) {
    if (!gold_typed.count(t)) r.misses.spurious_relations.push_back(line(t));
  }
  for (const auto& p : gold_pairs) r.scores.relations_untyped.tp += pred_pairs.count(p) ? 1 : 0;
  r.scores.relations_typed.gold = static_cast<int64_t>(gold_typed.size());
  r.scores.relations_typed.predicted = static_cast<int64_t>(pred_typed.size());
  r.scores.relations_untyped.gold = static_cast<int64_t>(gold_pairs.size());
  r.scores.relations_untyped.predicted = static_cast<int64_t>(pred_pairs.size());
  return r;
}

Report Summarize(std::vector<ItemResult> items) {
  Report rep;
  for (const auto& i : items) {
    rep.by_lang[i.lang] += i.scores;
    ++rep.items_by_lang[i.lang];
    rep.overall += i.scores;
  }
  rep.items = std::move(items);
  return rep;
}

}  // namespace kg::eval
