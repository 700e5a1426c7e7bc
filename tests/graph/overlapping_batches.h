#pragma once
// Batches that collide on purpose, for the concurrency tests of the distributed graph stores:
// chunk c of document c/10, with people and organisations drawn from small pools so that
// batches merged by different threads share entities and relations, neighbouring chunks of a
// document reading the same sentence (overlap), and generation 2 answering differently.
#include <string>

#include "graph/graph_store.h"
#include "text/text.h"

namespace kg::testing {

// Entity attributes depend on the key alone (so a result does not depend on which concurrent
// merge came first); descriptions are empty in some batches of generation 1 and the same text
// in the others, so "the first non-empty" is one value whatever the order (and generation 2,
// which may delete and re-create an entity, always describes it).
inline EntityRec Person(int i, bool describe) {
  std::string name = "Person " + std::to_string(i);
  return {EntityKey(name, "Person"), name, "Person", describe ? "person number " + std::to_string(i) : "", 0};
}
inline EntityRec Org(int i) {
  std::string name = "Org " + std::to_string(i);
  return {EntityKey(name, "Organization"), name, "Organization", "", 0};
}

// Chunk c at generation `gen` (1 or 2), its people from a pool of `people` and its
// organisations from one of `orgs`.
inline GraphBatch Overlapping(int c, int64_t gen, int people, int orgs) {
  GraphBatch b;
  std::string doc = "doc" + std::to_string(c / 10);
  b.doc = {doc, "Document " + doc, doc + ".txt"};
  b.chunk = {doc + ":" + std::to_string(c % 10), doc, c % 10, "text of chunk " + std::to_string(c), gen};
  const int shift = gen == 1 ? 0 : 7;
  for (int k = 0; k < 4; ++k) {
    EntityRec p = Person((c * 3 + k + shift) % people, gen == 2 || (c + k) % 2 == 0);
    EntityRec o = Org((c + k + shift) % orgs);
    b.entities.push_back(p);
    b.entities.push_back(o);
    RelationRec r{p.key, o.key, k % 2 == 0 ? "WORKS_AT" : "FOUNDED", {}, 0};
    // Sentence ids: this chunk's own and the one it shares with the next chunk.
    r.sentences = {doc + "@" + std::to_string((c % 10) * 100 + k), doc + "@" + std::to_string((c % 10 + 1) * 100)};
    if (k == 3) r.sentences.clear();  // the chunk stands for its sentence
    b.relations.push_back(r);
  }
  return b;
}

}  // namespace kg::testing
