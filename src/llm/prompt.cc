#include "llm/prompt.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "common/util.h"

namespace kg::llm {

namespace internal {
// default_prompt.cc, generated from prompts/extract.md by embed_prompt.cmake.
extern const char kDefaultPromptText[];
extern const std::size_t kDefaultPromptText_size;
}  // namespace internal

namespace {

constexpr std::string_view kTextPlaceholder = "{{text}}";
constexpr std::string_view kTypesPlaceholder = "{{entity_types}}";

std::string_view TrimWhitespace(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string_view TrimRight(std::string_view s) {
  size_t e = s.find_last_not_of(" \t\r");
  return e == std::string_view::npos ? std::string_view{} : s.substr(0, e + 1);
}

const std::string& EntityTypeList() {
  static const std::string list = [] {
    std::string out;
    for (const auto& t : CanonicalEntityTypes()) {
      if (!out.empty()) out += ", ";
      out += t;
    }
    return out;
  }();
  return list;
}

}  // namespace

const std::vector<std::string>& CanonicalEntityTypes() {
  static const std::vector<std::string> types = {"Person",     "Organization", "Location",
                                                 "Product",    "Event",        "Concept",
                                                 "Technology", "Work",         "Other"};
  return types;
}

std::string Prompt::UserMessage(const std::string& text) const {
  // One pass over the template: the chunk is inserted verbatim and never scanned again, so a
  // chunk containing "{{text}}" is not expanded a second time.
  std::string out;
  out.reserve(user_template.size() + text.size() + EntityTypeList().size());
  std::string_view t = user_template;
  size_t i = 0;
  while (i < t.size()) {
    size_t open = t.find("{{", i);
    if (open == std::string_view::npos) {
      out.append(t.substr(i));
      break;
    }
    out.append(t.substr(i, open - i));
    std::string_view rest = t.substr(open);
    if (rest.starts_with(kTextPlaceholder)) {
      out += text;
      i = open + kTextPlaceholder.size();
    } else if (rest.starts_with(kTypesPlaceholder)) {
      out += EntityTypeList();
      i = open + kTypesPlaceholder.size();
    } else {
      out += "{{";
      i = open + 2;
    }
  }
  return out;
}

std::string Prompt::CorrectionMessage(const std::string& problem) const {
  return "Your previous reply could not be used: " + problem +
         "\nReply again for the same text with exactly one JSON object "
         "{\"entities\":[...],\"relations\":[...]} as specified, and nothing else: no prose, no "
         "markdown, "
         "no code fence.";
}

Result<Prompt> ParsePrompt(const std::string& contents, const std::string& where) {
  auto fail = [&](const std::string& what) {
    return Status::Invalid("prompt " + where + ": " + what);
  };
  std::string_view all = contents;
  if (all.starts_with("\xEF\xBB\xBF")) all.remove_prefix(3);  // a UTF-8 byte order mark

  // Split into lines, remembering where each starts, so sections keep their text byte for byte.
  struct Line {
    std::string_view text;  // without the line end
    size_t next;            // offset just past the line end
  };
  auto line_at = [&](size_t pos) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string_view::npos) return Line{all.substr(pos), all.size()};
    return Line{all.substr(pos, nl - pos), nl + 1};
  };

  Line first = line_at(0);
  std::string_view head = TrimRight(first.text);
  constexpr std::string_view kVersion = "version:";
  if (!head.starts_with(kVersion)) return fail("the first line must be 'version: NAME'");
  std::string name(TrimWhitespace(head.substr(kVersion.size())));
  if (name.empty()) return fail("the version line names no version ('version: NAME')");
  if (name.find_first_of(" \t") != std::string::npos)
    return fail("the version name '" + name + "' has blanks");

  size_t system_start = std::string_view::npos, system_end = 0, user_start = std::string_view::npos;
  size_t pos = first.next;
  while (pos < all.size()) {
    Line l = line_at(pos);
    std::string_view marker = TrimRight(l.text);
    if (marker == "--- system") {
      if (system_start != std::string_view::npos) return fail("a second '--- system' line");
      if (user_start != std::string_view::npos)
        return fail("'--- system' must come before '--- user'");
      system_start = l.next;
    } else if (marker == "--- user") {
      if (system_start == std::string_view::npos)
        return fail("'--- user' before any '--- system' line");
      if (user_start != std::string_view::npos) return fail("a second '--- user' line");
      system_end = pos;
      user_start = l.next;
    } else if (system_start == std::string_view::npos && !TrimWhitespace(l.text).empty()) {
      return fail("text before the '--- system' line");
    }
    pos = l.next;
  }
  if (system_start == std::string_view::npos) return fail("no '--- system' line");
  if (user_start == std::string_view::npos) return fail("no '--- user' line");

  Prompt p;
  p.system = std::string(TrimWhitespace(all.substr(system_start, system_end - system_start)));
  p.user_template = std::string(TrimWhitespace(all.substr(std::min(user_start, all.size()))));
  if (p.system.empty()) return fail("the system message is empty");
  if (p.user_template.empty()) return fail("the user message is empty");
  if (p.user_template.find(kTextPlaceholder) == std::string::npos) {
    return fail("the user message has no {{text}} placeholder for the chunk");
  }
  p.version = name + "+" + Sha256Hex(contents).substr(0, 8);
  return p;
}

Result<Prompt> LoadPrompt(const std::string& path) {
  auto os_error = [&](int err) {
    return Status::Invalid("read prompt file " + path + ": " + std::strerror(err));
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return os_error(errno);
  std::string contents;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(errno);
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
  }
  return ParsePrompt(contents, path);
}

const Prompt& DefaultPrompt() {
  static const Prompt prompt = [] {
    std::string text(internal::kDefaultPromptText, internal::kDefaultPromptText_size);
    Result<Prompt> p = ParsePrompt(text, "prompts/extract.md (compiled in)");
    if (!p.ok()) {
      // The build embedded a file it cannot parse: a broken invariant, not a runtime condition.
      std::fprintf(stderr, "fatal: %s\n", p.status().message().c_str());
      std::abort();
    }
    return *std::move(p);
  }();
  return prompt;
}

}  // namespace kg::llm
