// Property tests over generated hostile text: whatever the input, chunking and
// extraction keep their invariants and never crash (run under ASan/UBSan by make test).
#include <gtest/gtest.h>

#include <random>

#include "pipeline/document.h"
#include "testing/testing.h"
#include "text/text.h"
#include "provider/provider.h"

namespace kg {
namespace {

std::string Generate(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {
      "Mara", "Voss", "Helix", "Dynamics", "founded", "is the CEO of", "in", "Port", "Avalon", ".", ". ", "! ",
      "? ", ", ", "\n", "\n\n", " ", "the", "Dr.", "Inc.", "'s", "李明", "创立了", "星河科技公司", "。", "，",
      "位于", "云港市", "被", "收购", "的", "首席执行官", "与", "合作", "\xff", "\xe6\xb1", "\xc3", std::string(1, '\0'), "ＡＢＣ",
      "\xf0\x9f\x98\x80", "\t", "\"", "(", ")", "&", "<", "3.5", "2019", "U.S.", "J.", "Mr.", "e.g.", "Steel",
      "\r\n", "\n \n", "！", "？", "ｶﾀｶﾅ", "ΣΊΣΥΦΟΣ", "Zoe\xcc\x88", "\xe2\x80\xa8", "\xe3\x80\x80"};
  std::uniform_int_distribution<size_t> pick(0, kPieces.size() - 1);
  std::uniform_int_distribution<int> len(0, 400);
  std::string s;
  int n = len(rng);
  for (int i = 0; i < n; ++i) {
    s += kPieces[pick(rng)];
  }
  return s;
}


// White space as the chunker trims it.
bool Blank(std::string_view s) {
  for (size_t k = 0; k < s.size();) {
    char32_t cp = DecodeUtf8(s, k);
    if (cp != ' ' && cp != '\n' && cp != '\t' && cp != '\r' && cp != 0x3000 && cp != 0xA0) return false;
  }
  return true;
}

// Verifies chunking on 3000 generated inputs: valid UTF-8, bounded size, non-blank, and the
// chunks with their overlap removed concatenate back to the input byte for byte (the only
// bytes in no chunk being white space between them), each overlap repeating the previous
// chunk's end exactly; and every sentence that fits the chunk size lies whole in one chunk.
TEST(Property, ChunksReassembleToTheInput) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> size(20, 300);
  size_t overlapping = 0, gaps = 0, whole = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = SanitizeUtf8(Generate(rng));
    int sz = size(rng);
    ChunkOptions o{sz, sz / 4};
    auto chunks = ChunkText(text, o);
    std::string rebuilt;
    size_t pos = 0;  // input bytes [0, pos) are rebuilt
    for (size_t k = 0; k < chunks.size(); ++k) {
      const Chunk& c = chunks[k];
      ASSERT_TRUE(IsValidUtf8(c.text)) << i;
      ASSERT_LE(CodePointCount(c.text), static_cast<size_t>(sz)) << i;
      ASSERT_FALSE(Blank(c.text)) << i;
      ASSERT_LE(c.overlap, c.text.size()) << i;
      if (k == 0) {
        ASSERT_EQ(c.overlap, 0u) << i;
      }
      if (c.overlap > 0) {
        const std::string& prev = chunks[k - 1].text;
        ASSERT_LE(c.overlap, prev.size()) << i;
        ASSERT_EQ(c.text.substr(0, c.overlap), prev.substr(prev.size() - c.overlap))
            << "overlap repeats the previous chunk's end; input " << i << " chunk " << k;
        ++overlapping;
      }
      size_t fresh = c.offset + c.overlap;  // where this chunk's new bytes sit in the input
      ASSERT_GE(fresh, pos) << "chunks out of order; input " << i << " chunk " << k;
      ASSERT_TRUE(c.overlap == 0 || fresh == pos) << "overlap must end where the previous chunk ended; input " << i;
      std::string_view between = std::string_view(text).substr(pos, fresh - pos);
      ASSERT_TRUE(Blank(between)) << "dropped text before chunk " << k << " of input " << i << ": \""
                                  << between << "\"";
      gaps += between.empty() ? 0 : 1;
      rebuilt.append(between);
      rebuilt.append(c.text, c.overlap);
      pos = c.offset + c.text.size();
    }
    ASSERT_LE(pos, text.size()) << i;
    ASSERT_TRUE(Blank(std::string_view(text).substr(pos))) << "dropped text at the end of input " << i;
    rebuilt.append(text, pos);
    ASSERT_EQ(rebuilt, text) << "input " << i;
    // Sentences are kept whole: each one that fits the size lies inside one chunk.
    size_t from = 0, k = 0;
    for (const std::string& sentence : SplitSentences(text)) {
      size_t at = text.find(sentence, from);
      ASSERT_NE(at, std::string::npos) << "sentences are verbatim slices; input " << i;
      from = at + sentence.size();
      if (CodePointCount(sentence) > static_cast<size_t>(sz)) continue;
      while (k < chunks.size() && chunks[k].offset + chunks[k].text.size() < from) ++k;
      ASSERT_LT(k, chunks.size()) << "sentence at " << at << " in no chunk; input " << i;
      ASSERT_LE(chunks[k].offset, at) << "sentence at " << at << " cut; input " << i << ": " << sentence;
      ++whole;
    }
  }
  EXPECT_GT(whole, 10000u);
  // The generator must exercise both kinds of boundary, or the test proves less than it says.
  EXPECT_GT(overlapping, 100u);
  EXPECT_GT(gaps, 100u);
}

// Verifies extraction on 3000 generated inputs: no crash, valid UTF-8 names free of role words,
// batches with non-empty keys and no self-loops.
TEST(Property, ExtractionInvariants) {
  std::mt19937 rng(777);
  for (int i = 0; i < testing::Cases(3000); ++i) {
    std::string text = Generate(rng);
    Extraction x = BuiltinExtract(SanitizeUtf8(text));
    for (const auto& e : x.entities) {
      ASSERT_TRUE(IsValidUtf8(e.name)) << i;
      ASSERT_FALSE(e.name.empty()) << i;
      // Roles become relations, never names (the generator writes "is the CEO of" and 首席执行官).
      ASSERT_EQ(e.name.find("CEO"), std::string::npos) << e.name << " from input " << i;
      ASSERT_EQ(e.name.find("首席执行官"), std::string::npos) << e.name << " from input " << i;
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
