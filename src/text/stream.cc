#include "text/stream.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "text/space.h"

namespace kg {

using text_internal::IsChunkSpace;

// ---- Utf8Stream ----------------------------------------------------------------------------

namespace {

// The length a lead byte announces (DecodeUtf8's rule); 0 for a byte that leads nothing.
size_t SequenceLength(unsigned char c) {
  return (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
}

}  // namespace

Result<size_t> Utf8Stream::Decode(std::string_view s, size_t base, bool last, std::string& out) {
  size_t i = 0, run = 0;  // bytes [run, i) are copied verbatim when the run ends
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {  // most of any text
      ++i;
      ++points_;
      continue;
    }
    if (c == 0) {
      out.append(s.substr(run, i - run));
      return Status::Invalid("binary data: NUL byte at offset " + std::to_string(base + i));
    }
    if (c < 0x80) {
      if (c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && controls_++ == 0) first_control_ = base + i;
      ++i;
      ++points_;
      continue;
    }
    size_t len = SequenceLength(c);
    if (len > 0 && i + len > s.size() && !last) break;  // completed by the next piece
    size_t at = i;
    char32_t cp = DecodeUtf8(s, i);
    ++points_;
    if (cp == 0xFFFD && s.compare(at, i - at, "\xEF\xBF\xBD") != 0) {
      if (invalid_++ == 0) first_invalid_ = base + at;
      out.append(s.substr(run, at - run));
      AppendUtf8(out, 0xFFFD);
      run = i;
    }
  }
  out.append(s.substr(run, i - run));
  return i;
}

Status Utf8Stream::Add(std::string_view piece, std::string& out) {
  if (!failed_.ok()) return failed_;
  size_t base = bytes_ - carry_.size();
  bytes_ += piece.size();
  if (!carry_.empty()) {
    // Decode the held sequence with the piece's first bytes (enough to complete any sequence
    // that starts in it), then the rest of the piece on its own.
    size_t held = carry_.size();
    std::string joined = carry_ + std::string(piece.substr(0, std::min<size_t>(piece.size(), 4)));
    auto n = Decode(joined, base, false, out);
    if (!n.ok()) return failed_ = n.status();
    if (*n < held) {  // the piece ended before a held sequence did: all of it is in `joined`
      carry_ = joined.substr(*n);
      return Status::Ok();
    }
    carry_.clear();
    piece.remove_prefix(*n - held);
    base += *n;
  }
  auto n = Decode(piece, base, false, out);
  if (!n.ok()) return failed_ = n.status();
  carry_.assign(piece.substr(*n));
  return Status::Ok();
}

Status Utf8Stream::Finish(std::string& out) {
  if (!failed_.ok()) return failed_;
  auto n = Decode(carry_, bytes_ - carry_.size(), true, out);
  carry_.clear();
  if (!n.ok()) return failed_ = n.status();
  // CheckText's shares, on the whole text.
  size_t tolerated = std::max<size_t>(1, bytes_ / 1000);
  if (invalid_ > tolerated) {
    failed_ = Status::Invalid("not UTF-8 text: " + std::to_string(invalid_) + " invalid byte sequences (first at offset " +
                              std::to_string(first_invalid_) +
                              "); convert it to UTF-8 first (e.g. iconv -f latin1 -t utf-8)");
  } else if (controls_ * 100 > points_) {
    failed_ = Status::Invalid("binary data: " + std::to_string(controls_) + " control characters in " +
                              std::to_string(points_) + " (first at offset " + std::to_string(first_control_) + ")");
  }
  return failed_;
}

// ---- ChunkStream ---------------------------------------------------------------------------

namespace {

// Bytes given up before the point where ICU's reading may change, in case ICU reads further
// past a boundary than the rules below say (its suppression list checks "U.S.A." forwards from
// "U."). Defensive: no generated text in the tests needs it.
constexpr size_t kMargin = 256;
// How far back a restart point inside a long sentence is looked for (see Neutral).
constexpr size_t kNeutralSearch = 4096;

int SentenceBreakOf(char32_t c) { return u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_SENTENCE_BREAK); }

bool IsLetterOrDigit(int sb) { return sb == U_SB_UPPER || sb == U_SB_LOWER || sb == U_SB_OLETTER || sb == U_SB_NUMERIC; }

bool IsAsciiAlnum(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

}  // namespace

ChunkStream::ChunkStream(const ChunkOptions& o, size_t step)
    : size_(static_cast<size_t>(std::max(1, o.size))),
      overlap_(static_cast<size_t>(std::max(0, std::min(o.overlap, o.size / 2)))),
      step_(std::max<size_t>(step, 1)),
      next_pass_at_(step_) {}

char32_t ChunkStream::CodePointAt(size_t at, size_t* next) const {
  size_t i = at - base_;
  char32_t c = DecodeUtf8(window_, i);
  *next = i + base_;
  return c;
}

size_t ChunkStream::PreviousStart(size_t at) const {
  size_t i = at - base_ - 1;
  while (i > 0 && (static_cast<unsigned char>(window_[i]) & 0xC0) == 0x80) --i;
  return i + base_;
}

void ChunkStream::Add(std::string_view text, std::vector<Chunk>& out) {
  window_.append(text);
  if (window_.size() < next_pass_at_) return;
  Pass(false, out);
  // Doubling keeps the re-reading linear overall even when little of the window settles.
  next_pass_at_ = std::max(window_.size() + step_, 2 * window_.size());
}

void ChunkStream::Finish(std::vector<Chunk>& out) {
  if (finished_) return;
  Pass(true, out);
  finished_ = true;
  std::string().swap(window_);
}

// Which of ICU's boundaries in the window would hold whatever text follows. A boundary comes
// after a sentence terminator (., !, ?, 。, ...: ATerm and STerm) and its closing punctuation and
// spaces, or after a paragraph separator; whether there is one is decided by the text up to the
// next letter or terminator (UAX #29 SB8: "etc. 12 and" is one sentence, "etc. 12 And" two), the
// suppression list reads a few code points further, and a trailing run of white space may yet
// become a blank line. So everything before the last terminator that no letter follows, and
// before the trailing white space, is settled.
size_t ChunkStream::SettledLimit() const {
  size_t end = base_ + window_.size();
  size_t r0 = end, next = 0;
  while (r0 > seg_from_) {
    size_t q = PreviousStart(r0);
    if (!IsChunkSpace(CodePointAt(q, &next))) break;
    r0 = q;
  }
  size_t limit = r0;
  for (size_t p = r0; p > seg_from_;) {
    size_t q = PreviousStart(p);
    int sb = SentenceBreakOf(CodePointAt(q, &next));
    if (sb == U_SB_UPPER || sb == U_SB_LOWER || sb == U_SB_OLETTER) break;
    if (sb == U_SB_ATERM || sb == U_SB_STERM) {
      limit = q;
      break;
    }
    p = q;
  }
  return limit >= seg_from_ + kMargin ? limit - kMargin : seg_from_;
}

size_t ChunkStream::CutLimit(size_t from, size_t limit) const {
  size_t p = std::min(limit, base_ + window_.size()), next = 0;
  while (p > from) {
    size_t q = PreviousStart(p);
    if (!IsChunkSpace(CodePointAt(q, &next))) return next;
    p = q;
  }
  return from;
}

void ChunkStream::AddPiece(size_t b, size_t e) {
  // Trimmed as ChunkText's TrimSpan trims.
  size_t next = 0;
  while (b < e && IsChunkSpace(CodePointAt(b, &next))) b = next;
  while (e > b) {
    size_t q = PreviousStart(e);
    if (!IsChunkSpace(CodePointAt(q, &next))) break;
    e = q;
  }
  if (b >= e) return;
  std::string_view w(window_);
  Piece p{b, e, CodePointCount(w.substr(b - base_, e - b)), 0};
  if (has_piece_) p.gap = CodePointCount(w.substr(last_piece_end_ - base_, b - last_piece_end_));
  pieces_.push_back(p);
  has_piece_ = true;
  last_piece_end_ = e;
}

void ChunkStream::CutLongUpTo(size_t stop, bool final) {
  std::vector<size_t> starts;  // of the next size_ + 1 code points
  starts.reserve(size_ + 1);
  while (long_cursor_ < stop) {
    starts.clear();
    for (size_t i = long_cursor_; starts.size() <= size_ && i < stop;) {
      starts.push_back(i);
      CodePointAt(i, &i);
    }
    if (starts.size() <= size_) {  // the rest fits one piece, if the sentence ends at `stop`
      if (!final) return;
      AddPiece(long_cursor_, stop);
      long_cursor_ = stop;
      return;
    }
    // ChunkText's CutLong: `size_` code points, cut back to a space in their second half.
    size_t end = size_, cut = end;
    while (cut > size_ / 2 && window_[starts[cut] - base_] != ' ') --cut;
    if (cut > size_ / 2) end = cut;
    AddPiece(starts[0], starts[end]);
    long_cursor_ = starts[end];
  }
}

void ChunkStream::Pass(bool last, std::vector<Chunk>& out) {
  std::string_view scan = std::string_view(window_).substr(seg_from_ - base_);
  std::vector<SentenceSpan> spans = FindSentences(scan);
  size_t limit = last ? base_ + window_.size() : SettledLimit();
  size_t next_sentence = std::string::npos;  // the first sentence not yet made into pieces
  auto more_than_a_chunk = [&](size_t b, size_t e) {
    size_t n = 0;
    for (size_t i = b; i < e && n <= size_; ++n) CodePointAt(i, &i);
    return n > size_;
  };
  for (size_t k = 0; k < spans.size(); ++k) {
    size_t b = seg_from_ + spans[k].offset, e = b + spans[k].size;
    if (e <= frontier_) continue;  // made into pieces by an earlier pass
    // The boundary after this sentence is the whole text's when the next sentence starts
    // in the settled part.
    bool final = last || (k + 1 < spans.size() && seg_from_ + spans[k + 1].offset <= limit);
    if (!in_long_) {
      if (final && !more_than_a_chunk(b, e)) {
        AddPiece(b, e);
        frontier_ = e;
        continue;
      }
      if (!final && !more_than_a_chunk(b, CutLimit(b, limit))) {
        next_sentence = b;  // may still end short of a chunk: wait for more text
        break;
      }
      in_long_ = true;
      long_start_ = long_cursor_ = b;
    }
    if (final) {
      CutLongUpTo(e, true);
      in_long_ = false;
      frontier_ = e;
      continue;
    }
    CutLongUpTo(CutLimit(b, limit), false);
    break;
  }
  Pack(last, out);
  if (!last) Advance(next_sentence);
}

void ChunkStream::Pack(bool last, std::vector<Chunk>& out) {
  // ChunkText's packing: whole pieces while they fit, then back by up to `overlap_` code points
  // of trailing pieces (at least one piece forward). A chunk is final once a piece that does not
  // fit is known, or at the end.
  while (!pieces_.empty()) {
    size_t cps = pieces_[0].cps, j = 1;
    while (j < pieces_.size() && cps + pieces_[j].gap + pieces_[j].cps <= size_) {
      cps += pieces_[j].gap + pieces_[j].cps;
      ++j;
    }
    if (j == pieces_.size() && !last) return;
    Chunk c;
    c.offset = pieces_[0].b;
    c.text = window_.substr(c.offset - base_, pieces_[j - 1].e - c.offset);
    c.overlap = has_chunk_ && previous_end_ > c.offset ? previous_end_ - c.offset : 0;
    previous_end_ = pieces_[j - 1].e;
    has_chunk_ = true;
    out.push_back(std::move(c));
    if (j == pieces_.size()) {
      pieces_.clear();
      return;
    }
    size_t back = j, carried = 0;
    while (back > 1 && carried + pieces_[back - 1].cps <= overlap_) {
      carried += pieces_[back - 1].cps;
      --back;
    }
    pieces_.erase(pieces_.begin(), pieces_.begin() + static_cast<std::ptrdiff_t>(back));
  }
}

// Whether ICU's reading of the text after `at` depends on nothing before it, as far as the
// scan below needs: the character before it is white space or not ASCII, so that neither the
// suppression list (ASCII abbreviations, read backwards from a boundary) nor the initials rule
// (a run of printable ASCII) reach across it.
bool ChunkStream::CleanLeft(size_t at) const {
  if (at == 0) return true;
  unsigned char c = static_cast<unsigned char>(window_[at - base_ - 1]);
  return c <= ' ' || c >= 0x7F;
}

// A point inside a sentence (known to have no boundary there) from which a scan sees the same
// boundaries after it as a scan of the whole sentence: a letter or digit (so that no rule's
// context, a terminator with its closing marks and spaces, straddles it) with a clean left
// side, or inside a run of ASCII letters and digits longer than any abbreviation of the
// suppression list (which then cannot reach across it, and the initials rule sees two letters
// in a row either way).
bool ChunkStream::Neutral(size_t at) const {
  size_t next = 0;
  if (!IsLetterOrDigit(SentenceBreakOf(CodePointAt(at, &next)))) return false;
  if (CleanLeft(at)) return true;
  constexpr size_t kRun = 16;
  size_t i = at - base_;
  if (i == 0 || i + kRun > window_.size()) return false;
  for (size_t k = i - 1; k < i + kRun; ++k) {
    if (!IsAsciiAlnum(window_[k])) return false;
  }
  return true;
}

// The scan restarts at a sentence start of the whole text (its boundaries after that depend
// only on the text after it: ICU's rules restart at each boundary) or, inside a sentence longer
// than a chunk, at a neutral point before the next piece; then the text before the next chunk's
// first piece is dropped.
void ChunkStream::Advance(size_t next_sentence) {
  if (in_long_) {
    if (long_start_ > seg_from_ && CleanLeft(long_start_)) seg_from_ = long_start_;
    size_t floor = std::max(seg_from_, long_start_);
    size_t x = long_cursor_;
    for (size_t steps = 0; x > floor && steps < kNeutralSearch; ++steps) {
      if (Neutral(x)) {
        seg_from_ = x;
        break;
      }
      x = PreviousStart(x);
    }
  } else if (next_sentence != std::string::npos && next_sentence > seg_from_ && CleanLeft(next_sentence)) {
    seg_from_ = next_sentence;
  }
  size_t keep = seg_from_;
  if (!pieces_.empty()) keep = std::min(keep, pieces_.front().b);
  if (has_piece_) keep = std::min(keep, last_piece_end_);
  if (keep > base_) {
    window_.erase(0, keep - base_);
    base_ = keep;
  }
}

}  // namespace kg
