#pragma once
// Scoring a provider's graph for one item against its gold labels, and summing items into
// micro-averaged precision, recall and F1 per language and overall. Pure functions of
// their arguments; the rules are written down in docs/eval.md.

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "eval/gold.h"

namespace kg::eval {

// What a provider put in the graph for one item: its entities and relations, by name.
struct Prediction {
  struct Entity {
    std::string name, type;
  };
  struct Relation {
    std::string source, type, target;  // names of predicted entities
  };
  std::vector<Entity> entities;
  std::vector<Relation> relations;
};

// Matches counted one way; precision, recall and F1 follow (nullopt when undefined:
// nothing predicted, nothing expected, or neither).
struct Counts {
  int64_t tp = 0, predicted = 0, gold = 0;
  std::optional<double> Precision() const;
  std::optional<double> Recall() const;
  std::optional<double> F1() const;  // 2tp / (predicted + gold), the harmonic mean of P and R
  Counts& operator+=(const Counts& o);
};

struct Scores {
  Counts entities_typed, entities_untyped, relations_typed, relations_untyped;
  Scores& operator+=(const Scores& o);
};

// The typed misses of one item, as lines for a reader ("Ana Ruiz (Person)",
// "Ana Ruiz CEO_OF Kestrel Labs"); spurious lines say when a name is a gold entity's
// with another type or a second entity for an already matched one.
struct Misses {
  std::vector<std::string> missed_entities, spurious_entities, missed_relations, spurious_relations;
  size_t size() const;
};

struct ItemResult {
  std::string id, lang;
  int line = 0;
  Scores scores;
  Misses misses;
};

// Entities: a predicted entity matches the gold entity whose name or an alias has its folded
// name (typed: and the same type, case-insensitively); each gold entity is matched at most
// once, so a second predicted entity for it (an alias not folded, a second type) is a false
// positive. Relations: ends are resolved to gold entities by name or alias; FOUNDER_OF counts
// as FOUNDED; PARTNER_OF, COMPETES_WITH and MARRIED_TO are symmetric; typed compares (source,
// type, target), untyped the unordered pair of ends; duplicates fold on both sides.
ItemResult ScoreItem(const GoldItem& gold, const Prediction& predicted);

struct Report {
  std::vector<ItemResult> items;
  std::map<std::string, Scores> by_lang;
  std::map<std::string, int> items_by_lang;
  Scores overall;
};
// Sums item results (micro-averaging: counts add, ratios are taken at the end).
Report Summarize(std::vector<ItemResult> items);

// The relation type the scorer compares: folded like BuildBatch folds it (upper case,
// spaces to '_'), FOUNDER_OF read as FOUNDED.
std::string CanonicalRelationType(std::string_view type);

}  // namespace kg::eval
