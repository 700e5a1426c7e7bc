#pragma once
// Text handling: UTF-8 decoding, sentence-aware chunking, word segments and the
// normalisation behind stable entity keys. Sentences, words and case folding come from ICU
// (libicu), not from hand-written tables, so they hold for every script.
//
// Thread safety: every function may be called from any thread. ICU's break iterators are
// built once per process and cloned once per thread (the first call on a thread pays for
// the clone), never per call or per sentence.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kg {

// Decodes one code point at `s[i]`, advancing `i`; invalid bytes yield U+FFFD and
// advance by one, so decoding always makes progress.
char32_t DecodeUtf8(std::string_view s, size_t& i);
void AppendUtf8(std::string& out, char32_t cp);
// Replaces every invalid UTF-8 sequence with U+FFFD.
std::string SanitizeUtf8(std::string_view s);
// Whether `s` is valid UTF-8, i.e. SanitizeUtf8 would return an equal copy (callers skip it then).
bool IsValidUtf8(std::string_view s);

// The longest prefix of `s` of at most `max_bytes` bytes that does not end inside a UTF-8
// sequence (a view into `s`): for text shown cut short, so valid UTF-8 stays valid.
std::string_view Utf8Prefix(std::string_view s, size_t max_bytes);

// Whether `s` is text to build a graph from: no NUL byte, valid UTF-8 but for a small
// tolerance (at most 1 invalid byte per 1000, at least 1: a stray Latin-1 byte in a long
// text), and at most 1 % control characters other than tab, line and page breaks.
// kInvalidArgument naming the reason and the first offending byte offset otherwise.
// Shared by the API (400) and the CLI (refuses before sending).
Status CheckText(std::string_view s);
size_t CodePointCount(std::string_view s);

bool IsHan(char32_t c);

struct ChunkOptions {
  int size = 1200;    // code points per chunk at most
  int overlap = 100;  // code points of trailing sentences repeated at the next chunk's start
};

// One chunk of a text, cut out verbatim (white space inside it is kept as written).
struct Chunk {
  std::string text;    // exactly the input's bytes [offset, offset + text.size())
  size_t offset = 0;   // byte offset of `text` in the input
  size_t overlap = 0;  // leading bytes of `text` that repeat the end of the previous chunk
};

// Splits `text` into sentences and packs whole sentences into chunks of at most `size` code
// points; a sentence longer than that is cut at spaces or, failing that, at code points.
//
// Sentences are ICU's (UAX #29 sentence rules): they end after . ! ? and after CJK 。！？
// (no space needed), and at a blank line; a line break alone does not end one (wrapped
// prose). Abbreviations do not end a sentence: ICU's English suppression list ("Mr.",
// "Prof.", "vs.", ...), titles it lacks ("Dr.", "Jr.", "St.", ...), and initials ("U.S.",
// "e.g.", "J. R. R. Tolkien"). A full stop followed by a lower-case word or a digit ("3.5")
// ends nothing. Company suffixes do: "Acme Inc. The deal" is two sentences ("Inc. acquired"
// is one). The full-width semicolon ； does not end a sentence.
//
// Every chunk is non-blank and starts and ends on a code point, so valid UTF-8 in gives valid
// UTF-8 out (sanitise first: invalid bytes are passed through). Empty or blank text gives no
// chunks.
//
// Reassembly: the first chunk's `overlap` is 0; a later chunk with `overlap` > 0 starts
// its new bytes exactly where the previous chunk ended; one with `overlap` == 0 starts
// after a run of white space that is in no chunk. So dropping each chunk's first
// `overlap` bytes and putting back that white space (and the white space before the first
// and after the last chunk) gives `text` byte for byte (tests/pipeline/property_test.cc).
std::vector<Chunk> ChunkText(std::string_view text, const ChunkOptions& options);

// Sentences of `text` as ChunkText finds them, trimmed, non-empty.
std::vector<std::string> SplitSentences(std::string_view text);
// The same sentences as byte ranges of `text`: [offset, offset + size), in order.
struct SentenceSpan {
  size_t offset = 0, size = 0;
};
std::vector<SentenceSpan> FindSentences(std::string_view text);

// The words of `text` in order, as slices of it (valid while `text` is): ICU's word
// segmentation, dictionary-based for Chinese, Japanese, Thai, Lao, Khmer and Burmese
// ("华为技术有限公司总部设在深圳" -> 华为 技术 有限公司 总部 设在 深圳), UAX #29 rules
// elsewhere ("3.5" and "don't" are one word each). White space, punctuation and symbols are
// not words and are left out.
std::vector<std::string_view> WordSegments(std::string_view text);

// The name part of an entity key: Unicode NFKC_Casefold (ICU), then every run of white
// space made one space, and trimmed. So these fold together: case in every script with
// case ("ΣΊΣΥΦΟΣ" and "σίσυφος" both give "σίσυφοσ": final sigma folds to σ, the tonos
// stays), composed and decomposed accents ("Zoë" typed either way gives "zoë"),
// compatibility forms (the ligature "ﬁ" -> "fi", full-width "ＡＣＭＥ" -> "acme", half-width
// katakana "ｶﾀｶﾅ" -> "カタカナ", "①" -> "1", "ß" -> "ss"), and invisible format characters
// (zero-width space, soft hyphen) are dropped.
//
// Deliberately not folded, because they name different things or need a language to decide:
// accents ("Zoë" != "Zoe", "Müller" != "Muller": stripping them would merge distinct
// names); Turkish dotted and dotless i (locale-free folding: "I" -> "i", "İ" -> "i̇" with a
// combining dot, "ı" stays "ı", so "İstanbul" != "Istanbul"); traditional and simplified
// Chinese ("華為" != "华为"); hiragana and katakana; transliterations ("Москва" != "Moskva").
// Invalid UTF-8 becomes U+FFFD. Empty when nothing but white space or format characters.
std::string NormalizeName(std::string_view name);
// The stable key of an entity: "<type>:<normalized name>", type lower-cased.
std::string EntityKey(std::string_view name, std::string_view type);

}  // namespace kg
