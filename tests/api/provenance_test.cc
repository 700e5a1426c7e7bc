// The sentence of a chunk that states a relation: names match as whole names, not inside words,
// except in scripts written without spaces.
#include "api/provenance.h"

#include <gtest/gtest.h>

namespace kg {
namespace {

// Verifies a name matches only where it is not part of a longer word: "Ann" not in "Annabel",
// "AI" not in "maintain", whatever the case or the punctuation around it, and a later whole
// occurrence in the same sentence still counts.
TEST(Provenance, NamesMatchOnWordBoundaries) {
  EXPECT_FALSE(NamesAsWord("annabel met bob.", "ann"));
  EXPECT_FALSE(NamesAsWord("they maintain it.", "ai"));
  EXPECT_FALSE(NamesAsWord("x2ai", "ai"));
  EXPECT_FALSE(NamesAsWord("zoëlla", "zoë")) << "a letter outside ASCII joins the word too";
  EXPECT_TRUE(NamesAsWord("ann met bob.", "ann"));
  EXPECT_TRUE(NamesAsWord("(ai) and \"ai\"", "ai"));
  EXPECT_TRUE(NamesAsWord("maintain the ai", "ai")) << "a later whole occurrence";
  EXPECT_TRUE(NamesAsWord("zoë, then", "zoë"));
  EXPECT_FALSE(NamesAsWord("anything", ""));
  EXPECT_FALSE(SentenceNaming("Annabel founded Helix.", "Ann", "Helix").has_value());
  EXPECT_FALSE(SentenceNaming("Engineers maintain Helix. Nothing else.", "AI", "Helix").has_value());
  EXPECT_EQ(SentenceNaming("Annabel left. Then ANN founded Helix, quickly.", "Ann", "Helix").value_or(""),
            "Then ANN founded Helix, quickly.");
}

// Verifies text without spaces (Chinese, Japanese) still matches by substring, also where a Latin
// name sits between Han characters, while Latin text around it keeps its boundaries.
TEST(Provenance, SpacelessScriptsMatchBySubstring) {
  EXPECT_EQ(SentenceNaming("张三和李四是朋友。王五不在。", "张三", "李四").value_or(""), "张三和李四是朋友。");
  EXPECT_TRUE(NamesAsWord("使用ai技术", "ai"));
  EXPECT_TRUE(NamesAsWord("東京タワーに行った", "東京"));
  EXPECT_TRUE(NamesAsWord("張三丰", "張三")) << "substring matching stays for Han";
  EXPECT_FALSE(SentenceNaming("李明和Annabel见面。", "李明", "Ann").has_value())
      << "Ann's edge inside a Latin word";
}

// Verifies the folded sentences of a chunk, folded once, give the same answer as the one-shot
// form for several name pairs, and keep views of the original sentence text.
TEST(Provenance, FoldedSentencesServeManyLookups) {
  const std::string text = "Helix Dynamics opened a lab. Later, MARA  VOSS founded helix dynamics. Ann met Bob.";
  const std::vector<FoldedSentence> folded = FoldSentences(text);
  ASSERT_EQ(folded.size(), 3u);
  EXPECT_EQ(folded[1].text, "Later, MARA  VOSS founded helix dynamics.");
  EXPECT_EQ(folded[1].folded, "later, mara voss founded helix dynamics.");
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"Mara Voss", "Helix Dynamics"}, {"Ann", "Bob"}, {"Ann", "Helix Dynamics"}, {"Lab", "Helix"}}) {
    EXPECT_EQ(SentenceNaming(folded, a, b), SentenceNaming(text, a, b)) << a << " / " << b;
  }
  EXPECT_EQ(SentenceNaming(folded, "Ann", "Bob").value_or(""), "Ann met Bob.");
}

}  // namespace
}  // namespace kg
