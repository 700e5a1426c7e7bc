#pragma once
// Text handling: UTF-8 decoding, sentence-aware chunking (English and Chinese
// punctuation), and the normalisation behind stable entity keys.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kg {

// Decodes one code point at `s[i]`, advancing `i`; invalid bytes yield U+FFFD and
// advance by one, so decoding always makes progress.
char32_t DecodeUtf8(std::string_view s, size_t& i);
void AppendUtf8(std::string& out, char32_t cp);
// Replaces every invalid UTF-8 sequence with U+FFFD.
std::string SanitizeUtf8(std::string_view s);
size_t CodePointCount(std::string_view s);

bool IsHan(char32_t c);

struct ChunkOptions {
  int size = 1200;    // code points per chunk at most
  int overlap = 100;  // code points of trailing sentences repeated at the next chunk's start
};

// Splits `text` into sentences (after . ! ? followed by space, after 。！？；, at blank
// lines) and packs whole sentences into chunks of at most `size` code points; a
// sentence longer than that is cut at spaces or, failing that, at code points. Every
// chunk is valid UTF-8 and non-blank. Empty or blank text gives no chunks.
std::vector<std::string> ChunkText(std::string_view text, const ChunkOptions& options);

// Sentences of `text`, trimmed, non-empty.
std::vector<std::string> SplitSentences(std::string_view text);

// Folds case (ASCII and Latin-1), full-width forms to ASCII, and runs of white space
// to one space; trims. "  ＡＣＭＥ   Labs " -> "acme labs".
std::string NormalizeName(std::string_view name);
// The stable key of an entity: "<type>:<normalized name>", type lower-cased.
std::string EntityKey(std::string_view name, std::string_view type);

}  // namespace kg
