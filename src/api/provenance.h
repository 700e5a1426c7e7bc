#pragma once
// The text behind an entity's relations, for the graph explorer (GET /api/v1/graph/entities/KEY):
// which chunks an entity view shows, and the sentence of a chunk that states a relation.
//
// Thread safety: plain functions of their arguments.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph_store.h"

namespace kg {

// The most chunks one entity view carries, and the most bytes of each chunk's text: a view of
// a much mentioned entity stays small.
inline constexpr size_t kEvidenceChunksMax = 50;
inline constexpr size_t kEvidenceTextMax = 1000;

struct EvidencePick {
  std::vector<std::string> ids;  // each once, at most the cap
  bool truncated = false;        // some chunk was left out for the cap
};

// The chunks whose text an entity view shows: the first evidence chunk of every relation (so
// each has a chunk to find its sentence in), then the rest of their evidence, the heaviest
// relation first each time (equal weights in the order given), then the chunks that mention
// the entity itself. Precondition: max <= kGetChunksMax (the ids go to one GetChunks call).
EvidencePick PickEvidenceChunks(const EntityDetail& d, size_t max = kEvidenceChunksMax);

// The first sentence of `text` (as FindSentences splits it) that names both `a` and `b`,
// compared as entity keys fold names (NormalizeName: case in every script, width, runs of white
// space), so "MARA VOSS" names "Mara Voss". nullopt when no sentence names both, or a name
// folds to nothing.
std::optional<std::string> SentenceNaming(std::string_view text, std::string_view a, std::string_view b);

}  // namespace kg
