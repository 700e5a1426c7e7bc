#include <gtest/gtest.h>

#include <algorithm>

#include "provider/provider.h"
#include "testing/testing.h"

namespace kg {
namespace {

bool HasEntity(const Extraction& x, const std::string& name, const std::string& type) {
  return std::any_of(x.entities.begin(), x.entities.end(),
                     [&](const auto& e) { return e.name == name && e.type == type; });
}
bool HasRelation(const Extraction& x, const std::string& s, const std::string& type, const std::string& d) {
  return std::any_of(x.relations.begin(), x.relations.end(),
                     [&](const auto& r) { return r.source == s && r.type == type && r.target == d; });
}

// Verifies English names are typed by suffix, title and context, and relations found from the verbs between them.
TEST(Builtin, EnglishEntitiesAndRelations) {
  auto x = BuiltinExtract(
      "Mara Voss founded Helix Dynamics in 2014. Helix Dynamics is headquartered in Port Avalon. "
      "Voss is the chief executive of Helix Dynamics. Dr. Amara Okafor studied at the Linden Institute. "
      "Sable Robotics was acquired by Helix Dynamics. Quillon Capital invested in Helix Dynamics.");
  EXPECT_TRUE(HasEntity(x, "Mara Voss", "Person"));
  EXPECT_TRUE(HasEntity(x, "Helix Dynamics", "Organization"));
  EXPECT_TRUE(HasEntity(x, "Port Avalon", "Location"));
  EXPECT_TRUE(HasEntity(x, "Amara Okafor", "Person"));
  EXPECT_TRUE(HasRelation(x, "Mara Voss", "FOUNDED", "Helix Dynamics"));
  EXPECT_TRUE(HasRelation(x, "Helix Dynamics", "LOCATED_IN", "Port Avalon"));
  EXPECT_TRUE(HasRelation(x, "Mara Voss", "CEO_OF", "Helix Dynamics")) << "alias Voss -> Mara Voss";
  EXPECT_TRUE(HasRelation(x, "Amara Okafor", "STUDIED_AT", "Linden Institute"));
  EXPECT_TRUE(HasRelation(x, "Helix Dynamics", "ACQUIRED", "Sable Robotics")) << "passive voice";
  EXPECT_TRUE(HasRelation(x, "Quillon Capital", "INVESTED_IN", "Helix Dynamics"));
  EXPECT_FALSE(HasEntity(x, "Voss", "Person")) << "folded into Mara Voss";
}

// Verifies "X of Y" organisations, relative clauses and board membership.
TEST(Builtin, OrganisationHeadsClausesAndBoards) {
  auto x = BuiltinExtract(
      "Orla Brennan founded Tidewater Analytics. Professor Hana Sato, who studied at Kyoto University, advises "
      "Tidewater Analytics. Sato leads the Coastal Modelling Group at the University of Leeds. Brennan later joined "
      "the board of the Marine Data Trust.");
  EXPECT_TRUE(HasEntity(x, "University of Leeds", "Organization"));
  EXPECT_TRUE(HasRelation(x, "Hana Sato", "STUDIED_AT", "Kyoto University"));
  EXPECT_TRUE(HasRelation(x, "Hana Sato", "ADVISES", "Tidewater Analytics"));
  EXPECT_FALSE(HasRelation(x, "Kyoto University", "ADVISES", "Tidewater Analytics"));
  EXPECT_TRUE(HasRelation(x, "Orla Brennan", "MEMBER_OF", "Marine Data Trust"));
}

// Verifies Chinese organisations, people and places and their relations.
TEST(Builtin, ChineseEntitiesAndRelations) {
  auto x = BuiltinExtract("李明创立了星河科技公司。星河科技公司总部位于云港市。李明是星河科技公司的首席执行官。"
                          "蓝鲸物流公司被天穹集团收购。王小红毕业于东湖大学。");
  EXPECT_TRUE(HasEntity(x, "李明", "Person"));
  EXPECT_TRUE(HasEntity(x, "星河科技公司", "Organization"));
  EXPECT_TRUE(HasEntity(x, "云港市", "Location"));
  EXPECT_TRUE(HasRelation(x, "李明", "FOUNDED", "星河科技公司"));
  EXPECT_TRUE(HasRelation(x, "星河科技公司", "LOCATED_IN", "云港市"));
  EXPECT_TRUE(HasRelation(x, "李明", "CEO_OF", "星河科技公司"));
  EXPECT_TRUE(HasRelation(x, "天穹集团", "ACQUIRED", "蓝鲸物流公司"));
  EXPECT_TRUE(HasRelation(x, "王小红", "STUDIED_AT", "东湖大学"));
  for (const auto& e : x.entities) EXPECT_NE(e.name, "首席执行官");
}

// Verifies the extractor is deterministic, finds nothing in text without names, and survives hostile input.
TEST(Builtin, DeterministicAndRobust) {
  std::string text = testing::ReadFile(testing::SamplesDir() + "/helix-dynamics.txt");
  ASSERT_FALSE(text.empty());
  auto a = BuiltinExtract(text);
  auto b = BuiltinExtract(text);
  ASSERT_EQ(a.entities.size(), b.entities.size());
  ASSERT_EQ(a.relations.size(), b.relations.size());
  EXPECT_GE(a.entities.size(), 10u);
  EXPECT_GE(a.relations.size(), 10u);
  EXPECT_TRUE(BuiltinExtract("the cat sat on the mat. it was warm.").relations.empty());
  std::string junk;
  for (int i = 0; i < 5000; ++i) junk.push_back(static_cast<char>((i * 7919) % 256));
  (void)BuiltinExtract(junk);
  (void)BuiltinExtract(std::string(10000, 'A'));
  (void)BuiltinExtract("。。。公司公司集团被收购与和");
}

}  // namespace
}  // namespace kg
