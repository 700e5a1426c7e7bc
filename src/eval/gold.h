#pragma once
// The labelled ("gold") file `kgflow eval` scores a provider against: one JSON object per
// line (format in docs/eval.md), each an item of text with the entities and relations a
// careful reader finds in it.

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kg::eval {

struct GoldEntity {
  std::string name, type;
  std::vector<std::string> aliases;  // other names the text uses for it ("Kestrel" for "Kestrel Labs")
};
struct GoldRelation {
  std::string source, type, target;  // ends name a GoldEntity (its name or an alias)
};
struct GoldItem {
  int line = 0;  // 1-based line of the file the item came from
  std::string id, lang, text;
  std::vector<GoldEntity> entities;
  std::vector<GoldRelation> relations;
};

// Parses a whole gold file. Blank lines are skipped. Every other line must be one object
// with exactly the keys id, lang ("en" or "zh"), text, entities and relations; ids are unique;
// within an item no two entities share a folded name or alias (FoldName), and each
// relation's ends name one of its entities. kInvalidArgument "line N: <reason>" for the
// first bad line; an empty file (no items) is kInvalidArgument too.
Result<std::vector<GoldItem>> ParseGold(std::string_view content);

// A name as the graph's entity keys fold it (the name part of EntityKey).
std::string FoldName(std::string_view name);

}  // namespace kg::eval
