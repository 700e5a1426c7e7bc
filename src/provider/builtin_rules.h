#pragma once
// Internals of the builtin extractor, shared by its English and Chinese halves.

#include <map>
#include <string>
#include <vector>

#include "provider/extraction.h"

namespace kg::builtin {

// Collects mentions from many sentences of one chunk; a name keeps the type with the
// strongest evidence. Aliases fold into the full name when exactly one candidate exists
// in the chunk: a single word that is the first word of an organisation or the last word
// of a person ("Helix", "Voss"); an organisation's name without its trailing suffix words
// ("Orbital Freight" for "Orbital Freight Inc."); a Chinese name that begins an
// organisation's name ("华为" for "华为技术有限公司").
class Collector {
 public:
  void AddEntity(const std::string& name, const std::string& type, int strength, const std::string& sentence);
  // `sentence`: the text the relation was read from, verbatim (ExtractedRelation::sentence).
  void AddRelation(const std::string& src, const std::string& dst, const std::string& type,
                   const std::string& sentence);
  Extraction Finish() const;

  // The person a sentence-initial pronoun ("she", "他") refers to: the first person of the
  // latest earlier sentence of the chunk that named one; empty if none.
  const std::string& last_person() const { return last_person_; }
  void set_last_person(const std::string& name) { last_person_ = name; }
  // Likewise the organisation "The company ..." / "It ..." / "该公司…" opening a sentence
  // refers to.
  const std::string& last_org() const { return last_org_; }
  // Names met so far in the chunk with their types, for finding them again where no rule
  // would ("云帆智能由…创立" after "名为云帆智能的").
  std::vector<std::pair<std::string, std::string>> Known() const;
  void set_last_org(const std::string& name) { last_org_ = name; }

 private:
  std::string last_person_, last_org_;
  struct Entry {
    std::string type;
    int strength = -1;
    std::string description;
    size_t order = 0;
  };
  std::map<std::string, Entry> entities_;
  struct Rel {
    std::string src, dst, type, sentence;
  };
  std::vector<Rel> relations_;
};

// A heading (no closing punctuation) contributes only names typed by a suffix or title.
void ExtractEnglishSentence(const std::string& sentence, bool heading, Collector& out);
bool EndsSentence(const std::string& sentence);
// Whether `word` is an organisation suffix ("Inc.", "Group", "Labs"): a name made of
// such words only is no name, and a name without its trailing suffix words is an alias.
bool IsOrgSuffixWord(const std::string& word);
void ExtractChineseSentence(const std::string& sentence, Collector& out);

}  // namespace kg::builtin
