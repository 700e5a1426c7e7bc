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
// by whoever builds the graph batch.
struct ExtractedRelation {
  std::string source, source_type, target, target_type, type;
};
struct Extraction {
  std::vector<ExtractedEntity> entities;
  std::vector<ExtractedRelation> relations;
};

}  // namespace kg
