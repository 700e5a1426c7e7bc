#include "text/text.h"

#include <unicode/brkiter.h>
#include <unicode/filteredbrk.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "common/mutex.h"
#include "text/space.h"

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

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t at = i;
    if (DecodeUtf8(s, i) == 0xFFFD && s.compare(at, 3, "\xEF\xBF\xBD") != 0) return false;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) AppendUtf8(out, DecodeUtf8(s, i));
  return out;
}

std::string_view Utf8Prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t cut = max_bytes;
  // Back off continuation bytes (10xxxxxx) so the cut falls before a sequence's lead byte.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
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

bool IsSpace(char32_t c) { return text_internal::IsChunkSpace(c); }
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

// ICU objects are costly to build (rules and dictionaries are loaded), so each kind is
// built once per process and cloned once per thread: a BreakIterator is not thread-safe,
// and a clone shares the immutable rule data.
std::unique_ptr<icu::BreakIterator> MakeSentencePrototype() {
  UErrorCode st = U_ZERO_ERROR;
  const icu::Locale& en = icu::Locale::getEnglish();
  std::unique_ptr<icu::BreakIterator> base(icu::BreakIterator::createSentenceInstance(en, st));
  // The locale's standard suppressions ("Mr.", "Prof.", "vs.", ...: ICU 72 ships lists for en,
  // de, es, fr, it, pt and ru; the text's language is unknown, so the English one).
  std::unique_ptr<icu::FilteredBreakIteratorBuilder> filter(icu::FilteredBreakIteratorBuilder::createInstance(en, st));
  if (U_FAILURE(st)) {
    std::fprintf(stderr, "kgflow: ICU sentence break data missing: %s\n", u_errorName(st));
    std::abort();  // libicu72 always carries it: a broken installation, not bad input
  }
  // Titles the ICU 72 English list lacks.
  for (const char* t : {"Dr.", "Jr.", "Sr.", "St.", "Gen.", "Sen.", "Gov.", "Pres.", "Mme.", "Messrs."}) {
    filter->suppressBreakAfter(icu::UnicodeString::fromUTF8(t), st);
  }
  std::unique_ptr<icu::BreakIterator> it(filter->wrapIteratorWithFilter(base.release(), st));
  if (U_FAILURE(st) || !it) {
    std::fprintf(stderr, "kgflow: ICU sentence break iterator: %s\n", u_errorName(st));
    std::abort();
  }
  return it;
}

std::unique_ptr<icu::BreakIterator> MakeWordPrototype() {
  UErrorCode st = U_ZERO_ERROR;
  // The root locale's word rules use the dictionaries for Han, Kana, Thai, Lao, Khmer, Burmese.
  std::unique_ptr<icu::BreakIterator> it(icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), st));
  if (U_FAILURE(st) || !it) {
    std::fprintf(stderr, "kgflow: ICU word break iterator: %s\n", u_errorName(st));
    std::abort();
  }
  return it;
}

// This thread's clone of `prototype`. Cloning is serialised: the prototype is shared.
std::unique_ptr<icu::BreakIterator> Clone(const icu::BreakIterator& prototype) {
  static Mutex mu;
  MutexLock lock(mu);
  return std::unique_ptr<icu::BreakIterator>(prototype.clone());
}

icu::BreakIterator& SentenceIterator() {
  static const std::unique_ptr<icu::BreakIterator> prototype = MakeSentencePrototype();
  thread_local const std::unique_ptr<icu::BreakIterator> mine = Clone(*prototype);
  return *mine;
}

icu::BreakIterator& WordIterator() {
  static const std::unique_ptr<icu::BreakIterator> prototype = MakeWordPrototype();
  thread_local const std::unique_ptr<icu::BreakIterator> mine = Clone(*prototype);
  return *mine;
}

// UTF-8 text for ICU without a copy into UTF-16: break positions are byte offsets.
class Utf8Text {
 public:
  explicit Utf8Text(std::string_view s) { utext_openUTF8(&ut_, s.data(), static_cast<int64_t>(s.size()), &status_); }
  ~Utf8Text() { utext_close(&ut_); }
  Utf8Text(const Utf8Text&) = delete;
  Utf8Text& operator=(const Utf8Text&) = delete;
  // Points `it` at the text; false when ICU refused it.
  bool Attach(icu::BreakIterator& it) {
    if (U_SUCCESS(status_)) it.setText(&ut_, status_);
    return U_SUCCESS(status_);
  }

 private:
  UText ut_ = UTEXT_INITIALIZER;
  UErrorCode status_ = U_ZERO_ERROR;
};

// ICU ends a sentence at every line break, but prose is often wrapped at a fixed width: a
// line break alone is shown to ICU as a space (same bytes count, so offsets hold), and only a
// blank line (two line breaks with nothing but white space between) ends a sentence.
std::string LoneLineBreaksAsSpaces(std::string_view text) {
  std::string shown(text);
  size_t i = 0;
  while (i < text.size()) {
    unsigned char byte = static_cast<unsigned char>(text[i]);
    if (byte > ' ' && byte < 0x80) {  // most of any text: no decoding needed
      ++i;
      continue;
    }
    size_t next = i;
    if (!IsSpace(DecodeUtf8(text, next))) {
      i = next;
      continue;
    }
    size_t run_end = i, newlines = 0;  // the run of white space [i, run_end)
    for (size_t k = i; k < text.size();) {
      size_t at = k;
      if (!IsSpace(DecodeUtf8(text, k))) break;
      if (text[at] == '\n') ++newlines;
      run_end = k;
    }
    if (newlines < 2) {
      for (size_t k = i; k < run_end; ++k) {
        if (shown[k] == '\n' || shown[k] == '\r') shown[k] = ' ';
      }
    }
    i = run_end;
  }
  return shown;
}

// Whether the sentence `s[b, e)` ends in initials ("U.S.", "e.g.", "J."). ICU 72's filter
// checks only the word before a break against its list, so neither an abbreviation with inner
// full stops ("U.S." is listed but not honoured) nor a single letter that begins one ("U.",
// "S.") suppresses anything. Initials are therefore taken as never ending a sentence.
bool EndsWithInitials(std::string_view s, size_t b, size_t e) {
  Span t = TrimSpan(s, b, e);
  size_t start = t.e;
  while (start > t.b && s[start - 1] > ' ' && s[start - 1] < 0x7F) --start;  // printable ASCII
  std::string_view tok = s.substr(start, t.e - start);
  if (tok.size() < 2 || tok.size() % 2 != 0) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  for (size_t k = 0; k < tok.size(); k += 2) {
    if (!alpha(tok[k]) || tok[k + 1] != '.') return false;
  }
  return tok.size() > 2 || (tok[0] >= 'A' && tok[0] <= 'Z');  // "a." alone may end a list item
}

// Sentences of `text` (at most 2 GiB: ICU's break positions are 32-bit) as trimmed, non-empty
// spans of `text`, in order, appended to `out` shifted by `base`.
void SentenceSpansOf(std::string_view text, size_t base, std::vector<Span>& out) {
  std::string shown = LoneLineBreaksAsSpaces(text);
  Utf8Text ut(shown);
  icu::BreakIterator& it = SentenceIterator();
  size_t start = 0;
  auto emit = [&](size_t end) {
    Span t = TrimSpan(text, start, end);
    if (t.b < t.e) out.push_back({base + t.b, base + t.e});
    start = end;
  };
  if (ut.Attach(it)) {
    for (int32_t b = it.next(); b != icu::BreakIterator::DONE; b = it.next()) {
      size_t end = static_cast<size_t>(b);
      if (end >= text.size()) break;
      Span t = TrimSpan(text, start, end);
      bool blank_line = std::string_view(shown).substr(t.e, end - t.e).find('\n') != std::string_view::npos;
      if (!blank_line && EndsWithInitials(text, start, end)) continue;
      emit(end);
    }
  }
  emit(text.size());
}

// Sentences of `text` as trimmed, non-empty spans, in order. A text over 1 GiB is read in
// windows ending at a blank line where there is one.
std::vector<Span> SentenceSpans(std::string_view text) {
  constexpr size_t kWindow = size_t{1} << 30;
  std::vector<Span> out;
  size_t base = 0;
  while (text.size() - base > kWindow) {
    std::string_view rest = text.substr(base, kWindow);
    size_t cut = rest.rfind("\n\n");
    if (cut == std::string_view::npos || cut == 0) {
      cut = kWindow;
      while (cut > 0 && (static_cast<unsigned char>(rest[cut]) & 0xC0) == 0x80) --cut;  // a code point's start
    }
    SentenceSpansOf(rest.substr(0, cut), base, out);
    base += cut;
  }
  SentenceSpansOf(text.substr(base), base, out);
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

std::vector<SentenceSpan> FindSentences(std::string_view text) {
  std::vector<SentenceSpan> out;
  for (const Span& sp : SentenceSpans(text)) out.push_back({sp.b, sp.e - sp.b});
  return out;
}

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

std::vector<std::string_view> WordSegments(std::string_view text) {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  Utf8Text ut(text);
  icu::BreakIterator& it = WordIterator();
  if (!ut.Attach(it)) return out;
  int32_t start = it.first();
  for (int32_t end = it.next(); end != icu::BreakIterator::DONE; start = end, end = it.next()) {
    // Rule status below UBRK_WORD_NONE_LIMIT: white space, punctuation, symbols.
    if (it.getRuleStatus() >= UBRK_WORD_NONE_LIMIT) out.push_back(text.substr(start, end - start));
  }
  return out;
}

std::string NormalizeName(std::string_view name) {
  UErrorCode st = U_ZERO_ERROR;
  // Owned by ICU, built once, safe to share between threads.
  static const icu::Normalizer2* const kFold = icu::Normalizer2::getNFKCCasefoldInstance(st);
  if (kFold == nullptr) {
    std::fprintf(stderr, "kgflow: ICU NFKC_Casefold data missing: %s\n", u_errorName(st));
    std::abort();  // libicu72 always carries it
  }
  // Invalid UTF-8 becomes U+FFFD on the way in.
  icu::UnicodeString folded =
      kFold->normalize(icu::UnicodeString::fromUTF8(icu::StringPiece(name.data(), static_cast<int32_t>(name.size()))), st);
  std::string out;
  if (U_FAILURE(st)) return out;
  bool space = false;
  for (int32_t i = 0; i < folded.length();) {
    UChar32 c = folded.char32At(i);
    i += U16_LENGTH(c);
    if (u_isUWhiteSpace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    AppendUtf8(out, static_cast<char32_t>(c));
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
