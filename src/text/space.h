#pragma once
// The white space ChunkText trims around sentences and pieces and counts in the gaps between
// them; shared by text.cc and the streaming chunker (stream.cc) so that both cut alike.
// Internal to kg_text: not part of its interface.

namespace kg::text_internal {

inline bool IsChunkSpace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x3000 || c == 0xA0;
}

}  // namespace kg::text_internal
