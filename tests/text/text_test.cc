#include "text/text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "pipeline/document.h"
#include "text/stream.h"

namespace kg {
namespace {


// Verifies sentences split after English and Chinese punctuation, not inside "Dr." or "3.5".
TEST(Text, SplitsSentencesInBothLanguages) {
  auto s = SplitSentences("Dr. Voss earned 3.5 million. She left!  李明创立了公司。王红加入了。Done?");
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0], "Dr. Voss earned 3.5 million.");
  EXPECT_EQ(s[1], "She left!");
  EXPECT_EQ(s[2], "李明创立了公司。");
  EXPECT_EQ(s[3], "王红加入了。");
  EXPECT_EQ(s[4], "Done?");
}

// Verifies Utf8Prefix never cuts inside a multi-byte sequence and leaves short text whole.
TEST(Text, Utf8PrefixCutsOnACodePointBoundary) {
  const std::string s = "ab\u00e9\u674e\U0001F600";  // 1+1+2+3+4 bytes
  EXPECT_EQ(Utf8Prefix(s, 100), s);
  EXPECT_EQ(Utf8Prefix(s, 2), "ab");
  EXPECT_EQ(Utf8Prefix(s, 3), "ab");  // inside é
  EXPECT_EQ(Utf8Prefix(s, 4), "ab\u00e9");
  EXPECT_EQ(Utf8Prefix(s, 6), "ab\u00e9");  // inside 李
  EXPECT_EQ(Utf8Prefix(s, 10), "ab\u00e9\u674e");  // inside the emoji
  EXPECT_EQ(Utf8Prefix(s, 0), "");
  for (size_t n = 0; n <= s.size(); ++n) EXPECT_TRUE(IsValidUtf8(Utf8Prefix(s, n))) << n;
}

// Verifies abbreviations, titles and initials do not end a sentence (ICU's English suppressions plus
// ours), while a full stop before a capitalised word, CJK stops and blank lines do.
TEST(Text, AbbreviationsAndInitialsDoNotEndASentence) {
  auto s = SplitSentences(
      "Dr. Lund joined U.S. Steel in 2019. Mr. Okafor met Prof. Ng at 3.5 p.m. on Monday. "
      "J. R. R. Tolkien wrote it, e.g. in Oxford. Acme Inc. The deal closed.");
  ASSERT_EQ(s.size(), 5u) << ::testing::PrintToString(s);
  EXPECT_EQ(s[0], "Dr. Lund joined U.S. Steel in 2019.");
  EXPECT_EQ(s[1], "Mr. Okafor met Prof. Ng at 3.5 p.m. on Monday.");
  EXPECT_EQ(s[2], "J. R. R. Tolkien wrote it, e.g. in Oxford.");
  EXPECT_EQ(s[3], "Acme Inc.");
  EXPECT_EQ(s[4], "The deal closed.");
}

// Verifies a lone line break (wrapped prose) does not end a sentence, a blank line does even without a
// full stop, and Chinese stops end one with no space after them.
TEST(Text, LineBreaksAndCjkStops) {
  auto s = SplitSentences("Mara Voss founded\r\nHelix Dynamics in 2014.\n \nHeadline without a stop\n\n"
                          "李明创立了星河科技公司！王红加入了。她在云港市？Then Moved to the U.S.\n\nNew paragraph.");
  ASSERT_EQ(s.size(), 7u) << ::testing::PrintToString(s);
  EXPECT_EQ(s[0], "Mara Voss founded\r\nHelix Dynamics in 2014.");  // verbatim, line break kept
  EXPECT_EQ(s[1], "Headline without a stop");
  EXPECT_EQ(s[2], "李明创立了星河科技公司！");
  EXPECT_EQ(s[3], "王红加入了。");
  EXPECT_EQ(s[4], "她在云港市？");
  EXPECT_EQ(s[5], "Then Moved to the U.S.");  // initials before a blank line: the blank line wins
  EXPECT_EQ(s[6], "New paragraph.");
}

// Verifies word segments: dictionary-based for Chinese, rules for Latin script, no spaces or punctuation.
TEST(Text, WordSegmentsUseTheDictionaryForChinese) {
  std::string text = "华为技术有限公司总部设在深圳。Mara Voss, 3.5 million!";
  auto w = WordSegments(text);
  std::vector<std::string> words(w.begin(), w.end());
  std::vector<std::string> want = {"技术", "有限公司", "总部", "设在", "深圳", "Mara", "Voss", "3.5", "million"};
  for (const auto& x : want) {
    EXPECT_NE(std::find(words.begin(), words.end(), x), words.end()) << x << " in " << ::testing::PrintToString(words);
  }
  for (const auto& x : words) {
    EXPECT_EQ(x.find_first_of(" ,!"), std::string::npos) << x;
    EXPECT_EQ(x.find("。"), std::string::npos) << x;
  }
  // Slices of the input, in order.
  size_t pos = 0;
  for (std::string_view x : w) {
    ASSERT_GE(x.data(), text.data() + pos);
    pos = static_cast<size_t>(x.data() - text.data()) + x.size();
  }
  EXPECT_LE(pos, text.size());
  EXPECT_TRUE(WordSegments("").empty());
  EXPECT_TRUE(WordSegments(" 。, ").empty());
}

// Verifies sentences split the same on many threads at once (each thread has its own ICU iterator).
TEST(Text, SentencesOnManyThreads) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "Dr. Lund met U.S. Steel number " + std::to_string(i) + ". 李明创立了公司。";
  auto want = SplitSentences(text);
  ASSERT_EQ(want.size(), 100u);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        if (SplitSentences(text) != want) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Verifies chunks respect the size in code points, keep sentences whole, overlap, and cover the text.
TEST(Text, ChunksAreBoundedSentenceAlignedAndOverlap) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Sentence number " + std::to_string(i) + " is here. ";
  auto chunks = ChunkText(text, {200, 40});
  ASSERT_GT(chunks.size(), 3u);
  for (const auto& c : chunks) {
    EXPECT_LE(CodePointCount(c.text), 200u);
    EXPECT_EQ(c.text.back(), '.');
    EXPECT_EQ(c.text.rfind("Sentence", 0), 0u) << c.text;
  }
  // Overlap: each chunk starts with the last sentence of the previous one.
  for (size_t i = 1; i < chunks.size(); ++i) {
    std::string first = chunks[i].text.substr(0, chunks[i].text.find('.') + 1);
    EXPECT_NE(chunks[i - 1].text.find(first), std::string::npos) << i;
    EXPECT_EQ(chunks[i].overlap, first.size()) << i;
  }
  EXPECT_NE(chunks.back().text.find("number 39"), std::string::npos);
}

// Verifies chunking a large text with no line break finishes (a blank-line lookup once scanned the
// rest of the text per sentence: 20 MB took over 120 s; linear, 40 MB takes about a second, ten
// under the sanitizers). No timing is asserted: ctest's timeout (300 s) is the bound, which the
// quadratic version passes by far at 40 MB. Speed itself is measured in bench/.
TEST(Text, ChunkingIsLinearInTheTextSize) {
  std::string t;
  while (t.size() < 40'000'000) t += "Mara Voss founded Helix Dynamics in 2014 and it grew. ";
  auto chunks = ChunkText(t, {1200, 100});
  EXPECT_GT(chunks.size(), t.size() / 1300);
  EXPECT_EQ(chunks.back().offset + chunks.back().text.size(), t.size() - 1);  // up to the final space
}

// Verifies a long run of Chinese without punctuation is cut on code points, never inside one.
TEST(Text, NeverSplitsACodePoint) {
  std::string han;
  for (int i = 0; i < 1000; ++i) han += "汉";
  auto chunks = ChunkText(han, {97, 10});
  ASSERT_GE(chunks.size(), 10u);
  size_t total = 0;
  for (const auto& c : chunks) {
    EXPECT_TRUE(IsValidUtf8(c.text));
    EXPECT_LE(CodePointCount(c.text), 97u);
    total += CodePointCount(c.text);
  }
  EXPECT_EQ(total, 1000u);
}

// Verifies blank text gives no chunk and invalid UTF-8 is repaired, not passed on.
TEST(Text, BlankAndInvalidInput) {
  EXPECT_TRUE(ChunkText("   \n\n \t ", {100, 10}).empty());
  EXPECT_TRUE(ChunkText("", {100, 10}).empty());
  std::string bad = "abc\xff\xfe def \xe6\xb1";  // stray bytes and a truncated sequence
  EXPECT_TRUE(IsValidUtf8(SanitizeUtf8(bad)));
  EXPECT_EQ(SanitizeUtf8("ok 汉字"), "ok 汉字");
}

// Verifies keys fold what Unicode says is the same text (NFKC_Casefold): composed and decomposed accents,
// case in Greek with final sigma, ligatures, half- and full-width forms; and keep apart what is not the same
// (accents, Turkish dotless i, traditional and simplified Chinese). Chinese is left as written.
TEST(Text, KeysFoldUnicodeEquivalents) {
  EXPECT_EQ(NormalizeName("Zo\u00EB"), NormalizeName("Zoe\u0308"));  // composed, decomposed
  EXPECT_EQ(NormalizeName("Zo\u00EB"), "zo\u00EB");
  EXPECT_EQ(NormalizeName("ΣΊΣΥΦΟΣ"), NormalizeName("σίσυφος"));
  EXPECT_EQ(NormalizeName("σίσυφος"), "σίσυφοσ");  // final sigma folds to σ; the tonos stays
  EXPECT_EQ(NormalizeName("\uFB01nance"), NormalizeName("finance"));  // ﬁ ligature
  EXPECT_EQ(NormalizeName("ｶﾀｶﾅ"), NormalizeName("カタカナ"));      // half-width katakana
  EXPECT_EQ(NormalizeName("カタカナ"), "カタカナ");
  EXPECT_EQ(NormalizeName("Ｍｅｒｉｄｉａｎ　Ａｎａｌｙｔｉｃｓ"), "meridian analytics");  // full-width ASCII and space
  EXPECT_EQ(NormalizeName("华为技术有限公司"), "华为技术有限公司");
  EXPECT_EQ(NormalizeName("Hel\u200Bix"), "helix");  // zero-width space dropped
  EXPECT_EQ(EntityKey("ΣΊΣΥΦΟΣ Labs", "Organization"), EntityKey("σίσυφος  labs", "organization"));
  // Not folded, on purpose.
  EXPECT_NE(NormalizeName("Zoë"), NormalizeName("Zoe"));
  EXPECT_NE(NormalizeName("\u0130stanbul"), NormalizeName("Istanbul"));  // İ: i with a combining dot
  EXPECT_NE(NormalizeName("\u0131stanbul"), NormalizeName("istanbul"));  // dotless ı
  EXPECT_NE(NormalizeName("華為"), NormalizeName("华为"));
  EXPECT_EQ(NormalizeName(" \u200B \t"), "");
}

// Verifies name normalisation folds case, full width and white space into one stable key.
TEST(Text, NormalisationFoldsCaseWidthAndSpace) {
  EXPECT_EQ(NormalizeName("  ＡＣＭＥ   Labs "), "acme labs");
  EXPECT_EQ(NormalizeName("Helix\tDynamics"), "helix dynamics");
  EXPECT_EQ(EntityKey("Helix  DYNAMICS", "Organization"), EntityKey("helix dynamics", "organization"));
  EXPECT_NE(EntityKey("Helix", "Organization"), EntityKey("Helix", "Person"));
  EXPECT_EQ(NormalizeName("星河科技　公司"), "星河科技 公司");
}

// Verifies document ids derive from content and plans use stable graph chunk ids.
TEST(Document, IdsDeriveFromContent) {
  EXPECT_EQ(DocumentIdFor("same text"), DocumentIdFor("same text"));
  EXPECT_NE(DocumentIdFor("same text"), DocumentIdFor("other text"));
  auto a = PlanTask("t1", "builtin", "", "T", "", "One. Two.", {100, 10});
  auto b = PlanTask("t2", "builtin", "", "T", "", "One. Two.", {100, 10});
  ASSERT_EQ(a.items.size(), 1u);
  EXPECT_EQ(a.doc_id, b.doc_id);
  EXPECT_NE(a.items[0].id, b.items[0].id);
  auto pa = DecodePayload(a.items[0].payload);
  auto pb = DecodePayload(b.items[0].payload);
  ASSERT_TRUE(pa.ok());
  EXPECT_EQ(pa->chunk_id, pb->chunk_id);
  EXPECT_FALSE(DecodePayload("{not json").ok());
}

// Verifies BuildBatch keys entities, drops self-loops and duplicates, and adds missing relation ends.
TEST(Document, BuildBatchNormalises) {
  Extraction x;
  x.entities = {{"Helix Dynamics", "Organization", "d"}, {"HELIX  dynamics", "Organization", ""}, {"", "Person", ""}};
  x.relations = {{"Mara Voss", "Person", "Helix Dynamics", "Organization", "founded"},
                 {"Mara Voss", "Person", "Helix Dynamics", "Organization", "FOUNDED"},
                 {"Helix Dynamics", "Organization", "helix dynamics", "Organization", "same"}};
  ChunkPayload p{"d1", "T", "", "d1:0", "text", 0};
  GraphBatch b = BuildBatch(p, x);
  EXPECT_EQ(b.entities.size(), 2u);  // helix dynamics, mara voss
  ASSERT_EQ(b.relations.size(), 1u);
  EXPECT_EQ(b.relations[0].type, "FOUNDED");
  EXPECT_EQ(b.relations[0].src, "person:mara voss");
}

// Verifies what counts as text: prose in any script, with a stray invalid byte in a long text and a real
// U+FFFD, passes; NUL bytes, mostly-invalid UTF-8 (Latin-1 files) and control-character soup (binaries)
// are refused with the reason and the offset.
TEST(CheckText, TextPassesBinaryAndLatin1AreRefused) {
  EXPECT_TRUE(CheckText("Mara Voss founded Helix Dynamics.\n\t张伟是华为的首席执行官。\r\n").ok());
  EXPECT_TRUE(CheckText("A real replacement character \xEF\xBF\xBD is text.").ok());
  std::string long_text(5000, 'a');
  long_text[2500] = '\xF8';  // one stray Latin-1 byte in 5000
  EXPECT_TRUE(CheckText(long_text).ok());
  auto nul = CheckText(std::string("ELF\0\x01\x02", 6));
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.code(), Code::kInvalidArgument);
  EXPECT_NE(nul.message().find("NUL byte at offset 3"), std::string::npos) << nul.message();
  auto latin1 = CheckText("Bj\xF8rn S\xE6ther is the CEO of Fjord Analytics.");
  ASSERT_FALSE(latin1.ok());
  EXPECT_NE(latin1.message().find("not UTF-8"), std::string::npos) << latin1.message();
  EXPECT_NE(latin1.message().find("offset 2"), std::string::npos) << latin1.message();
  std::string soup;
  for (int i = 0; i < 50; ++i) soup += "ab\x01\x02\x03";
  auto controls = CheckText(soup);
  ASSERT_FALSE(controls.ok());
  EXPECT_NE(controls.message().find("control characters"), std::string::npos) << controls.message();
}

}  // namespace
// Verifies IsValidUtf8 says exactly when SanitizeUtf8 would change its input (callers skip
// the copy on its word), a literal U+FFFD and 4-byte sequences included.
TEST(Text, IsValidUtf8AgreesWithSanitize) {
  for (std::string s : {std::string("plain"), std::string("Caf\xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80"),
                        std::string("keep \xEF\xBF\xBD as is"), std::string("Caf\xE9"), std::string("\xC3"),
                        std::string("\xED\xA0\x80 surrogate"), std::string("\xC0\xAF overlong"),
                        std::string("tail \xE2\x80"), std::string("")}) {
    EXPECT_EQ(IsValidUtf8(s), SanitizeUtf8(s) == s) << s;
  }
}

// Verifies Utf8Stream gives SanitizeUtf8's bytes and CheckText's verdict (message and offset)
// for byte soup thick with invalid sequences, NUL bytes and control characters, cut into single
// bytes or random pieces (so also inside sequences, valid and invalid).
TEST(Utf8Stream, EqualsSanitizeAndCheckTextWhereverSplit) {
  std::mt19937 rng(7);
  static const std::vector<std::string> kBits = {
      "a", "a", "a", " ", "\n", "\t", "é", "中", "😀", "\xef\xbf\xbd", "\xff", "\x80", "\xe6\xb1", "\xc3",
      "\xf0\x9f\x98", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88", "\x01", "\x7f"};
  size_t refused_early = 0, refused_late = 0, accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    size_t n = std::uniform_int_distribution<size_t>(0, 400)(rng);
    bool sparse = i % 3 == 0;  // mostly "a": within CheckText's tolerances
    for (size_t k = 0; k < n; ++k) {
      text += sparse && rng() % 50 != 0 ? "a" : kBits[rng() % kBits.size()];
    }
    if (i % 7 == 0 && !text.empty()) text[rng() % text.size()] = '\0';
    Utf8Stream stream;
    std::string out;
    Status got;
    bool bytes = i % 2 == 0;
    for (size_t at = 0; at < text.size() && got.ok();) {
      size_t len = bytes ? 1 : std::min<size_t>(text.size() - at, 1 + rng() % 7);
      got = stream.Add(std::string_view(text).substr(at, len), out);
      at += len;
    }
    bool early = !got.ok();
    if (got.ok()) got = stream.Finish(out);
    Status want = CheckText(text);
    ASSERT_EQ(got.message(), want.message()) << "input " << i;
    if (early) {
      ++refused_early;
      EXPECT_EQ(stream.Finish(out).message(), want.message()) << "a failed stream stays failed";
      continue;
    }
    (want.ok() ? accepted : refused_late) += 1;
    ASSERT_EQ(out, SanitizeUtf8(text)) << "input " << i;
    EXPECT_EQ(stream.bytes(), text.size());
  }
  // Each verdict was reached often enough to mean something.
  EXPECT_GT(refused_early, 100u);
  EXPECT_GT(refused_late, 100u);
  EXPECT_GT(accepted, 100u);
}

}  // namespace kg
