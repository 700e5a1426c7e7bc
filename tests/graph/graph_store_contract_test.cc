// The GraphStore contract; every backend runs it unchanged.
#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "graph/graph_store.h"
#include "mysql/mysql.h"
#include "testing/servers.h"
#ifdef KG_CONTRACT_NEO4J
#include "testing/neo4j.h"
#endif
#include "testing/testing.h"
#include "text/text.h"

namespace kg {
namespace {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<GraphStore>(const std::string& dir)> open;
};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }


GraphBatch Batch(const std::string& chunk, int idx) {
  GraphBatch b;
  b.doc = {"d1", "Doc", "src.txt"};
  b.chunk = {chunk, "d1", idx, "Mara Voss founded Helix Dynamics."};
  b.entities = {{"person:mara voss", "Mara Voss", "Person", "founder", 0},
                {"organization:helix dynamics", "Helix Dynamics", "Organization", "", 0}};
  b.relations = {{"person:mara voss", "organization:helix dynamics", "FOUNDED", {}, 0}};
  return b;
}

class GraphStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { g_ = GetParam().open(dir_.path()); }
  testing::TempDir dir_;
  std::unique_ptr<GraphStore> g_;
};

// Verifies a merge creates documents, chunks, entities and relations with provenance.
TEST_P(GraphStoreContract, MergeCreatesWithProvenance) {
  ASSERT_TRUE(g_->Merge({Batch("d1:0", 0)}).ok());
  auto s = g_->Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->documents, 1);
  EXPECT_EQ(s->chunks, 1);
  EXPECT_EQ(s->entities, 2);
  EXPECT_EQ(s->relations, 1);
  auto e = g_->GetEntity("person:mara voss");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->entity.name, "Mara Voss");
  ASSERT_EQ(e->neighbours.size(), 1u);
  EXPECT_EQ(e->neighbours[0].direction, "out");
  EXPECT_EQ(e->neighbours[0].relation.evidence, std::vector<std::string>{"d1:0"});
  EXPECT_EQ(e->chunks, std::vector<std::string>{"d1:0"});
  EXPECT_EQ(e->documents, std::vector<std::string>{"d1"});
  EXPECT_EQ(g_->GetEntity("nope").status().code(), Code::kNotFound);
}

// Verifies each neighbour of GetEntity carries its own mention count, in both directions,
// and that it is the neighbour's count, not the queried entity's.
TEST_P(GraphStoreContract, NeighbourCarriesItsMentions) {
  auto extra = Batch("d1:2", 2);
  extra.relations.clear();
  extra.entities.erase(extra.entities.begin());  // only Helix Dynamics: it has 3 mentions, Mara 2
  ASSERT_TRUE(g_->Merge({Batch("d1:0", 0), Batch("d1:1", 1), extra}).ok());
  auto mara = g_->GetEntity("person:mara voss");
  ASSERT_TRUE(mara.ok());
  EXPECT_EQ(mara->entity.mentions, 2);
  ASSERT_EQ(mara->neighbours.size(), 1u);
  EXPECT_EQ(mara->neighbours[0].direction, "out");
  EXPECT_EQ(mara->neighbours[0].entity.key, "organization:helix dynamics");
  EXPECT_EQ(mara->neighbours[0].entity.mentions, 3);
  auto helix = g_->GetEntity("organization:helix dynamics");
  ASSERT_TRUE(helix.ok());
  ASSERT_EQ(helix->neighbours.size(), 1u);
  EXPECT_EQ(helix->neighbours[0].direction, "in");
  EXPECT_EQ(helix->neighbours[0].entity.mentions, 2);
}

// Verifies FindByName matches the name part of keys exactly, across types, sorted, and
// neither by substring nor by type.
TEST_P(GraphStoreContract, FindByNameAcrossTypes) {
  auto b = Batch("d1:0", 0);
  b.entities.push_back({"location:helix dynamics", "Helix Dynamics", "Location", "", 0});
  b.entities.push_back({"organization:helix", "Helix", "Organization", "", 0});
  ASSERT_TRUE(g_->Merge({b}).ok());
  auto one = g_->FindByName("mara voss");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, std::vector<std::string>{"person:mara voss"});
  auto two = g_->FindByName("helix dynamics");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, (std::vector<std::string>{"location:helix dynamics", "organization:helix dynamics"}));
  EXPECT_EQ(*g_->FindByName("helix"), std::vector<std::string>{"organization:helix"});
  EXPECT_TRUE(g_->FindByName("mara")->empty());
  EXPECT_TRUE(g_->FindByName("person")->empty());
  EXPECT_TRUE(g_->FindByName("person:mara voss")->empty());
}

// Verifies merging the same batch again changes nothing, and new evidence raises the weight.
TEST_P(GraphStoreContract, MergeIsIdempotent) {
  ASSERT_TRUE(g_->Merge({Batch("d1:0", 0)}).ok());
  ASSERT_TRUE(g_->Merge({Batch("d1:0", 0), Batch("d1:0", 0)}).ok());
  auto s = g_->Stats();
  EXPECT_EQ(s->entities, 2);
  EXPECT_EQ(s->relations, 1);
  EXPECT_EQ(s->chunks, 1);
  auto snap = g_->Export();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->relations.size(), 1u);
  EXPECT_EQ(snap->relations[0].weight, 1);
  ASSERT_TRUE(g_->Merge({Batch("d1:1", 1)}).ok());
  snap = g_->Export();
  EXPECT_EQ(snap->relations[0].weight, 2);
  EXPECT_EQ(snap->relations[0].evidence, (std::vector<std::string>{"d1:0", "d1:1"}));
  EXPECT_EQ(g_->Stats()->relations, 1);
}

// Verifies an entity keeps its first non-empty description.
TEST_P(GraphStoreContract, DescriptionFirstNonEmptyWins) {
  auto b = Batch("d1:0", 0);
  b.entities[1].description = "";
  ASSERT_TRUE(g_->Merge({b}).ok());
  b.entities[1].description = "robots";
  ASSERT_TRUE(g_->Merge({b}).ok());
  b.entities[1].description = "later";
  ASSERT_TRUE(g_->Merge({b}).ok());
  EXPECT_EQ(g_->GetEntity("organization:helix dynamics")->entity.description, "robots");
}

// Verifies search is case-insensitive on names (and on keys in every script), most mentioned first, and
// honours the limit; a query that folds to nothing, or names only a type, finds nothing.
TEST_P(GraphStoreContract, Search) {
  ASSERT_TRUE(g_->Merge({Batch("d1:0", 0), Batch("d1:1", 1)}).ok());
  auto r = g_->SearchEntities("HELIX", 10);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].mentions, 2);
  EXPECT_EQ(g_->SearchEntities("", 1)->size(), 1u);  // no query: the most mentioned
  EXPECT_TRUE(g_->SearchEntities("zzz", 10)->empty());
  // A query that folds to nothing (white space, a zero-width space) finds nothing, and the type in
  // the key is not searched: "person" is no one's name.
  for (const char* q : {"   ", "\u200b", " \u200b\t", "person", "organization", "person:", "son:mara"}) {
    auto none = g_->SearchEntities(q, 10);
    ASSERT_TRUE(none.ok()) << q;
    EXPECT_TRUE(none->empty()) << q << ": " << none->size() << " found";
  }
  EXPECT_EQ(g_->SearchEntities("mara voss", 10)->size(), 1u);
  // Beyond ASCII the key's folding decides: Greek capitals, full width.
  auto greek = Batch("d1:2", 2);
  greek.entities = {{EntityKey("σίσυφος Labs", "Organization"), "σίσυφος Labs", "Organization", "", 0}};
  greek.relations.clear();
  ASSERT_TRUE(g_->Merge({greek}).ok());
  for (const char* q : {"ΣΊΣΥΦΟΣ", "σίσυφοσ", "ＬＡＢＳ"}) {
    auto found = g_->SearchEntities(q, 10);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u) << q;
    EXPECT_EQ((*found)[0].name, "σίσυφος Labs") << q;
  }
}

// Verifies both export formats carry every node and edge, with XML escaping.
TEST_P(GraphStoreContract, Export) {
  auto b = Batch("d1:0", 0);
  b.entities[1].name = "Helix <&> \"Dynamics\"";
  ASSERT_TRUE(g_->Merge({b}).ok());
  auto snap = g_->Export();
  ASSERT_TRUE(snap.ok());
  std::string json = ExportJson(*snap);
  EXPECT_NE(json.find("\"FOUNDED\""), std::string::npos);
  std::string xml = ExportGraphml(*snap);
  EXPECT_NE(xml.find("Helix &lt;&amp;&gt; &quot;Dynamics&quot;"), std::string::npos);
  EXPECT_NE(xml.find("HAS_CHUNK"), std::string::npos);
  EXPECT_NE(xml.find("MENTIONS"), std::string::npos);
}

GraphBatch At(GraphBatch b, int64_t generation) {
  b.chunk.generation = generation;
  return b;
}

std::vector<std::string> EvidenceOf(GraphStore& g, const std::string& src, const std::string& dst) {
  auto e = g.GetEntity(src);
  if (!e.ok()) return {"<" + e.status().message() + ">"};
  for (const auto& n : e->neighbours) {
    if (n.direction == "out" && n.relation.dst == dst) return n.relation.evidence;
  }
  return {};
}

// Verifies the fence: a contribution from an older lease generation than the stored one is
// refused with kConflict and changes nothing.
TEST_P(GraphStoreContract, OlderGenerationIsRefused) {
  ASSERT_TRUE(g_->Merge({At(Batch("d1:0", 0), 7)}).ok());
  GraphBatch stale = At(Batch("d1:0", 0), 6);
  stale.entities.push_back({"person:eve", "Eve", "Person", "", 0});
  stale.relations = {{"person:eve", "organization:helix dynamics", "FOUNDED", {}, 0}};
  EXPECT_EQ(g_->Merge({stale}).code(), Code::kConflict);
  // A batch list with one stale batch writes none of them.
  EXPECT_EQ(g_->Merge({At(Batch("d1:1", 1), 9), stale}).code(), Code::kConflict);
  auto s = g_->Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->chunks, 1);
  EXPECT_EQ(s->entities, 2);
  EXPECT_EQ(s->relations, 1);
  EXPECT_EQ(g_->GetEntity("person:eve").status().code(), Code::kNotFound);
  // The same generation again is the same writer retrying: accepted, unchanged.
  ASSERT_TRUE(g_->Merge({At(Batch("d1:0", 0), 7)}).ok());
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:helix dynamics"), std::vector<std::string>{"d1:0"});
}

// Verifies a re-extracted chunk replaces its contribution: what the new answer no longer has
// disappears (a relation without evidence, an entity without mentions), it is not unioned.
TEST_P(GraphStoreContract, NewerGenerationReplacesTheChunksContribution) {
  ASSERT_TRUE(g_->Merge({At(Batch("d1:0", 0), 1)}).ok());
  GraphBatch second = At(Batch("d1:0", 0), 2);
  second.entities = {{"person:mara voss", "Mara Voss", "Person", "", 0},
                     {"organization:orbital labs", "Orbital Labs", "Organization", "", 0}};
  second.relations = {{"person:mara voss", "organization:orbital labs", "WORKS_FOR", {}, 0}};
  ASSERT_TRUE(g_->Merge({second}).ok());
  auto s = g_->Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->entities, 2);   // Helix Dynamics is gone, Orbital Labs came
  EXPECT_EQ(s->relations, 1);  // FOUNDED is gone
  EXPECT_EQ(g_->GetEntity("organization:helix dynamics").status().code(), Code::kNotFound);
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:orbital labs"), std::vector<std::string>{"d1:0"});
  auto mara = g_->GetEntity("person:mara voss");
  ASSERT_TRUE(mara.ok());
  EXPECT_EQ(mara->entity.mentions, 1);
  EXPECT_EQ(mara->entity.description, "founder");  // the first non-empty description stays
  auto snap = g_->Export();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->chunks.size(), 1u);
  GraphBatch third = At(second, 3);
  third.chunk.text = "Mara Voss works for Orbital Labs.";
  ASSERT_TRUE(g_->Merge({third}).ok());
  snap = g_->Export();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->chunks.size(), 1u);
  EXPECT_EQ(snap->chunks[0].text, "Mara Voss works for Orbital Labs.") << "the chunk's text is the newer writer's";
}

// Verifies replacing one chunk's contribution leaves other chunks' evidence alone: a shared
// relation survives with the other chunk's evidence and its weight drops by one.
TEST_P(GraphStoreContract, ReplacingOneChunkKeepsOtherChunksEvidence) {
  ASSERT_TRUE(g_->Merge({At(Batch("d1:0", 0), 1), At(Batch("d1:1", 1), 2)}).ok());
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:helix dynamics"),
            (std::vector<std::string>{"d1:0", "d1:1"}));
  GraphBatch bare = At(Batch("d1:0", 0), 3);
  bare.entities.resize(1);  // only Mara Voss, no relation
  bare.relations.clear();
  ASSERT_TRUE(g_->Merge({bare}).ok());
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:helix dynamics"), std::vector<std::string>{"d1:1"});
  auto helix = g_->GetEntity("organization:helix dynamics");
  ASSERT_TRUE(helix.ok());
  EXPECT_EQ(helix->entity.mentions, 1);
  auto snap = g_->Export();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->relations.size(), 1u);
  EXPECT_EQ(snap->relations[0].weight, 1);
}

// The weight of the one relation, as GetEntity and Export both report it (they must agree).
int64_t WeightOf(GraphStore& g) {
  auto snap = g.Export();
  EXPECT_TRUE(snap.ok());
  if (!snap.ok() || snap->relations.size() != 1) return -1;
  auto e = g.GetEntity(snap->relations[0].src);
  EXPECT_TRUE(e.ok());
  EXPECT_EQ(e->neighbours.at(0).relation.weight, snap->relations[0].weight);
  EXPECT_EQ(e->neighbours.at(0).relation.evidence, snap->relations[0].evidence);
  return snap->relations[0].weight;
}

GraphBatch InSentences(GraphBatch b, std::vector<std::string> sentences) {
  b.relations[0].sentences = std::move(sentences);
  return b;
}

// Verifies one sentence read in two overlapping chunks counts once: weight 1, both chunks in the evidence.
TEST_P(GraphStoreContract, OverlapDoesNotDoubleCount) {
  ASSERT_TRUE(g_->Merge({InSentences(Batch("d1:0", 0), {"d1@40"}), InSentences(Batch("d1:1", 1), {"d1@40"})}).ok());
  EXPECT_EQ(WeightOf(*g_), 1);
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:helix dynamics"),
            (std::vector<std::string>{"d1:0", "d1:1"}));
  ASSERT_TRUE(g_->Merge({InSentences(Batch("d1:1", 1), {"d1@40"})}).ok());  // idempotent
  EXPECT_EQ(WeightOf(*g_), 1);
}

// Verifies two different sentences count twice, whether one chunk or two state them, and a relation
// without sentence ids counts its chunk as one sentence.
TEST_P(GraphStoreContract, TwoSentencesCountTwice) {
  ASSERT_TRUE(g_->Merge({InSentences(Batch("d1:0", 0), {"d1@0", "d1@40"})}).ok());
  EXPECT_EQ(WeightOf(*g_), 2);
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:helix dynamics"), std::vector<std::string>{"d1:0"});
  ASSERT_TRUE(g_->Merge({InSentences(Batch("d1:1", 1), {"d1@90"})}).ok());
  EXPECT_EQ(WeightOf(*g_), 3);
  ASSERT_TRUE(g_->Merge({Batch("d1:2", 2)}).ok());  // no sentence ids: the chunk stands for one
  EXPECT_EQ(WeightOf(*g_), 4);
}

// Verifies replacing one chunk's contribution removes only its own evidence rows: the sentence the other
// chunk also read keeps its weight through that chunk, and goes with it.
TEST_P(GraphStoreContract, ReplacingAChunkKeepsTheOtherChunksSentences) {
  ASSERT_TRUE(g_->Merge({At(InSentences(Batch("d1:0", 0), {"d1@0", "d1@40"}), 1),
                         At(InSentences(Batch("d1:1", 1), {"d1@40"}), 2)}).ok());
  EXPECT_EQ(WeightOf(*g_), 2);
  GraphBatch bare = At(Batch("d1:0", 0), 3);
  bare.relations.clear();
  ASSERT_TRUE(g_->Merge({bare}).ok());
  EXPECT_EQ(WeightOf(*g_), 1);  // d1@40, still read by d1:1
  EXPECT_EQ(EvidenceOf(*g_, "person:mara voss", "organization:helix dynamics"), std::vector<std::string>{"d1:1"});
  bare = At(Batch("d1:1", 1), 4);
  bare.relations.clear();
  ASSERT_TRUE(g_->Merge({bare}).ok());
  EXPECT_EQ(g_->Stats()->relations, 0);
}

// Collects a streamed export into a snapshot; `on_entity` runs at the first entity.
class Collect final : public GraphSink {
 public:
  Status Document(const DocumentRec& d) override {
    order += "D";
    s.documents.push_back(d);
    return Status::Ok();
  }
  Status Chunk(const ChunkRec& c) override {
    order += "C";
    s.chunks.push_back(c);
    return Status::Ok();
  }
  Status Entity(const EntityRec& e) override {
    order += "E";
    if (on_entity && s.entities.empty()) on_entity();
    s.entities.push_back(e);
    return stop_at_entity ? Status::Unavailable("sink gave up") : Status::Ok();
  }
  Status Mention(const std::string& c, const std::string& e) override {
    order += "M";
    s.mentions.emplace_back(c, e);
    return Status::Ok();
  }
  Status Relation(const RelationRec& r) override {
    order += "R";
    s.relations.push_back(r);
    return Status::Ok();
  }
  GraphSnapshot s;
  std::string order;
  std::function<void()> on_entity;
  bool stop_at_entity = false;
};

void ExpectSameSnapshot(const GraphSnapshot& a, const GraphSnapshot& b) {
  ASSERT_EQ(a.documents.size(), b.documents.size());
  for (size_t i = 0; i < a.documents.size(); ++i) {
    EXPECT_EQ(a.documents[i].id, b.documents[i].id);
    EXPECT_EQ(a.documents[i].title, b.documents[i].title);
    EXPECT_EQ(a.documents[i].source, b.documents[i].source);
  }
  ASSERT_EQ(a.chunks.size(), b.chunks.size());
  for (size_t i = 0; i < a.chunks.size(); ++i) {
    EXPECT_EQ(a.chunks[i].id, b.chunks[i].id);
    EXPECT_EQ(a.chunks[i].doc_id, b.chunks[i].doc_id);
    EXPECT_EQ(a.chunks[i].idx, b.chunks[i].idx);
    EXPECT_EQ(a.chunks[i].text, b.chunks[i].text);
  }
  ASSERT_EQ(a.entities.size(), b.entities.size());
  for (size_t i = 0; i < a.entities.size(); ++i) {
    EXPECT_EQ(a.entities[i].key, b.entities[i].key);
    EXPECT_EQ(a.entities[i].name, b.entities[i].name);
    EXPECT_EQ(a.entities[i].type, b.entities[i].type);
    EXPECT_EQ(a.entities[i].description, b.entities[i].description);
    EXPECT_EQ(a.entities[i].mentions, b.entities[i].mentions);
  }
  EXPECT_EQ(a.mentions, b.mentions);
  ASSERT_EQ(a.relations.size(), b.relations.size());
  for (size_t i = 0; i < a.relations.size(); ++i) {
    EXPECT_EQ(a.relations[i].src, b.relations[i].src);
    EXPECT_EQ(a.relations[i].dst, b.relations[i].dst);
    EXPECT_EQ(a.relations[i].type, b.relations[i].type);
    EXPECT_EQ(a.relations[i].evidence, b.relations[i].evidence);
    EXPECT_EQ(a.relations[i].weight, b.relations[i].weight);
  }
}

// A graph of two documents, several chunks, shared entities and relations with evidence.
void MergeSample(GraphStore& g) {
  std::vector<GraphBatch> batches;
  for (int d = 2; d >= 1; --d) {
    for (int i = 2; i >= 0; --i) {
      GraphBatch b = Batch("d" + std::to_string(d) + ":" + std::to_string(i), i);
      b.doc = {"d" + std::to_string(d), "Doc " + std::to_string(d), "src" + std::to_string(d)};
      b.chunk.doc_id = b.doc.id;
      b.entities.push_back({"person:p" + std::to_string(i), "P" + std::to_string(i), "Person", "", 0});
      b.relations.push_back({"person:p" + std::to_string(i), "organization:helix dynamics", "WORKS_AT", {}, 0});
      batches.push_back(b);
    }
  }
  ASSERT_TRUE(g.Merge(batches).ok());
}

// Verifies the streamed export hands over the same records as Export(), in the same order,
// section after section, and that both serialisations match the in-memory ones byte for byte.
TEST_P(GraphStoreContract, ExportToStreamsWhatExportReturns) {
  MergeSample(*g_);
  auto snap = g_->Export();
  ASSERT_TRUE(snap.ok());
  Collect c;
  ASSERT_TRUE(g_->ExportTo(c).ok());
  ExpectSameSnapshot(c.s, *snap);
  EXPECT_EQ(c.order, std::string(2, 'D') + std::string(6, 'C') + std::string(5, 'E') + std::string(6 * 3, 'M') +
                         std::string(4, 'R'));
  std::string json, xml;
  size_t pieces = 0;
  ASSERT_TRUE(StreamJson(*g_, [&](std::string_view p) { json += p; ++pieces; return true; }).ok());
  ASSERT_TRUE(StreamGraphml(*g_, [&](std::string_view p) { xml += p; return true; }).ok());
  EXPECT_EQ(json, ExportJson(*snap));
  EXPECT_EQ(xml, ExportGraphml(*snap));
  EXPECT_GE(pieces, 1u);
}

// Verifies GetChunks returns the stored chunks among the ids with their document, index and
// text, ordered by (document, index), once each, skipping unknown ids; no ids give none without
// error; more than kGetChunksMax ids are refused whole with kInvalidArgument.
TEST_P(GraphStoreContract, GetChunksReturnsTheTextOfKnownIds) {
  MergeSample(*g_);
  GraphBatch own = Batch("d1:10", 10);  // sorts before d1:2 by id, after it by index
  own.chunk.text = "Helix Dynamics hired P10.\nZo\u00eb left \u674e\u660e\u3002";
  ASSERT_TRUE(g_->Merge({own}).ok());
  auto got = g_->GetChunks({"d2:1", "nope", "d1:10", "d1:0", "d2:1", "d1:2"});
  ASSERT_TRUE(got.ok()) << got.status().message();
  std::vector<std::string> order;
  for (const ChunkRec& c : *got) order.push_back(c.id + "@" + c.doc_id + "#" + std::to_string(c.idx));
  EXPECT_EQ(order, (std::vector<std::string>{"d1:0@d1#0", "d1:2@d1#2", "d1:10@d1#10", "d2:1@d2#1"}));
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0].text, "Mara Voss founded Helix Dynamics.");
  EXPECT_EQ((*got)[2].text, "Helix Dynamics hired P10.\nZo\u00eb left \u674e\u660e\u3002");
  auto none = g_->GetChunks({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto unknown = g_->GetChunks({"x", "y"});
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->empty());
  std::vector<std::string> many{"d2:2", "d1:1"};
  while (many.size() < kGetChunksMax) many.push_back("missing:" + std::to_string(many.size()));
  auto at_cap = g_->GetChunks(many);
  ASSERT_TRUE(at_cap.ok()) << at_cap.status().message();
  ASSERT_EQ(at_cap->size(), 2u);
  EXPECT_EQ((*at_cap)[0].id, "d1:1");
  EXPECT_EQ((*at_cap)[1].id, "d2:2");
  many.push_back("d1:0");
  EXPECT_EQ(g_->GetChunks(many).status().code(), Code::kInvalidArgument);
}

// Verifies a sink error ends the export and is returned, and a reader that went away ends
// a serialisation with kUnavailable.
TEST_P(GraphStoreContract, ExportToStopsOnSinkError) {
  MergeSample(*g_);
  Collect c;
  c.stop_at_entity = true;
  Status s = g_->ExportTo(c);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_EQ(c.s.entities.size(), 1u);
  EXPECT_TRUE(c.s.relations.empty());
  EXPECT_EQ(StreamJson(*g_, [](std::string_view) { return false; }).code(), Code::kUnavailable);
}

// Verifies a slow export sink neither blocks other callers of the store (a Merge and a read
// finish while the sink is stalled mid-export) nor sees their writes: the export is one
// consistent snapshot.
TEST_P(GraphStoreContract, ExportToDoesNotBlockOtherCallers) {
  MergeSample(*g_);
  auto before = g_->Export();
  ASSERT_TRUE(before.ok());
  Collect c;
  bool other_finished = false;
  std::future<bool> other;  // outlives the sink call: a blocked Merge must not hang the test
  c.on_entity = [&] {
    other = std::async(std::launch::async, [&] {
      GraphBatch b = Batch("d9:0", 0);
      b.doc = {"d9", "Late", "late.txt"};
      b.chunk.doc_id = "d9";
      b.entities.push_back({"person:late", "Late", "Person", "", 0});
      b.relations.push_back({"person:late", "organization:helix dynamics", "WORKS_AT", {}, 0});
      Status m = g_->Merge({b});
      auto st = g_->Stats();
      return m.ok() && st.ok() && st->documents == 3;
    });
    // Generous: this is a check for blocking, not for speed.
    other_finished = other.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  };
  ASSERT_TRUE(g_->ExportTo(c).ok());
  EXPECT_TRUE(other_finished) << "a stalled export sink blocked Merge/Stats on the same store";
  ASSERT_TRUE(other.valid());
  EXPECT_TRUE(other.get()) << "the concurrent Merge and Stats succeed";
  ExpectSameSnapshot(c.s, *before);
  auto after = g_->Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->documents, 3);
}

// Verifies Connections(), what a worker reports as kg_store_connections: none for the embedded
// store; for a server store its backend, the connections open (at least the one a merge used,
// kept idle) and none in use once the merge is over.
TEST_P(GraphStoreContract, ConnectionsReportThePool) {
  ASSERT_TRUE(g_->Merge({Batch("c1", 0)}).ok());
  std::optional<PoolUsage> c = g_->Connections();
  if (GetParam().name == "sqlite") {
    EXPECT_FALSE(c.has_value());
    return;
  }
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->backend, GetParam().name);
  EXPECT_GE(c->open, 1);
  EXPECT_EQ(c->in_use, 0);
}

// The same source builds two binaries: graph_store_contract_test (SQLite, MySQL) and, with
// KG_CONTRACT_NEO4J, neo4j_graph_contract_test, registered apart because the shared Neo4j has
// one database its tests take turns on (ctest RESOURCE_LOCK neo4j); each test starts on an
// empty graph.
#ifdef KG_CONTRACT_NEO4J
INSTANTIATE_TEST_SUITE_P(Backends, GraphStoreContract,
                         ::testing::Values(Backend{"neo4j",
                                                   [](const std::string&) -> std::unique_ptr<GraphStore> {
                                                     testing::ClearNeo4j(testing::SharedNeo4j());
                                                     auto g = OpenNeo4jGraphStore(testing::Neo4jAt(testing::SharedNeo4j()));
                                                     EXPECT_TRUE(g.ok()) << g.status().message();
                                                     return g.ok() ? std::move(g).value() : nullptr;
                                                   }}),
                         [](const auto& info) { return info.param.name; });
#else
INSTANTIATE_TEST_SUITE_P(Backends, GraphStoreContract,
                         ::testing::Values(Backend{"sqlite",
                                                   [](const std::string& dir) {
                                                     auto g = OpenSqliteGraphStore(dir + "/graph.db");
                                                     EXPECT_TRUE(g.ok()) << g.status().message();
                                                     return std::move(g).value();
                                                   }},
                                           Backend{"mysql",
                                                   [](const std::string&) {
                                                     // A database of its own on the run's shared server.
                                                     auto g = OpenMysqlGraphStore(
                                                         testing::MysqlAt(testing::SharedMariaDb(), testing::UniqueName("graph")));
                                                     EXPECT_TRUE(g.ok()) << g.status().message();
                                                     return std::move(g).value();
                                                   }}),
                         [](const auto& info) { return info.param.name; });

#endif

}  // namespace
}  // namespace kg
