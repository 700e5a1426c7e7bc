#pragma once
// What a provider returns for one chunk: named entities and the relations between them,
// as the provider wrote them (not yet normalised; see BuildBatch in pipeline/document.h).
// Plain values with no behaviour, so that a provider depends on this header alone and
// not on the graph, queue or storage libraries that consume an extraction.

#include <string>
#include <vector>

namespace kg {

struct ExtractedEntity {
  std::string name, type, description;
};
// Both ends are named with their types; an end that is not among the entities is added
// by whoever builds the graph batch. `sentence`: the text the relation was read from, quoted
// verbatim from the chunk (a provider that can, e.g. an LLM asked to quote, sets it; empty
// when unknown). It decides which sentence of the document is the relation's evidence, so
// one sentence read in two overlapping chunks counts once.
struct ExtractedRelation {
  std::string source, source_type, target, target_type, type;
  std::string sentence{};
};
struct Extraction {
  std::vector<ExtractedEntity> entities;
  std::vector<ExtractedRelation> relations;
};

}  // namespace kg
