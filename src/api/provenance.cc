#include "api/provenance.h"

#include <algorithm>
#include <set>

#include <unicode/uchar.h>
#include <unicode/uscript.h>

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

namespace {

// Scripts written without spaces between words: a name there has no word boundary to require.
bool IsSpaceless(char32_t c) {
  UErrorCode err = U_ZERO_ERROR;
  switch (uscript_getScript(static_cast<UChar32>(c), &err)) {
    case USCRIPT_HAN:
    case USCRIPT_HIRAGANA:
    case USCRIPT_KATAKANA:
    case USCRIPT_THAI:
    case USCRIPT_LAO:
    case USCRIPT_KHMER:
    case USCRIPT_MYANMAR:
      return true;
    default:
      return false;
  }
}

// The code point ending just before byte `end` of `s` (0 at the start).
char32_t CodePointBefore(std::string_view s, size_t end) {
  if (end == 0) return 0;
  size_t i = end - 1;
  while (i > 0 && end - i < 4 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return DecodeUtf8(s, i);
}

char32_t CodePointAt(std::string_view s, size_t i) { return i < s.size() ? DecodeUtf8(s, i) : 0; }

// Whether `outside` next to the name's edge character `edge` joins them into one word.
bool JoinsWord(char32_t outside, char32_t edge) {
  if (outside == 0 || !u_isalnum(static_cast<UChar32>(outside))) return false;
  return !IsSpaceless(outside) && !IsSpaceless(edge);
}

}  // namespace

std::vector<FoldedSentence> FoldSentences(std::string_view text) {
  std::vector<FoldedSentence> out;
  for (const SentenceSpan& s : FindSentences(text)) {
    const std::string_view sentence = text.substr(s.offset, s.size);
    out.push_back({sentence, NormalizeName(sentence)});
  }
  return out;
}

bool NamesAsWord(std::string_view folded_text, std::string_view folded_name) {
  if (folded_name.empty()) return false;
  const char32_t first = CodePointAt(folded_name, 0);
  const char32_t last = CodePointBefore(folded_name, folded_name.size());
  for (size_t at = folded_text.find(folded_name); at != std::string_view::npos;
       at = folded_text.find(folded_name, at + 1)) {
    const size_t end = at + folded_name.size();
    if (!JoinsWord(CodePointBefore(folded_text, at), first) && !JoinsWord(CodePointAt(folded_text, end), last)) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> SentenceNaming(const std::vector<FoldedSentence>& sentences, std::string_view a,
                                          std::string_view b) {
  const std::string fa = NormalizeName(a), fb = NormalizeName(b);
  if (fa.empty() || fb.empty()) return std::nullopt;
  for (const FoldedSentence& s : sentences) {
    if (NamesAsWord(s.folded, fa) && NamesAsWord(s.folded, fb)) return std::string(s.text);
  }
  return std::nullopt;
}

std::optional<std::string> SentenceNaming(std::string_view text, std::string_view a, std::string_view b) {
  return SentenceNaming(FoldSentences(text), a, b);
}

}  // namespace kg
