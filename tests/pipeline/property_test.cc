// Property tests over generated hostile text: whatever the input, chunking and
// extraction keep their invariants and never crash (run under ASan/UBSan by make test).
#include <gtest/gtest.h>

#include <random>

#include "pipeline/document.h"
#include "pipeline/text.h"
#include "provider/provider.h"

namespace kg {
namespace {

std::string Generate(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {
      "Mara", "Voss", "Helix", "Dynamics", "founded", "is the CEO of", "in", "Port", "Avalon", ".", ". ", "! ",
      "? ", ", ", "\n", "\n\n", " ", "the", "Dr.", "Inc.", "'s", "李明", "创立了", "星河科技公司", "。", "，",
      "位于", "云港市", "被", "收购", "的", "首席执行官", "与", "合作", "\xff", "\xe6\xb1", "\xc3", std::string(1, '\0'), "ＡＢＣ",
      "\xf0\x9f\x98\x80", "\t", "\"", "(", ")", "&", "<", "3.5", "2019"};
  std::uniform_int_distribution<size_t> pick(0, kPieces.size() - 1);
  std::uniform_int_distribution<int> len(0, 400);
  std::string s;
  int n = len(rng);
  for (int i = 0; i < n; ++i) {
    s += kPieces[pick(rng)];
  }
  return s;
}

bool ValidUtf8(const std::string& s) { return SanitizeUtf8(s) == s; }

// Verifies chunking invariants on 3000 generated inputs: valid UTF-8, bounded size, non-blank,
// every non-space character of the input covered.
TEST(Property, ChunkingInvariants) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> size(20, 300);
  for (int i = 0; i < 3000; ++i) {
    std::string text = SanitizeUtf8(Generate(rng));
    int sz = size(rng);
    ChunkOptions o{sz, sz / 4};
    auto chunks = ChunkText(text, o);
    size_t covered = 0;
    for (const auto& c : chunks) {
      ASSERT_TRUE(ValidUtf8(c)) << i;
      ASSERT_LE(CodePointCount(c), static_cast<size_t>(sz)) << i;
      ASSERT_FALSE(c.empty());
      covered += CodePointCount(c);
    }
    size_t letters = 0;
    for (size_t k = 0; k < text.size();) {
      char32_t cp = DecodeUtf8(text, k);
      if (cp != ' ' && cp != '\n' && cp != '\t' && cp != 0x3000 && cp != '\r') ++letters;
    }
    ASSERT_GE(covered, letters) << "overlap may repeat text but never drop it; input " << i;
  }
}

// Verifies extraction on 3000 generated inputs: no crash, valid UTF-8 names, batches with non-empty keys
// and no self-loops.
TEST(Property, ExtractionInvariants) {
  std::mt19937 rng(777);
  for (int i = 0; i < 3000; ++i) {
    std::string text = Generate(rng);
    Extraction x = BuiltinExtract(SanitizeUtf8(text));
    for (const auto& e : x.entities) {
      ASSERT_TRUE(ValidUtf8(e.name)) << i;
      ASSERT_FALSE(e.name.empty()) << i;
    }
    ChunkPayload p{"d", "t", "", "d:0", text, 0};
    GraphBatch b = BuildBatch(p, x);
    for (const auto& e : b.entities) ASSERT_GT(e.key.find(':'), 0u);
    for (const auto& r : b.relations) ASSERT_NE(r.src, r.dst);
    (void)BuiltinExtract(text);  // raw bytes, unsanitised: must not crash either
  }
}

// Verifies payload decoding rejects garbage as a value, never by crashing.
TEST(Property, PayloadDecodingNeverThrows) {
  std::mt19937 rng(99);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = Generate(rng);
    auto r = DecodePayload(junk);
    EXPECT_FALSE(r.ok());
    auto ok = DecodePayload(EncodePayload({"d", junk, junk, "d:1", junk, 1}));
    ASSERT_TRUE(ok.ok()) << ok.status().message();
    EXPECT_EQ(ok->idx, 1);
  }
}

}  // namespace
}  // namespace kg
