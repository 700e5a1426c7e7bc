// The scorer behind `kgflow eval`: gold files, hand-computed P/R/F1, and predictions made the
// way a worker makes them.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "eval/command.h"
#include "eval/gold.h"
#include "eval/predict.h"
#include "eval/report.h"
#include "eval/score.h"
#include "testing/testing.h"

namespace kg::eval {
namespace {

using nlohmann::json;

GoldItem Item(const std::string& id, const std::string& lang, std::vector<GoldEntity> e,
              std::vector<GoldRelation> r) {
  return GoldItem{1, id, lang, "some text", std::move(e), std::move(r)};
}

void ExpectCounts(const Counts& c, int64_t tp, int64_t predicted, int64_t gold) {
  EXPECT_EQ(c.tp, tp);
  EXPECT_EQ(c.predicted, predicted);
  EXPECT_EQ(c.gold, gold);
}

// Verifies entities: an alias matches its gold entity, a second entity for one gold entity
// and a wrong type are false positives, and untyped matching ignores the type; P/R/F1 are
// the hand-computed values.
TEST(Score, EntitiesWithAliasesDuplicatesAndTypes) {
  GoldItem gold = Item("a", "en",
                       {{"Kestrel Labs", "Organization", {"Kestrel"}},
                        {"Ana Ruiz", "Person", {"Ruiz"}},
                        {"Porto Vale", "Location", {}}},
                       {});
  Prediction p;
  p.entities = {{"Kestrel Labs", "Organization"}, {"KESTREL", "Organization"}, {"Ruiz", "Person"},
                {"Porto  Vale", "Person"},        {"Monday Group", "Organization"}};
  ItemResult r = ScoreItem(gold, p);
  // Typed: Kestrel Labs and Ruiz match; KESTREL is a second Kestrel Labs; Porto Vale has the
  // wrong type; Monday Group is not in the gold.
  ExpectCounts(r.scores.entities_typed, 2, 5, 3);
  EXPECT_DOUBLE_EQ(*r.scores.entities_typed.Precision(), 0.4);
  EXPECT_DOUBLE_EQ(*r.scores.entities_typed.Recall(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(*r.scores.entities_typed.F1(), 0.5);
  // Untyped: Porto Vale now matches; KESTREL is still a second entity.
  ExpectCounts(r.scores.entities_untyped, 3, 5, 3);
  EXPECT_DOUBLE_EQ(*r.scores.entities_untyped.Precision(), 0.6);
  EXPECT_DOUBLE_EQ(*r.scores.entities_untyped.Recall(), 1.0);
  EXPECT_DOUBLE_EQ(*r.scores.entities_untyped.F1(), 0.75);

  EXPECT_EQ(r.misses.missed_entities, std::vector<std::string>{"Porto Vale (Location)"});
  ASSERT_EQ(r.misses.spurious_entities.size(), 3u);
  EXPECT_EQ(r.misses.spurious_entities[0], "Porto  Vale (Person): Porto Vale is Location");
  EXPECT_EQ(r.misses.spurious_entities[1], "KESTREL (Organization): a second entity for Kestrel Labs");
  EXPECT_EQ(r.misses.spurious_entities[2], "Monday Group (Organization)");
}

// Verifies one name predicted with two types is one typed hit and one false positive, but a
// single untyped prediction; and duplicates of the same (name, type) count once.
TEST(Score, SameNameTwoTypes) {
  GoldItem gold = Item("a", "en", {{"Ana Ruiz", "Person", {}}}, {});
  Prediction p;
  p.entities = {{"Ana Ruiz", "Person"}, {"ana ruiz", "person"}, {"Ana Ruiz", "Organization"}};
  ItemResult r = ScoreItem(gold, p);
  ExpectCounts(r.scores.entities_typed, 1, 2, 1);
  ExpectCounts(r.scores.entities_untyped, 1, 1, 1);
}

// Verifies relations: ends resolve through aliases, FOUNDER_OF is FOUNDED, PARTNER_OF is
// symmetric, duplicates fold, a reversed relation is wrong typed but right untyped.
TEST(Score, Relations) {
  GoldItem gold = Item("a", "en",
                       {{"Kestrel Labs", "Organization", {"Kestrel"}},
                        {"Ana Ruiz", "Person", {"Ruiz"}},
                        {"Porto Vale", "Location", {}},
                        {"Monday Group", "Organization", {}}},
                       {{"Ana Ruiz", "CEO_OF", "Kestrel Labs"},
                        {"Ana Ruiz", "FOUNDER_OF", "Kestrel Labs"},
                        {"Kestrel", "LOCATED_IN", "Porto Vale"},
                        {"Kestrel Labs", "PARTNER_OF", "Monday Group"}});
  Prediction p;
  p.relations = {{"Ruiz", "CEO_OF", "Kestrel"},
                 {"Ana Ruiz", "FOUNDED", "Kestrel Labs"},
                 {"Ana Ruiz", "FOUNDER_OF", "Kestrel"},
                 {"Porto Vale", "LOCATED_IN", "Kestrel Labs"},
                 {"Monday Group", "partner of", "Kestrel Labs"},
                 {"Ana Ruiz", "WORKS_AT", "Nova Bank"}};
  ItemResult r = ScoreItem(gold, p);
  ExpectCounts(r.scores.relations_typed, 3, 5, 4);
  EXPECT_DOUBLE_EQ(*r.scores.relations_typed.Precision(), 0.6);
  EXPECT_DOUBLE_EQ(*r.scores.relations_typed.Recall(), 0.75);
  EXPECT_DOUBLE_EQ(*r.scores.relations_typed.F1(), 6.0 / 9.0);
  // Pairs: {Ana, Kestrel}, {Kestrel, Porto}, {Kestrel, Monday} in the gold; + {Ana, Nova Bank}.
  ExpectCounts(r.scores.relations_untyped, 3, 4, 3);
  EXPECT_DOUBLE_EQ(*r.scores.relations_untyped.F1(), 6.0 / 7.0);
  EXPECT_EQ(r.misses.missed_relations, std::vector<std::string>{"Kestrel Labs LOCATED_IN Porto Vale"});
  EXPECT_EQ(r.misses.spurious_relations,
            (std::vector<std::string>{"Ana Ruiz WORKS_AT Nova Bank", "Porto Vale LOCATED_IN Kestrel Labs"}));
}

// Verifies an item with nothing to find: predictions are all false positives (P 0, R and F1
// undefined or 0), and with no prediction either every ratio is undefined, not 0 or 1.
TEST(Score, EmptyGold) {
  GoldItem gold = Item("a", "en", {}, {});
  Prediction p;
  p.entities = {{"Analysts", "Person"}};
  ItemResult r = ScoreItem(gold, p);
  ExpectCounts(r.scores.entities_typed, 0, 1, 0);
  EXPECT_DOUBLE_EQ(*r.scores.entities_typed.Precision(), 0.0);
  EXPECT_FALSE(r.scores.entities_typed.Recall().has_value());
  EXPECT_DOUBLE_EQ(*r.scores.entities_typed.F1(), 0.0);
  ItemResult none = ScoreItem(gold, Prediction{});
  EXPECT_FALSE(none.scores.entities_typed.Precision().has_value());
  EXPECT_FALSE(none.scores.entities_typed.F1().has_value());
  EXPECT_FALSE(none.scores.relations_untyped.F1().has_value());
  EXPECT_EQ(none.misses.size(), 0u);
}

// Verifies the totals are micro-averaged (counts add up, then ratios) per language and
// overall, not a mean of per-item ratios.
TEST(Score, SummarizeIsMicroAveraged) {
  GoldItem one = Item("a", "en", {{"Ana Ruiz", "Person", {}}}, {});
  Prediction hit;
  hit.entities = {{"Ana Ruiz", "Person"}};
  Prediction three_wrong;
  three_wrong.entities = {{"Bo Li", "Person"}, {"Cy Ng", "Person"}, {"Di Wu", "Person"}};
  GoldItem zh = Item("c", "zh", {{"李明", "Person", {}}}, {});
  zh.id = "c";
  Prediction zh_hit;
  zh_hit.entities = {{"李明", "Person"}};
  GoldItem two = one;
  two.id = "b";
  Report rep = Summarize({ScoreItem(one, hit), ScoreItem(two, three_wrong), ScoreItem(zh, zh_hit)});
  ExpectCounts(rep.by_lang.at("en").entities_typed, 1, 4, 2);
  EXPECT_DOUBLE_EQ(*rep.by_lang.at("en").entities_typed.Precision(), 0.25);  // the mean of 1 and 0 is 0.5
  ExpectCounts(rep.by_lang.at("zh").entities_typed, 1, 1, 1);
  ExpectCounts(rep.overall.entities_typed, 2, 5, 3);
  EXPECT_EQ(rep.items_by_lang.at("en"), 2);
  EXPECT_EQ(rep.items_by_lang.at("zh"), 1);

  json j = json::parse(FormatJson({"f.jsonl", "builtin"}, rep));
  EXPECT_EQ(j["overall"]["items"], 3);
  EXPECT_DOUBLE_EQ(j["overall"]["entities_typed"]["precision"].get<double>(), 0.4);
  EXPECT_TRUE(j["overall"]["relations_typed"]["precision"].is_null());
  EXPECT_EQ(j["items"][1]["spurious_entities"].size(), 3u);
  std::string table = FormatTable({"f.jsonl", "builtin"}, rep, 2);
  EXPECT_NE(table.find("overall  entities typed      0.400  0.667  0.500   2/5/3"), std::string::npos) << table;
  EXPECT_NE(table.find("the first 2 shown"), std::string::npos) << table;
}

TEST(Score, CanonicalRelationType) {
  // Verifies relation types fold like BuildBatch folds them, and FOUNDER_OF reads as FOUNDED.
  EXPECT_EQ(CanonicalRelationType("founder of"), "FOUNDED");
  EXPECT_EQ(CanonicalRelationType("FOUNDER_OF"), "FOUNDED");
  EXPECT_EQ(CanonicalRelationType("ceo_of"), "CEO_OF");
}

// Verifies a valid file parses, blank lines are skipped and line numbers are the file's.
TEST(Gold, ParsesItems) {
  std::string f =
      R"({"id":"x1","lang":"en","text":"Ana Ruiz runs Kestrel Labs.","entities":[{"name":"Ana Ruiz","type":"Person"},{"name":"Kestrel Labs","type":"Organization","aliases":["Kestrel"]}],"relations":[{"source":"Ana Ruiz","type":"CEO_OF","target":"Kestrel"}]})"
      "\n\n"
      R"({"id":"x2","lang":"zh","text":"没有实体。","entities":[],"relations":[]})"
      "\n";
  auto items = ParseGold(f);
  ASSERT_TRUE(items.ok()) << items.status().message();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].line, 1);
  EXPECT_EQ((*items)[1].line, 3);
  EXPECT_EQ((*items)[0].entities[1].aliases, std::vector<std::string>{"Kestrel"});
  EXPECT_EQ((*items)[0].relations[0].target, "Kestrel");
}

// Verifies each kind of bad line is refused with its line number and the reason.
TEST(Gold, BadLinesNameLineAndReason) {
  const std::string good = R"({"id":"g","lang":"en","text":"t","entities":[],"relations":[]})";
  const std::pair<std::string, std::string> cases[] = {
      {R"({"id":"b","lang":"en","text":"t","entities":[],"relations":[])", "not valid JSON"},
      {R"(["not", "an", "object"])", "expected a JSON object"},
      {R"({"id":"b","lang":"en","entities":[],"relations":[]})", "missing \"text\""},
      {R"({"id":"b","lang":"en","text":"  ","entities":[],"relations":[]})", "\"text\" is empty"},
      {R"({"id":"b","lang":"fr","text":"t","entities":[],"relations":[]})", "expected \"en\" or \"zh\""},
      {R"({"id":"b","lang":"en","text":"t","entities":[]})", "missing \"relations\""},
      {R"({"id":"b","lang":"en","text":"t","entities":{},"relations":[]})", "\"entities\" must be a list"},
      {R"({"id":"b","lang":"en","text":"t","entities":[],"relations":[],"relation":[]})", "unknown key \"relation\""},
      {R"({"id":"g","lang":"en","text":"t","entities":[],"relations":[]})", "id \"g\" is used twice"},
      {R"({"id":"b","lang":"en","text":"t","entities":[{"name":"A B"}],"relations":[]})",
       "entities[0]: missing \"type\""},
      {R"({"id":"b","lang":"en","text":"t","entities":[{"name":"A B","type":"Person","aliases":"B"}],"relations":[]})",
       "\"aliases\" must be a list"},
      {R"({"id":"b","lang":"en","text":"t","entities":[{"name":"A B","type":"Person","aliases":["X"]},{"name":"x","type":"Organization"}],"relations":[]})",
       "entities[1]: \"x\" also names entity \"A B\""},
      {R"({"id":"b","lang":"en","text":"t","entities":[{"name":"A B","type":"Person"}],"relations":[{"source":"A B","type":"CEO_OF","target":"Q"}]})",
       "relations[0]: \"Q\" is not among the item's entities"},
      {R"({"id":"b","lang":"en","text":"t","entities":[{"name":"A B","type":"Person","aliases":["B"]}],"relations":[{"source":"A B","type":"CEO_OF","target":"B"}]})",
       "source and target are the same entity"},
      {R"({"id":"b","lang":"en","text":"t","entities":[],"relations":[{"source":"a","type":"X"}]})",
       "relations[0]: missing \"target\""},
      {std::string("{\"id\":\"b\",\"lang\":\"en\",\"text\":\"t\xff\xfe\",\"entities\":[],\"relations\":[]}"),
       "line 2:"},
  };
  for (const auto& [line, reason] : cases) {
    auto r = ParseGold(good + "\n" + line + "\n");
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("line 2: ", 0), 0u) << r.status().message();
    EXPECT_NE(r.status().message().find(reason), std::string::npos) << r.status().message();
  }
  auto empty = ParseGold("\n  \n");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no items"), std::string::npos);
}

// A provider answering from a table, or failing, to drive PredictGraph.
class FakeProvider final : public Provider {
 public:
  std::function<Result<Extraction>(const std::string&)> answer;
  std::vector<std::string> seen;
  void Extract(const std::string& text, Done done) override {
    seen.push_back(text);
    auto a = answer(text);
    ProviderReply r;
    if (a.ok()) r.extraction = std::move(a).value(); else r.status = a.status();
    done(std::move(r));
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "fake";
};

// Verifies the prediction is what the graph holds: the text is chunked with the given options,
// every chunk is extracted, and keys fold across chunks ("ACME  Labs" and "acme labs" are one
// entity; a relation end the provider did not list is added).
TEST(Predict, ChunksAndFoldsLikeTheGraph) {
  testing::TempDir dir;
  FakeProvider f;
  f.answer = [](const std::string& text) -> Result<Extraction> {
    Extraction x;
    if (text.find("First") != std::string::npos) x.entities.push_back({"ACME  Labs", "Organization", ""});
    if (text.find("Second") != std::string::npos) {
      x.entities.push_back({"acme labs", "Organization", ""});
      x.relations.push_back({"Ana Ruiz", "Person", "ACME Labs", "Organization", "ceo of"});
    }
    return x;
  };
  std::string text = "First sentence about a lab. " + std::string(60, 'x') + ". Second sentence about it.";
  auto p = PredictGraph(f, text, ChunkOptions{40, 0}, dir.path());
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_GE(f.seen.size(), 3u);
  ASSERT_EQ(p->entities.size(), 2u);
  ASSERT_EQ(p->relations.size(), 1u);
  EXPECT_EQ(p->relations[0].type, "CEO_OF");
  EXPECT_EQ(FoldName(p->relations[0].target), "acme labs");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the temporary graph is removed";
}

// Verifies a provider failure ends the evaluation with the provider's code, naming the item's
// line and id.
TEST(Predict, ProviderFailureNamesTheItem) {
  FakeProvider f;
  f.answer = [](const std::string& text) -> Result<Extraction> {
    if (text.find("boom") != std::string::npos) return Status::Unavailable("upstream 503");
    return Extraction{};
  };
  std::vector<GoldItem> items = {Item("ok", "en", {}, {}), Item("bad", "en", {}, {})};
  items[1].text = "This one goes boom.";
  items[1].line = 7;
  auto r = Evaluate(f, items, ChunkOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("line 7 (item bad)"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("upstream 503"), std::string::npos);
}

// Verifies the builtin provider is scored end to end in-process: a plain sentence gives a
// report with its entities found.
TEST(Predict, BuiltinEndToEnd) {
  auto provider = MakeProvider(ProviderConfig{});
  ASSERT_TRUE(provider.ok());
  GoldItem item = Item("b", "en", {{"Quillon Systems Inc.", "Organization", {"Quillon Systems"}}}, {});
  item.text = "Quillon Systems Inc. opened an office.";
  auto r = Evaluate(**provider, {item}, ChunkOptions{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->overall.entities_untyped.gold, 1);
  EXPECT_GE(r->overall.entities_untyped.predicted, 1);
}

}  // namespace
}  // namespace kg::eval
