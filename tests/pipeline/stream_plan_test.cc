// StreamPlanner against PlanTask: for generated documents fed in random pieces, the streamed plan
// is PlanTask's item for item, and its verdict on bad input is CheckText's.
#include "pipeline/stream_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "pipeline/document.h"
#include "testing/testing.h"
#include "text/text.h"

namespace kg {
namespace {

using Rng = std::mt19937_64;

size_t Uniform(Rng& rng, size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(rng); }
bool Chance(Rng& rng, double p) { return std::bernoulli_distribution(p)(rng); }
template <typename T>
const T& Pick(Rng& rng, const std::vector<T>& v) {
  return v[Uniform(rng, 0, v.size() - 1)];
}

// English prose with what makes sentence boundaries hard: abbreviations, initials, numbers,
// quotes, ellipses, "etc." before digits and a lower-case word, wrapped lines, blank lines,
// CRLF, and now and then a sentence far longer than a chunk.
void AppendEnglish(Rng& rng, std::string& s, size_t target) {
  static const std::vector<std::string> kWords = {
      "Mara", "Voss", "founded", "Helix", "Dynamics", "in", "the", "city", "of", "Port", "Avalon", "and",
      "acquired", "a", "company", "called", "Fjord", "Analytics", "which", "is", "based", "near", "Oslo",
      "with", "revenue", "rose", "by", "3.5", "percent", "2019", "U.S.", "e.g.", "etc.", "Dr.", "Mr.",
      "Inc.", "J.", "R.", "R.", "Tolkien", "vs.", "St.", "No.", "approx.", "(see", "above)", "\"quoted\"",
      "Voss's", "--", "Ltd.", "Corp.", "i.e.", "a.m.", "Ph.D.", "U.S.A.", "Zoë", "naïve", "café", "CEO",
      "Lt.Cdr.", "Hon.B.A.", "x.", "A.", "1.", "§2", "€40", "—", "[1]", "http://example.com/a.b"};
  static const std::vector<std::string> kSeps = {" ", " ", " ", " ", " ", " ", ", ", "\n", "  ", "\t", "; ",
                                                 ": ", " (", ") ", "\r\n", " \u00a0"};
  static const std::vector<std::string> kEnds = {
      ". ", ". ", ". ", ". ", "! ", "? ", ".\n", ".\n\n", "... ", "?! ", ".\" ", ".) ", ".\r\n", ".\r\n\r\n",
      "\n\n", ". 12 34 ", ". 1.5 ", " etc. 12, 34 and ", ".", "。", ".\n \n", "!\u3000", ". \u2028", ". -- ",
      ". 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 "
      "38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 "
      "and "};
  while (s.size() < target) {
    size_t words = Chance(rng, 0.03) ? Uniform(rng, 150, 700) : Uniform(rng, 1, 30);
    for (size_t w = 0; w < words; ++w) {
      if (w > 0) s += Pick(rng, kSeps);
      s += Pick(rng, kWords);
    }
    s += Pick(rng, kEnds);
  }
}

// Chinese: no spaces, sentences end at 。！？ (or do not end for a long stretch).
void AppendChinese(Rng& rng, std::string& s, size_t target) {
  static const std::vector<std::string> kPhrases = {"李明", "创立了", "星河科技公司", "位于", "云港市", "被", "收购",
                                                    "的", "首席执行官", "与", "合作", "华为", "总部", "设在", "深圳",
                                                    "，", "、", "“", "”", "（", "）", "2019年", "ＡＢＣ"};
  static const std::vector<std::string> kEnds = {"。", "。", "！", "？", "。\n", "。\n\n", "……", "；", "。”"};
  while (s.size() < target) {
    size_t n = Chance(rng, 0.05) ? Uniform(rng, 300, 1500) : Uniform(rng, 2, 40);
    for (size_t k = 0; k < n; ++k) s += Pick(rng, kPhrases);
    s += Pick(rng, kEnds);
  }
}

// Text with no sentence end at all: words and spaces, one huge word, Han without 。, or
// abbreviations run together ("Dr.Approx.U.S.", no boundary between them), which only the
// whole run shows not to end a sentence.
void AppendNoEnds(Rng& rng, std::string& s, size_t target) {
  int kind = static_cast<int>(Uniform(rng, 0, 3));
  static const std::string kAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  while (s.size() < target) {
    if (kind == 0) {
      s += Pick(rng, std::vector<std::string>{"alpha", "beta", "Gamma", "delta", "42", "x", "über"});
      s += Chance(rng, 0.1) ? "\n" : " ";
    } else if (kind == 1) {
      s += kAlnum[Uniform(rng, 0, kAlnum.size() - 1)];  // a base64 blob: one word
    } else if (kind == 2) {
      s += Pick(rng, std::vector<std::string>{"汉", "字", "文", "本", "，"});
    } else {
      s += Pick(rng, std::vector<std::string>{"Dr.", "Mr.", "e.g.", "Approx.", "U.S.", "J.", "R.", "Lt.Cdr.",
                                              "Hon.B.A.", "abc", "Xyz", "etc.", "vs.", "Inc."});
      if (Chance(rng, 0.05)) s += " ";
    }
  }
}

// A run of white space of every kind ChunkText knows (and a few it does not).
void AppendSpace(Rng& rng, std::string& s, size_t n) {
  static const std::vector<std::string> kSpace = {" ", " ", "\n", "\r\n", "\t", "\u3000", "\u00a0", "\r", "\f"};
  for (size_t k = 0; k < n; ++k) s += Pick(rng, kSpace);
}

// Invalid UTF-8 of every shape: stray continuation bytes, truncated and overlong sequences,
// surrogates, bytes that lead nothing, and a real U+FFFD.
void AppendInvalid(Rng& rng, std::string& s) {
  static const std::vector<std::string> kBad = {"\xff", "\x80", "\xe6\xb1", "\xc3", "\xf0\x9f\x98", "\xc0\xaf",
                                                "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "\xe6", "\xef\xbf\xbd"};
  s += Pick(rng, kBad);
}

// A document of `target` bytes or so mixing the kinds above; `invalid` is the chance of an
// invalid sequence per segment.
std::string Document(Rng& rng, size_t target, double invalid) {
  std::string s;
  if (Chance(rng, 0.2)) AppendSpace(rng, s, Uniform(rng, 1, 20));
  while (s.size() < target) {
    size_t seg = std::min(target - s.size(), Uniform(rng, 1, std::max<size_t>(target / 3, 1)));
    switch (Uniform(rng, 0, 9)) {
      case 0: case 1: case 2: case 3: AppendEnglish(rng, s, s.size() + seg); break;
      case 4: case 5: AppendChinese(rng, s, s.size() + seg); break;
      case 6: AppendNoEnds(rng, s, s.size() + seg); break;
      case 7: AppendSpace(rng, s, std::min<size_t>(seg, 3000)); break;
      default: AppendEnglish(rng, s, s.size() + std::min<size_t>(seg, 200)); break;
    }
    if (Chance(rng, invalid)) AppendInvalid(rng, s);
  }
  if (Chance(rng, 0.2)) AppendSpace(rng, s, Uniform(rng, 1, 20));
  return s;
}

enum class Split { kBytes, kRandom, kLarge };

// Cuts `text` into the pieces an HTTP server might hand over.
std::vector<std::string_view> Pieces(Rng& rng, std::string_view text, Split how) {
  std::vector<std::string_view> out;
  for (size_t at = 0; at < text.size();) {
    size_t n = how == Split::kBytes ? 1 : how == Split::kLarge ? 65536 : Chance(rng, 0.5) ? Uniform(rng, 1, 8) : Uniform(rng, 1, 70000);
    n = std::min(n, text.size() - at);
    out.push_back(text.substr(at, n));
    at += n;
  }
  return out;
}

struct Case {
  std::string task, provider, doc_id, title, source;
  ChunkOptions options;
  size_t step;
  Split split;
};

std::string Describe(const Case& c, size_t size) {
  return "doc of " + std::to_string(size) + " bytes, chunk " + std::to_string(c.options.size) + "/" +
         std::to_string(c.options.overlap) + ", step " + std::to_string(c.step) + ", split " +
         std::to_string(static_cast<int>(c.split)) + (c.doc_id.empty() ? ", derived id" : ", given id");
}

// Streams `text` as `c` says and checks the outcome against CheckText and PlanTask.
void ExpectSameAsWhole(Rng& rng, const std::string& text, const Case& c, const std::string& label) {
  SCOPED_TRACE(label + ": " + Describe(c, text.size()));
  StreamPlanner planner(c.task, c.provider, c.doc_id, c.title, c.source, c.options, c.step);
  Status added;
  for (std::string_view piece : Pieces(rng, text, c.split)) {
    added = planner.Add(piece);
    if (!added.ok()) break;
  }
  Status want = CheckText(text);
  if (!added.ok()) {
    // Refused early: only a NUL byte is decided before the end.
    EXPECT_FALSE(want.ok());
    EXPECT_EQ(added.message(), want.message());
    EXPECT_EQ(planner.Add("more").message(), want.message()) << "a planner that failed stays failed";
    auto late = planner.Finish();
    ASSERT_FALSE(late.ok());
    EXPECT_EQ(late.status().message(), want.message());
    return;
  }
  EXPECT_EQ(planner.bytes(), text.size());
  auto got = planner.Finish();
  if (!want.ok()) {
    ASSERT_FALSE(got.ok()) << "CheckText refuses: " << want.message();
    EXPECT_EQ(got.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(got.status().message(), want.message());
    return;
  }
  ASSERT_TRUE(got.ok()) << got.status().message();
  TaskPlan whole = PlanTask(c.task, c.provider, c.doc_id, c.title, c.source, text, c.options);
  EXPECT_EQ(got->doc_id, whole.doc_id);
  ASSERT_EQ(got->items.size(), whole.items.size());
  for (size_t i = 0; i < whole.items.size(); ++i) {
    const ChunkItem& a = got->items[i];
    const ChunkItem& b = whole.items[i];
    if (a.id == b.id && a.task_id == b.task_id && a.provider == b.provider && a.idx == b.idx && a.payload == b.payload) {
      continue;
    }
    auto pa = DecodePayload(a.payload);
    auto pb = DecodePayload(b.payload);
    ADD_FAILURE() << "item " << i << " of " << whole.items.size() << " differs: streamed offset "
                  << (pa.ok() ? pa->offset : -2) << " \"" << (pa.ok() ? pa->text.substr(0, 120) : a.payload)
                  << "\" vs whole offset " << (pb.ok() ? pb->offset : -2) << " \""
                  << (pb.ok() ? pb->text.substr(0, 120) : b.payload) << "\"";
    return;
  }
}

Case RandomCase(Rng& rng) {
  Case c;
  c.task = "t" + std::to_string(Uniform(rng, 0, 1 << 20));
  c.provider = "builtin";
  c.doc_id = Chance(rng, 0.3) ? "doc-" + std::to_string(Uniform(rng, 0, 999)) : "";
  c.title = Chance(rng, 0.5) ? "Title \"q\" é" : "untitled";
  c.source = Chance(rng, 0.5) ? "upload.txt" : "";
  int size = Chance(rng, 0.3) ? 1200 : static_cast<int>(Uniform(rng, 1, 400));
  int overlap = Chance(rng, 0.3) ? 100 : static_cast<int>(Uniform(rng, 0, static_cast<size_t>(size)));
  c.options = {size, overlap};
  c.step = Pick(rng, std::vector<size_t>{1, 64, 300, 1000, 4096, 20000, 65536, ChunkStream::kDefaultStep});
  c.split = static_cast<Split>(Uniform(rng, 0, 2));
  return c;
}

// Verifies, for 1,500 generated documents from empty to tens of kilobytes (English, Chinese,
// sentences over the chunk size, no sentence end at all, white-space runs, CRLF, invalid bytes
// within CheckText's tolerance) split at random (single bytes, random sizes, 64 KiB) and chunked
// through windows of random step, that the streamed plan equals PlanTask's item for item (ids,
// payload bytes) with the same document id.
TEST(StreamPlan, EqualsPlanTaskOnGeneratedDocuments) {
  Rng rng(20260511);
  for (int i = 0; i < testing::Cases(1500); ++i) {
    size_t size = Chance(rng, 0.05) ? 0 : Chance(rng, 0.6) ? Uniform(rng, 1, 3000) : Uniform(rng, 3000, 40000);
    // Mostly text CheckText accepts; some with too many invalid sequences or control characters.
    double invalid = Chance(rng, 0.85) ? 0.0005 : 0.1;
    std::string text = Document(rng, size, invalid);
    if (Chance(rng, 0.03)) {
      for (size_t at = 0; at < text.size(); at += Uniform(rng, 20, 150)) text[at] = '\x01';
    }
    ExpectSameAsWhole(rng, text, RandomCase(rng), "document " + std::to_string(i));
    if (HasFailure()) return;  // one mismatch explains the rest
  }
}

// Verifies the same for a few documents of hundreds of kilobytes to several megabytes, where
// chunks leave the window many times over and long sentences are cut across passes.
TEST(StreamPlan, EqualsPlanTaskOnLargeDocuments) {
  Rng rng(77);
  for (int i = 0; i < 8; ++i) {
    if (testing::kSanitizerDivisor > 1 && i % 3 != 0) continue;  // 0, 3, 6: both kinds of size
    size_t size = i < 6 ? Uniform(rng, 100'000, 600'000) : Uniform(rng, 2'500'000, 4'000'000);
    std::string text = Document(rng, size, 0.0);
    Case c = RandomCase(rng);
    if (i >= 6) c.split = i == 6 ? Split::kBytes : Split::kLarge;
    ExpectSameAsWhole(rng, text, c, "large document " + std::to_string(i));
    if (HasFailure()) return;
  }
}

// Verifies the hard cases one by one, each split at every byte: a text with no sentence end,
// one huge word, Han without 。, white space only, a blank line arriving in two pieces, "etc."
// whose sentence is decided by a word far ahead, and a sequence split inside a code point.
TEST(StreamPlan, EqualsPlanTaskOnHardCases) {
  Rng rng(5);
  std::string words, blob, han, etc = "It cost 5 dollars etc. ";
  while (words.size() < 20000) words += "alpha beta gamma delta ";
  while (blob.size() < 20000) blob += "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789";
  while (han.size() < 20000) han += "汉字文本，";
  for (int k = 0; k < 3000; ++k) etc += std::to_string(k) + " ";
  std::string abbreviations;
  static const std::vector<std::string> kAbbreviations = {"Dr.", "Approx.", "U.S.", "Lt.Cdr.", "Hon.B.A.", "e.g.", "x"};
  while (abbreviations.size() < 6000) abbreviations += Pick(rng, kAbbreviations);
  std::vector<std::pair<std::string, std::string>> texts = {
      {"words", words},
      {"blob", blob},
      {"han", han},
      {"spaces", std::string(5000, ' ') + "\n\n\t\u3000"},
      {"blank line", "First sentence.\n" + std::string(3000, ' ') + "\n" + "second one follows. Third."},
      {"etc lower", etc + "and then it ended. New sentence."},
      {"etc upper", etc + "And then it ended. New sentence."},
      {"split code points", han + "😀é中\xef\xbf\xbd" + words.substr(0, 500)},
      {"abbreviations", abbreviations + " Approx. Foo is next. Then Lt.Cdr. Bar. " + abbreviations + " Dr. End."},
      {"empty", ""},
      {"blank", " \n\r\n\t "},
  };
  for (const auto& [name, text] : texts) {
    for (size_t step : {size_t{1}, size_t{700}, ChunkStream::kDefaultStep}) {
      for (int size : {7, 13, 97}) {
        Case c{"t1", "builtin", "", "T", "", {size, size / 3}, step, Split::kBytes};
        ExpectSameAsWhole(rng, text, c, name);
      }
      Case c{"t1", "builtin", "", "T", "", {1200, 100}, step, Split::kRandom};
      ExpectSameAsWhole(rng, text, c, name);
    }
  }
}

// Verifies the verdict on bad input is CheckText's, with its message: a NUL byte refused by the
// Add that brings it (the offset in the whole document, also when a piece boundary precedes
// it), too many invalid sequences or control characters refused by Finish, a stray invalid
// byte and real U+FFFD characters accepted; and that a failed planner stays failed.
TEST(StreamPlan, VerdictIsCheckTextsOnBadInput) {
  Rng rng(99);
  std::string text(5000, 'a');
  text[4321] = '\0';
  Case c{"t", "builtin", "", "T", "", {100, 10}, 64, Split::kRandom};
  ExpectSameAsWhole(rng, text, c, "NUL");
  {
    StreamPlanner p("t", "builtin", "", "T", "", {100, 10});
    ASSERT_TRUE(p.Add("abc").ok());
    Status s = p.Add(std::string("d\0e", 3));
    EXPECT_EQ(s.message(), "binary data: NUL byte at offset 4");
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
  }
  std::string latin1;
  for (int i = 0; i < 200; ++i) latin1 += "Bj\xF8rn S\xE6ther is here. ";
  ExpectSameAsWhole(rng, latin1, c, "latin-1");
  std::string controls;
  for (int i = 0; i < 300; ++i) controls += "ab\x01" "cd\x02\x1b";
  ExpectSameAsWhole(rng, controls, c, "controls");
  ExpectSameAsWhole(rng, std::string(3000, 'x') + "\xff" + std::string(3000, 'y') + ". \xef\xbf\xbd\xef\xbf\xbd.", c,
                    "tolerated");
  // Many invalid sequences in a long text: within 1 per 1000 bytes, accepted and replaced alike.
  std::string sparse = Document(rng, 200000, 0.0);
  for (size_t at = 999; at < sparse.size(); at += 2500) sparse.insert(at, "\xe6\xb1");
  ExpectSameAsWhole(rng, sparse, c, "sparse invalid");
  // An incomplete sequence at the very end is replaced, as at the end of the whole text.
  ExpectSameAsWhole(rng, std::string(4000, 'z') + ". End \xe6\xb1", c, "truncated end");
}

// Verifies the window stays bounded while multi-megabyte documents stream in 64 KiB pieces
// (prose, a text with no sentence end, Han without 。, one long base64 word): never more than
// 1 MiB held besides the plan, against documents of 4 MB.
TEST(StreamPlan, HoldsABoundedWindow) {
  Rng rng(3);
  std::vector<std::pair<std::string, std::string>> docs;
  std::string prose;
  AppendEnglish(rng, prose, 4'000'000);
  docs.emplace_back("prose", std::move(prose));
  std::string words;
  while (words.size() < 4'000'000) words += "alpha beta gamma delta ";
  docs.emplace_back("no sentence end", std::move(words));
  std::string han;
  while (han.size() < 4'000'000) han += "汉字文本，";
  docs.emplace_back("han", std::move(han));
  std::string blob;
  while (blob.size() < 4'000'000) blob += "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789";
  docs.emplace_back("one word", std::move(blob));
  for (const auto& [name, text] : docs) {
    StreamPlanner p("t", "builtin", "", "T", "", {1200, 100});
    size_t peak = 0;
    for (std::string_view piece : Pieces(rng, text, Split::kLarge)) {
      ASSERT_TRUE(p.Add(piece).ok());
      peak = std::max(peak, p.buffered_bytes());
    }
    auto plan = p.Finish();
    ASSERT_TRUE(plan.ok()) << name;
    EXPECT_GT(plan->items.size(), text.size() / 8000) << name;
    EXPECT_LE(peak, size_t{1} << 20) << name << ": window of " << peak << " bytes for " << text.size();
  }
}

// Verifies an empty and a blank document give an empty plan (as PlanTask does) with the id of
// their bytes, and that Finish is called once.
TEST(StreamPlan, EmptyAndBlankGiveAnEmptyPlan) {
  for (std::string text : {std::string(), std::string(" \n\t\r\n \u3000 ")}) {
    StreamPlanner p("t", "builtin", "", "T", "", {100, 10});
    ASSERT_TRUE(p.Add(text).ok());
    auto plan = p.Finish();
    ASSERT_TRUE(plan.ok());
    EXPECT_TRUE(plan->items.empty());
    EXPECT_EQ(plan->doc_id, DocumentIdFor(text));
    EXPECT_EQ(plan->doc_id, PlanTask("t", "builtin", "", "T", "", text, {100, 10}).doc_id);
    auto again = p.Finish();
    EXPECT_FALSE(again.ok());
    EXPECT_EQ(p.Add("x").code(), Code::kInternal);
  }
}

// Verifies the incremental SHA-256 behind a derived document id equals Sha256Hex of the
// concatenation whatever the pieces (and the known digest of nothing).
TEST(Sha256, PiecesHashAsTheWhole) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>(i * 7 + i / 251);
  for (size_t step : {size_t{1}, size_t{3}, size_t{64}, size_t{1000}, size_t{100000}}) {
    Sha256 h;
    for (size_t at = 0; at < data.size(); at += step) h.Update(std::string_view(data).substr(at, step));
    EXPECT_EQ(h.HexDigest(), Sha256Hex(data)) << step;
  }
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace kg
