#pragma once
// Tolerant reading of an LLM's extraction output, then validation record by record.
//
// Accepted: one JSON object {"entities":[{"name","type","description"}],
// "relations":[{"source","target","type","description"}]}, possibly wrapped in a code fence,
// preceded by a <think>...</think> block (or an unclosed one cut by the token limit), surrounded
// by prose, with trailing commas, or with a few known field aliases ("head"/"tail", "relation",
// "label") that models use. Records are checked one by one: a record with no name, a relation
// whose ends are not among the extracted entities, a non-string where a string belongs, is
// dropped and counted; the rest is kept. Types are normalised onto CanonicalEntityTypes() for
// entities and to UPPER_SNAKE_CASE for relations.
//
// Further: "relationships" is read as "relations"; a relation end may be an object {"name": ...};
// names are trimmed with blanks collapsed, and an entity named twice (ignoring ASCII case) is
// merged (first name and type, longest description), not counted as dropped; an "entities" array
// whose every record is unusable is kWrongSchema, not nothing found; with finish_reason "length",
// output holding no complete object is kTruncated.
//
// Pure functions; thread-safe.

#include <string>
#include <string_view>

#include "common/status.h"
#include "provider/extraction.h"

namespace kg::llm {

enum class OutputProblem {
  kNone,
  kEmpty,        // blank content (e.g. DeepSeek JSON mode blanks non-JSON output)
  kNotJson,      // no JSON object could be read
  kTruncated,    // the object is cut off (finish_reason "length", or unbalanced at the end)
  kWrongSchema,  // JSON, but not the object asked for (no "entities" array, ...)
};
const char* OutputProblemName(OutputProblem p);

struct ParsedOutput {
  OutputProblem problem = OutputProblem::kNone;
  // For a problem: what was wrong, for the corrective re-ask and the dead-letter reason, with a
  // snippet of the output (at most ~200 bytes, valid UTF-8, control characters escaped).
  std::string detail;
  Extraction extraction;  // the valid records (empty on a problem)
  int dropped_records = 0;
  // Valid JSON holding zero entities (a chunk with nothing to extract): a success, distinct from
  // any problem above. An empty result is never made up from unusable output.
  bool nothing_found = false;
};

// `finish_reason` as the API reported it ("stop", "length", ...; empty if unknown). `chunk` is the
// text the output was extracted from: a relation's optional "evidence" quote becomes its
// ExtractedRelation::sentence only when it occurs verbatim in `chunk` (else it is left empty).
// Relation ends take the types of the entities they name.
ParsedOutput ParseExtractionOutput(std::string_view content, std::string_view finish_reason, std::string_view chunk);

// At most `max_bytes` of `text` cut at a UTF-8 boundary, newlines and control characters
// escaped, "..." appended when cut: for error messages and logs.
std::string Snippet(std::string_view text, size_t max_bytes = 200);

}  // namespace kg::llm
