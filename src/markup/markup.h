#pragma once
// Markup to plain text before chunking, so tags, table borders, link targets and emphasis
// markers never reach an extractor (they became entities: "| Company |", "<div>").
//
// Kept: the text a reader sees, entities decoded. Dropped: tags, <script>, <style>, <head>
// and comments (HTML); emphasis markers, link and image targets, table pipes and rules,
// raw HTML (Markdown; raw HTML inside Markdown goes through the HTML path). Block elements
// (paragraphs, headings, list items, table rows, <br>, ...) end with a line break and
// paragraphs with a blank line, so sentences of different blocks do not run together;
// table cells are separated by a tab, not by pipes.
//
// Markdown is parsed by cmark-gfm (CommonMark with the GitHub table, strikethrough and
// autolink extensions), HTML by libxml2's error-tolerant HTML parser. Both recover from
// broken markup. A Markdown document whose tables would cost cmark-gfm quadratic time (a
// line with over 256 pipes, over 100,000 pipes in all) is read without the table extension:
// its pipes stay in the text. Failure: kInvalidArgument when the HTML parser stops before
// the end of the document (a truncated text would silently lose the rest); never a prefix.
// Input is expected to be UTF-8 (the caller checks it is text). Thread safety: may be
// called from any thread.

#include <string>
#include <string_view>

#include "common/status.h"

namespace kg::markup {

enum class Format { kText, kMarkdown, kHtml };

// "text", "markdown", "html" (as the API's `format` field); false for anything else.
bool ParseFormat(std::string_view name, Format* out);

Result<std::string> MarkdownToText(std::string_view markdown);
Result<std::string> HtmlToText(std::string_view html);

// The plain text of `input` in `format` (kText returns it unchanged).
Result<std::string> ToText(std::string_view input, Format format);

}  // namespace kg::markup
