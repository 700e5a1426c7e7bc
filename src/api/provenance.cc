#include "api/provenance.h"

#include <algorithm>
#include <set>

#include "text/text.h"

namespace kg {

EvidencePick PickEvidenceChunks(const EntityDetail& d, size_t max) {
  std::vector<const Neighbour*> by_weight;
  by_weight.reserve(d.neighbours.size());
  for (const Neighbour& n : d.neighbours) by_weight.push_back(&n);
  std::stable_sort(by_weight.begin(), by_weight.end(),
                   [](const Neighbour* a, const Neighbour* b) { return a->relation.weight > b->relation.weight; });
  EvidencePick pick;
  std::set<std::string> seen;
  auto add = [&](const std::string& id) {
    if (seen.count(id)) return;
    if (pick.ids.size() == max) {
      pick.truncated = true;
      return;
    }
    seen.insert(id);
    pick.ids.push_back(id);
  };
  // One chunk of every relation first, so each gets its sentence looked for, then the rest.
  for (const Neighbour* n : by_weight) {
    if (!n->relation.evidence.empty()) add(n->relation.evidence.front());
  }
  for (const Neighbour* n : by_weight) {
    for (const std::string& id : n->relation.evidence) add(id);
  }
  for (const std::string& id : d.chunks) add(id);
  return pick;
}

std::optional<std::string> SentenceNaming(std::string_view text, std::string_view a, std::string_view b) {
  const std::string fa = NormalizeName(a), fb = NormalizeName(b);
  if (fa.empty() || fb.empty()) return std::nullopt;
  for (const SentenceSpan& s : FindSentences(text)) {
    const std::string_view sentence = text.substr(s.offset, s.size);
    const std::string folded = NormalizeName(sentence);
    if (folded.find(fa) != std::string::npos && folded.find(fb) != std::string::npos) return std::string(sentence);
  }
  return std::nullopt;
}

}  // namespace kg
