#pragma once
// The extraction prompt: a versioned text file users can read and override per provider
// (`prompt_file` in a [providers.NAME] table). The default, prompts/extract.md in the
// repository, is compiled into the binary, so a node needs no file at run time.
//
// File format (docs/providers.md): a first line `version: NAME`, then a line `--- system`
// followed by the system message, then a line `--- user` followed by the user message, in
// which `{{text}}` stands for the chunk and `{{entity_types}}` for the canonical type list.
// The version that keys the response cache is NAME plus the first 8 hex digits of the
// SHA-256 of the whole file, so any edit of a prompt invalidates what it cached.

#include <string>
#include <vector>

#include "common/status.h"

namespace kg::llm {

// Entity types an extraction may use, whatever the language of the text; the parser maps
// synonyms and other languages onto them ("人物", "person", "PER" -> "Person") and anything
// else onto "Other".
const std::vector<std::string>& CanonicalEntityTypes();

struct Prompt {
  std::string version;  // "NAME+hash8"
  std::string system;
  std::string user_template;
  // The user message for `text` (the placeholders replaced; `text` is inserted verbatim).
  std::string UserMessage(const std::string& text) const;
  // The corrective re-ask sent after unusable output: says what was wrong (`problem`, e.g.
  // "the output was not valid JSON: ...") and asks for the JSON object only.
  std::string CorrectionMessage(const std::string& problem) const;
};

// The compiled-in default prompt.
const Prompt& DefaultPrompt();
// Parses a prompt file's contents; kInvalidArgument says what is missing (`where` names the file).
Result<Prompt> ParsePrompt(const std::string& contents, const std::string& where);
// Reads and parses `path`; kInvalidArgument names the path and the OS error.
Result<Prompt> LoadPrompt(const std::string& path);

}  // namespace kg::llm
