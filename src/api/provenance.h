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

// One sentence of a chunk and its folded form (NormalizeName), folded once for every relation
// looked for in it. `text` is a view into the chunk's text: valid while that text is.
struct FoldedSentence {
  std::string_view text;
  std::string folded;
};

// The sentences of `text` as FindSentences splits them, each folded.
std::vector<FoldedSentence> FoldSentences(std::string_view text);

// Whether the folded `name` occurs in the folded `text` as a whole name: the characters just
// before and after it are not letters or digits ("ann" is not in "annabel", "ai" not in
// "maintain"). Scripts written without spaces (Han, kana, Thai, Lao, Khmer, Burmese) have no
// such boundary, so where the name's edge or its neighbour is one of them, a substring matches
// ("张三" in "张三和李四", "ai" in "使用ai技术"). False for an empty name.
bool NamesAsWord(std::string_view folded_text, std::string_view folded_name);

// The first of `sentences` that names both `a` and `b` (NamesAsWord on their folded forms: case
// in every script, width, runs of white space, so "MARA VOSS" names "Mara Voss"). nullopt when
// none does, or a name folds to nothing.
std::optional<std::string> SentenceNaming(const std::vector<FoldedSentence>& sentences, std::string_view a,
                                          std::string_view b);
// The same over the sentences of `text` (folds them: for one lookup).
std::optional<std::string> SentenceNaming(std::string_view text, std::string_view a, std::string_view b);

}  // namespace kg
