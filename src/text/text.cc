#include "text/text.h"

#include <algorithm>

namespace kg {

char32_t DecodeUtf8(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return 0xFFFD;
  }
  i += len;
  return cp;
}

Status CheckText(std::string_view s) {
  size_t invalid = 0, controls = 0, points = 0, first_invalid = 0, first_control = 0;
  for (size_t i = 0; i < s.size();) {
    size_t at = i;
    if (s[i] == '\0') return Status::Invalid("binary data: NUL byte at offset " + std::to_string(i));
    char32_t cp = DecodeUtf8(s, i);
    ++points;
    bool real_replacement = i - at == 3 && s.substr(at, 3) == "\xEF\xBF\xBD";
    if (cp == 0xFFFD && !real_replacement) {
      if (invalid++ == 0) first_invalid = at;
    } else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r' && cp != '\f' && cp != '\v') || cp == 0x7F) {
      if (controls++ == 0) first_control = at;
    }
  }
  size_t tolerated = std::max<size_t>(1, s.size() / 1000);
  if (invalid > tolerated) {
    return Status::Invalid("not UTF-8 text: " + std::to_string(invalid) + " invalid byte sequences (first at offset " +
                           std::to_string(first_invalid) + "); convert it to UTF-8 first (e.g. iconv -f latin1 -t utf-8)");
  }
  if (controls * 100 > points) {
    return Status::Invalid("binary data: " + std::to_string(controls) + " control characters in " +
                           std::to_string(points) + " (first at offset " + std::to_string(first_control) + ")");
  }
  return Status::Ok();
}

void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) AppendUtf8(out, DecodeUtf8(s, i));
  return out;
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    DecodeUtf8(s, i);
    ++n;
  }
  return n;
}

bool IsHan(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0xF900 && c <= 0xFAFF);
}

namespace {

bool IsSpace(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x3000 || c == 0xA0; }
bool IsCjkStop(char32_t c) { return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF1B; }  // 。！？；
bool IsLatinStop(char32_t c) { return c == '.' || c == '!' || c == '?'; }
bool IsCloser(char32_t c) {
  return c == '"' || c == '\'' || c == ')' || c == 0x201D || c == 0x2019 || c == 0x300D || c == 0x300F || c == 0xFF09;
}

// A byte range [b, e) of the input.
struct Span {
  size_t b = 0, e = 0;
};

// `s[b, e)` without leading and trailing white space. `s` ends at `e` so that decoding
// never reads past the range.
Span TrimSpan(std::string_view s, size_t b, size_t e) {
  while (b < e) {
    size_t j = b;
    if (!IsSpace(DecodeUtf8(s.substr(0, e), j))) break;
    b = j;
  }
  while (e > b) {
    size_t k = e - 1;
    while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    size_t j = k;
    if (!IsSpace(DecodeUtf8(s.substr(0, e), j)) || j != e) break;
    e = k;
  }
  return {b, e};
}

// Sentences of `text` as trimmed, non-empty spans, in order.
std::vector<Span> SentenceSpans(std::string_view text) {
  std::vector<Span> out;
  size_t start = 0, i = 0;
  auto emit = [&](size_t end) {
    Span t = TrimSpan(text, start, end);
    if (t.b < t.e) out.push_back(t);
    start = end;
  };
  int newlines = 0;
  while (i < text.size()) {
    size_t at = i;
    char32_t c = DecodeUtf8(text, i);
    if (c == '\n') {
      if (++newlines >= 2) emit(i);  // a blank line ends a sentence
      continue;
    }
    if (!IsSpace(c)) newlines = 0;
    if (IsCjkStop(c) || IsLatinStop(c)) {
      size_t j = i;
      while (j < text.size()) {  // swallow repeated stops and closing quotes
        size_t k = j;
        char32_t d = DecodeUtf8(text, k);
        if (!(IsCjkStop(d) || IsLatinStop(d) || IsCloser(d))) break;
        j = k;
      }
      if (IsCjkStop(c) || j >= text.size()) {
        emit(j);
      } else {
        size_t k = j;
        char32_t next = DecodeUtf8(text, k);
        // "Dr. Voss" and "3.5" do not end a sentence; ". The" does.
        bool abbrev = false;
        if (c == '.') {
          size_t ws = at;
          while (ws > start && std::isalpha(static_cast<unsigned char>(text[ws - 1]))) --ws;
          std::string_view word = text.substr(ws, at - ws);
          abbrev = word == "Dr" || word == "Mr" || word == "Mrs" || word == "Ms" || word == "Prof" ||
                   word == "St" || word == "Inc" || word == "Co" || word == "Corp" || word == "Ltd" ||
                   word == "Jr" || word == "Sr" || word.size() == 1;
        }
        if (IsSpace(next) && !abbrev) emit(j);
      }
      i = j;
    }
  }
  emit(text.size());
  return out;
}

struct Piece {
  Span span;
  size_t cps = 0;
};

// Cuts an over-long sentence at spaces (or at code points) into trimmed pieces of <= size.
void CutLong(std::string_view text, Span sentence, size_t size, std::vector<Piece>& out) {
  std::string_view s = text.substr(0, sentence.e);
  std::vector<size_t> starts;  // byte offset of each code point
  for (size_t i = sentence.b; i < sentence.e;) {
    starts.push_back(i);
    DecodeUtf8(s, i);
  }
  starts.push_back(sentence.e);
  size_t n = starts.size() - 1, pos = 0;
  while (pos < n) {
    size_t end = std::min(n, pos + size);
    if (end < n) {
      size_t cut = end;
      while (cut > pos + size / 2 && s[starts[cut]] != ' ') --cut;
      if (cut > pos + size / 2) end = cut;
    }
    Span t = TrimSpan(s, starts[pos], starts[end]);
    if (t.b < t.e) out.push_back({t, CodePointCount(s.substr(t.b, t.e - t.b))});
    pos = end;
  }
}

}  // namespace

std::vector<std::string> SplitSentences(std::string_view text) {
  std::vector<std::string> out;
  for (const Span& sp : SentenceSpans(text)) out.emplace_back(text.substr(sp.b, sp.e - sp.b));
  return out;
}

std::vector<Chunk> ChunkText(std::string_view text, const ChunkOptions& o) {
  size_t size = static_cast<size_t>(std::max(1, o.size));
  size_t overlap = static_cast<size_t>(std::max(0, std::min(o.overlap, o.size / 2)));
  std::vector<Piece> pieces;
  for (const Span& sp : SentenceSpans(text)) {
    size_t n = CodePointCount(text.substr(sp.b, sp.e - sp.b));
    if (n <= size) pieces.push_back({sp, n});
    else CutLong(text, sp, size, pieces);
  }
  // gap[k]: code points of the white space between piece k - 1 and piece k.
  std::vector<size_t> gap(pieces.size(), 0);
  for (size_t k = 1; k < pieces.size(); ++k) {
    gap[k] = CodePointCount(text.substr(pieces[k - 1].span.e, pieces[k].span.b - pieces[k - 1].span.e));
  }
  std::vector<Chunk> chunks;
  size_t previous_end = 0, i = 0;
  while (i < pieces.size()) {
    // Pieces are <= size, so a chunk always takes at least one.
    size_t cps = pieces[i].cps, j = i + 1;
    while (j < pieces.size() && cps + gap[j] + pieces[j].cps <= size) {
      cps += gap[j] + pieces[j].cps;
      ++j;
    }
    Chunk c;
    c.offset = pieces[i].span.b;
    c.text = std::string(text.substr(c.offset, pieces[j - 1].span.e - c.offset));
    c.overlap = !chunks.empty() && previous_end > c.offset ? previous_end - c.offset : 0;
    previous_end = pieces[j - 1].span.e;
    chunks.push_back(std::move(c));
    if (j >= pieces.size()) break;
    // Next chunk starts with trailing sentences worth at most `overlap` code points,
    // but always advances by at least one piece.
    size_t back = j, carried = 0;
    while (back > i + 1 && carried + pieces[back - 1].cps <= overlap) {
      carried += pieces[back - 1].cps;
      --back;
    }
    i = back;
  }
  return chunks;
}

std::string NormalizeName(std::string_view name) {
  std::string out;
  bool space = false;
  for (size_t i = 0; i < name.size();) {
    char32_t c = DecodeUtf8(name, i);
    if (c >= 0xFF01 && c <= 0xFF5E) c = c - 0xFF01 + 0x21;  // full-width ASCII
    if (IsSpace(c) || c == 0x3000) {
      space = !out.empty();
      continue;
    }
    if (c >= 'A' && c <= 'Z') c += 32;
    else if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) c += 32;  // Latin-1 upper
    if (space) out.push_back(' ');
    space = false;
    AppendUtf8(out, c);
  }
  return out;
}

std::string EntityKey(std::string_view name, std::string_view type) {
  std::string t = NormalizeName(type);
  for (char& ch : t) {
    if (ch == ' ') ch = '_';
  }
  return t + ":" + NormalizeName(name);
}

}  // namespace kg
