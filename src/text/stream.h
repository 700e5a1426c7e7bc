#pragma once
// CheckText, SanitizeUtf8 and ChunkText for a text that arrives in pieces (an upload read as it
// comes), each giving exactly what its whole-text form gives for the concatenation of the
// pieces, whatever the piece boundaries, while holding only a bounded window of the text.
//
// Thread safety: an object is used by one thread at a time (it may move between threads).

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "text/text.h"

namespace kg {

// CheckText's verdict and SanitizeUtf8's bytes over pieces of raw text. A sequence split
// across pieces is held back until it is complete (it is not a U+FFFD); one still incomplete
// at Finish is replaced as SanitizeUtf8 replaces it at the end of a text.
class Utf8Stream {
 public:
  // Checks the next raw piece and appends its sanitised bytes to `out` (all but an incomplete
  // sequence at its end). A NUL byte fails at once with CheckText's message and offset (in the
  // whole text); CheckText's other rules are shares of the whole text, decided by Finish.
  // After a failure every call returns it again.
  Status Add(std::string_view piece, std::string& out);
  // Ends the text: appends the held bytes' replacement to `out` and returns CheckText's
  // verdict on the whole text.
  Status Finish(std::string& out);
  // Raw bytes given so far.
  size_t bytes() const { return bytes_; }

 private:
  // Decodes `s` (raw bytes [base, base + s.size()) of the text) and appends the sanitised form
  // to `out`; stops before an incomplete sequence at the end unless `last`. Returns the bytes
  // consumed, or the NUL failure.
  Result<size_t> Decode(std::string_view s, size_t base, bool last, std::string& out);

  std::string carry_;  // an incomplete sequence at the end of the last piece (at most 3 bytes)
  size_t bytes_ = 0;
  size_t invalid_ = 0, controls_ = 0, points_ = 0, first_invalid_ = 0, first_control_ = 0;
  Status failed_;
};

// ChunkText over pieces of sanitised text. Chunks are handed out as soon as they are final
// (ChunkText would cut them the same whatever text follows), with offsets in the whole text.
//
// Memory: the text from the next chunk's start (or the sentence being read, if earlier) to
// the end is held, plus up to `step` bytes of new text between passes. A pass re-reads what is
// held, so `step` trades memory for time. Not bounded only for texts where a boundary truly
// depends on far-away text: ICU keeps "etc. 1 2 3 ... and" one sentence however many letterless
// bytes sit before the lower-case word; a single word of megabytes is held whole too.
class ChunkStream {
 public:
  static constexpr size_t kDefaultStep = size_t{256} << 10;
  explicit ChunkStream(const ChunkOptions& options, size_t step = kDefaultStep);

  // `text`: the next piece, valid UTF-8 ending on a code point boundary (Utf8Stream's output).
  // Appends the chunks that became final to `out`.
  void Add(std::string_view text, std::vector<Chunk>& out);
  // Ends the text: appends the remaining chunks to `out`. The stream takes no more text.
  void Finish(std::vector<Chunk>& out);
  // Bytes of text held now (the window).
  size_t buffered_bytes() const { return window_.size(); }

 private:
  struct Piece {
    size_t b = 0, e = 0;  // [b, e) in the whole text, trimmed
    size_t cps = 0;       // code points in it
    size_t gap = 0;       // code points of white space since the previous piece
  };
  void Pass(bool last, std::vector<Chunk>& out);
  // Positions up to which ICU's sentence boundaries in the window are those of the whole text.
  size_t SettledLimit() const;
  // The end of the last non-space code point that starts in [from, limit); `from` if none.
  size_t CutLimit(size_t from, size_t limit) const;
  // Cuts pieces of the long sentence being read from long_cursor_, as ChunkText's CutLong
  // does, up to `stop`: its trimmed end when `final`, else a point it surely extends past.
  void CutLongUpTo(size_t stop, bool final);
  void AddPiece(size_t b, size_t e);
  void Pack(bool last, std::vector<Chunk>& out);
  // Moves seg_from_ to a later point the sentence scan may restart from, when there is one.
  void Advance(size_t next_sentence);
  bool CleanLeft(size_t at) const;
  bool Neutral(size_t at) const;
  char32_t CodePointAt(size_t at, size_t* next) const;
  size_t PreviousStart(size_t at) const;  // start of the code point that ends at `at`

  size_t size_, overlap_, step_;
  std::string window_;       // the text [base_, base_ + window_.size())
  size_t base_ = 0;
  size_t next_pass_at_;      // window size that triggers the next pass
  size_t seg_from_ = 0;      // where the sentence scan restarts (see Advance)
  size_t frontier_ = 0;      // sentences ending at or before it are made into pieces
  bool in_long_ = false;     // reading a sentence longer than a chunk, piece by piece
  size_t long_start_ = 0, long_cursor_ = 0;  // its start; where its next piece starts
  std::deque<Piece> pieces_;  // from the next chunk's first piece on
  bool has_piece_ = false;
  size_t last_piece_end_ = 0;
  bool has_chunk_ = false;
  size_t previous_end_ = 0;  // end of the last chunk handed out
  bool finished_ = false;
};

}  // namespace kg
