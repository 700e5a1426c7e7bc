#pragma once
// Text handling: UTF-8 decoding, sentence-aware chunking (English and Chinese
// punctuation), and the normalisation behind stable entity keys.

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

// Splits `text` into sentences (after . ! ? followed by space, after 。！？；, at blank
// lines) and packs whole sentences into chunks of at most `size` code points; a
// sentence longer than that is cut at spaces or, failing that, at code points. Every
// chunk is non-blank and starts and ends on a code point, so valid UTF-8 in gives valid
// UTF-8 out (sanitise first: invalid bytes are passed through). Empty or blank text
// gives no chunks.
//
// Reassembly: the first chunk's `overlap` is 0; a later chunk with `overlap` > 0 starts
// its new bytes exactly where the previous chunk ended; one with `overlap` == 0 starts
// after a run of white space that is in no chunk. So dropping each chunk's first
// `overlap` bytes and putting back that white space (and the white space before the first
// and after the last chunk) gives `text` byte for byte (tests/pipeline/property_test.cc).
std::vector<Chunk> ChunkText(std::string_view text, const ChunkOptions& options);

// Sentences of `text`, trimmed, non-empty.
std::vector<std::string> SplitSentences(std::string_view text);

// Folds case (ASCII and Latin-1), full-width forms to ASCII, and runs of white space
// to one space; trims. "  ＡＣＭＥ   Labs " -> "acme labs".
std::string NormalizeName(std::string_view name);
// The stable key of an entity: "<type>:<normalized name>", type lower-cased.
std::string EntityKey(std::string_view name, std::string_view type);

}  // namespace kg
