#pragma once
// Internals of the builtin extractor, shared by its English and Chinese halves.

#include <map>
#include <string>
#include <vector>

#include "provider/extraction.h"

namespace kg::builtin {

// Collects mentions from many sentences; a name keeps the type with the strongest
// evidence; single-word names that are unambiguously the first word of an
// organisation or the last word of a person seen in the same chunk fold into it.
class Collector {
 public:
  void AddEntity(const std::string& name, const std::string& type, int strength, const std::string& sentence);
  void AddRelation(const std::string& src, const std::string& dst, const std::string& type);
  Extraction Finish() const;

 private:
  struct Entry {
    std::string type;
    int strength = -1;
    std::string description;
    size_t order = 0;
  };
  std::map<std::string, Entry> entities_;
  struct Rel {
    std::string src, dst, type;
  };
  std::vector<Rel> relations_;
};

// A heading (no closing punctuation) contributes only names typed by a suffix or title.
void ExtractEnglishSentence(const std::string& sentence, bool heading, Collector& out);
bool EndsSentence(const std::string& sentence);
void ExtractChineseSentence(const std::string& sentence, Collector& out);

}  // namespace kg::builtin
