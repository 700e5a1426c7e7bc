// Evidence per sentence, end to end: a document planned into overlapping chunks, each chunk
// extracted by the builtin provider, built into a batch and merged into a real SQLite graph.
#include <gtest/gtest.h>

#include "graph/graph_store.h"
#include "pipeline/document.h"
#include "provider/provider.h"
#include "testing/testing.h"

namespace kg {
namespace {

struct Built {
  std::unique_ptr<GraphStore> graph;
  std::vector<ChunkPayload> chunks;
};

// Plans `text`, extracts and merges every chunk as a worker would.
Built Build(const testing::TempDir& dir, const std::string& text, ChunkOptions options) {
  Built out;
  auto g = OpenSqliteGraphStore(dir.path() + "/graph.db");
  EXPECT_TRUE(g.ok()) << g.status().message();
  out.graph = std::move(g).value();
  TaskPlan plan = PlanTask("t1", "builtin", "", "Doc", "", text, options);
  std::vector<GraphBatch> batches;
  for (const ChunkItem& item : plan.items) {
    auto p = DecodePayload(item.payload);
    EXPECT_TRUE(p.ok());
    batches.push_back(BuildBatch(*p, BuiltinExtract(p->text)));
    out.chunks.push_back(*p);
  }
  EXPECT_TRUE(out.graph->Merge(batches).ok());
  return out;
}

int64_t Weight(GraphStore& g, const std::string& type) {
  auto snap = g.Export();
  EXPECT_TRUE(snap.ok());
  for (const auto& r : snap->relations) {
    if (r.type == type) return r.weight;
  }
  return 0;
}

const char* kFounding = "Mara Voss founded Helix Dynamics in 2014.";

// Verifies a relation stated in one sentence that falls in the overlap of two chunks weighs 1, with both
// chunks kept as its evidence (it weighed 2 when evidence was per chunk).
TEST(SentenceEvidence, OverlapCountsOnce) {
  std::string text =
      "The northern corridor grew quickly over the last decade. Warehouses opened along the coast. " +
      std::string(kFounding) +
      " The company builds warehouse robots for ports. Its engineers meet every week to review designs.";
  testing::TempDir dir;
  Built b = Build(dir, text, {120, 60});
  int holding = 0;
  for (const auto& c : b.chunks) holding += c.text.find(kFounding) != std::string::npos;
  ASSERT_EQ(holding, 2) << "the founding sentence must sit in the overlap of two chunks";
  EXPECT_EQ(Weight(*b.graph, "FOUNDED"), 1);
  auto e = b.graph->GetEntity("person:mara voss");
  ASSERT_TRUE(e.ok()) << e.status().message();
  bool found = false;
  for (const auto& n : e->neighbours) {
    if (n.relation.type != "FOUNDED") continue;
    found = true;
    EXPECT_EQ(n.relation.weight, 1);
    EXPECT_EQ(n.relation.evidence.size(), 2u);
  }
  EXPECT_TRUE(found);
}

// Verifies two sentences stating the same relation weigh 2, overlap or not.
TEST(SentenceEvidence, TwoSentencesCountTwice) {
  std::string text = std::string(kFounding) + " Analysts followed the robots closely for years. " + kFounding;
  testing::TempDir dir;
  Built one = Build(dir, text, {1000, 100});
  ASSERT_EQ(one.chunks.size(), 1u);
  EXPECT_EQ(Weight(*one.graph, "FOUNDED"), 2);
  testing::TempDir dir2;
  Built many = Build(dir2, text, {60, 50});
  ASSERT_GT(many.chunks.size(), 1u);
  EXPECT_EQ(Weight(*many.graph, "FOUNDED"), 2);
}

// Verifies BuildBatch places a relation in the sentence its quote comes from, else in the first sentence
// naming both ends, and falls back to the chunk (no sentence id) when neither is found or the payload is
// from an older kgflow without an offset.
TEST(SentenceEvidence, BuildBatchLocatesTheSentence) {
  ChunkPayload p{"d1", "T", "", "d1:3", "Helix Dynamics grew. Mara Voss founded Helix Dynamics. Voss left.", 3, 500};
  Extraction x;
  x.relations = {{"Mara Voss", "Person", "Helix Dynamics", "Organization", "FOUNDED"}};
  EXPECT_EQ(BuildBatch(p, x).relations.at(0).sentences, std::vector<std::string>{"d1@521"});
  x.relations[0].sentence = "Voss left.";  // a provider's quote wins
  EXPECT_EQ(BuildBatch(p, x).relations.at(0).sentences, std::vector<std::string>{"d1@555"});
  x.relations[0].sentence = "not in the chunk";
  EXPECT_EQ(BuildBatch(p, x).relations.at(0).sentences, std::vector<std::string>{"d1@521"});
  x.relations.push_back(x.relations[0]);  // reported twice, but only one sentence names both ends
  EXPECT_EQ(BuildBatch(p, x).relations.at(0).sentences, std::vector<std::string>{"d1@521"});
  x.relations.resize(1);
  x.relations[0].source = "Someone Else";
  EXPECT_TRUE(BuildBatch(p, x).relations.at(0).sentences.empty());
  x.relations[0] = {"Mara Voss", "Person", "Helix Dynamics", "Organization", "FOUNDED"};
  p.offset = -1;
  EXPECT_TRUE(BuildBatch(p, x).relations.at(0).sentences.empty());
}

// Verifies payloads carry the chunk's offset in the document, and a payload without one (queued by an
// older kgflow) still decodes, with the offset unknown.
TEST(SentenceEvidence, PayloadOffset) {
  std::string text = "First sentence here. Second sentence there. Third one.";
  TaskPlan plan = PlanTask("t", "builtin", "", "T", "", text, {25, 0});
  ASSERT_GT(plan.items.size(), 1u);
  for (const auto& item : plan.items) {
    auto p = DecodePayload(item.payload);
    ASSERT_TRUE(p.ok());
    ASSERT_GE(p->offset, 0);
    EXPECT_EQ(text.substr(static_cast<size_t>(p->offset), p->text.size()), p->text);
  }
  auto old = DecodePayload(R"({"doc_id":"d","title":"","source":"","chunk_id":"d:0","idx":0,"text":"x"})");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->offset, -1);
  EXPECT_FALSE(DecodePayload(R"({"doc_id":"d","title":"","source":"","chunk_id":"d:0","idx":0,"text":"x",)"
                             R"("offset":"x"})").ok());
}

}  // namespace
}  // namespace kg
