#include "markup/markup.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm-extension_api.h>
#include <cmark-gfm.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

namespace kg::markup {
namespace {

// Appends line breaks so the output ends with at least `n` of them (none at the start).
void Break(std::string* out, int n) {
  if (out->empty()) return;
  int have = 0;
  for (auto it = out->rbegin(); it != out->rend() && *it == '\n'; ++it) ++have;
  // Spaces before a break are noise.
  while (have == 0 && !out->empty() && (out->back() == ' ' || out->back() == '\t')) out->pop_back();
  for (; have < n; ++have) out->push_back('\n');
}

// A separator between inline runs of different cells or elements.
void Space(std::string* out, char c) {
  if (!out->empty() && out->back() != '\n' && out->back() != ' ' && out->back() != '\t') out->push_back(c);
}

// Trailing breaks and spaces off, one final newline.
std::string Finish(std::string out) {
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t')) out.pop_back();
  if (!out.empty()) out.push_back('\n');
  return out;
}

// ---- Markdown ----

struct ParserDeleter {
  void operator()(cmark_parser* p) const { cmark_parser_free(p); }
};
struct NodeDeleter {
  void operator()(cmark_node* n) const { cmark_node_free(n); }
};
struct IterDeleter {
  void operator()(cmark_iter* i) const { cmark_iter_free(i); }
};

std::string_view TypeName(cmark_node* n) {
  const char* s = cmark_node_get_type_string(n);
  return s ? s : "";
}

// Debian's cmark-gfm 0.29.0.gfm.6 table extension costs time quadratic in the cells of a
// row and more than linear in the cells of a table (a 40 KB row of '|' took 7.5 s; a 3 MB
// table of 10 columns 6 s). Measured on the build machine: 4,000 pipes in one row 0.23 s,
// 256 in one row under 1 ms, 100,000 cells in a table about 0.4 s. A document beyond
// these bounds is parsed without the table extension: its pipes then stay in the text,
// which loses no words.
constexpr size_t kMaxPipesPerLine = 256;
constexpr size_t kMaxPipes = 100000;

bool TablesAffordable(std::string_view markdown) {
  size_t total = 0, line = 0;
  for (char c : markdown) {
    if (c == '\n') {
      line = 0;
    } else if (c == '|') {
      if (++line > kMaxPipesPerLine || ++total > kMaxPipes) return false;
    }
  }
  return true;
}

}  // namespace

bool ParseFormat(std::string_view name, Format* out) {
  if (name == "text") *out = Format::kText;
  else if (name == "markdown") *out = Format::kMarkdown;
  else if (name == "html") *out = Format::kHtml;
  else return false;
  return true;
}

Result<std::string> MarkdownToText(std::string_view markdown) {
  static std::once_flag registered;
  std::call_once(registered, [] { cmark_gfm_core_extensions_ensure_registered(); });
  std::unique_ptr<cmark_parser, ParserDeleter> parser(cmark_parser_new(CMARK_OPT_DEFAULT));
  const bool tables = TablesAffordable(markdown);
  for (const char* ext : {"table", "strikethrough", "autolink"}) {
    if (!tables && std::strcmp(ext, "table") == 0) continue;
    if (cmark_syntax_extension* e = cmark_find_syntax_extension(ext)) cmark_parser_attach_syntax_extension(parser.get(), e);
  }
  cmark_parser_feed(parser.get(), markdown.data(), markdown.size());
  std::unique_ptr<cmark_node, NodeDeleter> doc(cmark_parser_finish(parser.get()));
  std::unique_ptr<cmark_iter, IterDeleter> it(cmark_iter_new(doc.get()));
  std::string out;
  for (cmark_event_type ev; (ev = cmark_iter_next(it.get())) != CMARK_EVENT_DONE;) {
    cmark_node* n = cmark_iter_get_node(it.get());
    bool enter = ev == CMARK_EVENT_ENTER;
    auto literal = [&] {
      const char* s = cmark_node_get_literal(n);
      return std::string(s ? s : "");
    };
    switch (cmark_node_get_type(n)) {
      case CMARK_NODE_TEXT:
      case CMARK_NODE_CODE:
        out += literal();
        break;
      case CMARK_NODE_SOFTBREAK:
        Space(&out, ' ');
        break;
      case CMARK_NODE_LINEBREAK:
        Break(&out, 1);
        break;
      case CMARK_NODE_CODE_BLOCK:
        Break(&out, 2);
        out += literal();
        Break(&out, 2);
        break;
      case CMARK_NODE_HTML_BLOCK: {
        Break(&out, 2);
        KG_ASSIGN_OR_RETURN(std::string text, HtmlToText(literal()));
        out += text;
        Break(&out, 2);
        break;
      }
      case CMARK_NODE_HTML_INLINE:
        break;  // a lone tag (<b>, </span>): markup, not text
      case CMARK_NODE_IMAGE:
        // The alt text is a description for when the image is missing, not part of the prose.
        if (enter) cmark_iter_reset(it.get(), n, CMARK_EVENT_EXIT);
        break;
      case CMARK_NODE_PARAGRAPH: {
        // Items of a tight list are lines, not paragraphs.
        cmark_node* item = cmark_node_parent(n);
        cmark_node* list = item ? cmark_node_parent(item) : nullptr;
        bool tight = item && cmark_node_get_type(item) == CMARK_NODE_ITEM && list && cmark_node_get_list_tight(list);
        Break(&out, tight ? 1 : 2);
        break;
      }
      case CMARK_NODE_HEADING:
      case CMARK_NODE_BLOCK_QUOTE:
      case CMARK_NODE_LIST:
      case CMARK_NODE_THEMATIC_BREAK:
        Break(&out, 2);
        break;
      case CMARK_NODE_ITEM:
        Break(&out, 1);
        break;
      default: {
        std::string_view t = TypeName(n);
        if (t == "table" || t == "table_header" || t == "table_row") {
          Break(&out, t == "table" ? 2 : 1);
        } else if (t == "table_cell" && enter) {
          Space(&out, '\t');
        }
        break;  // emphasis, strong, links, strikethrough: their text comes as children
      }
    }
  }
  return Finish(std::move(out));
}

namespace {

// ---- HTML ----

bool Named(const xmlNode* n, const char* name) {
  return n->name && xmlStrcasecmp(n->name, reinterpret_cast<const xmlChar*>(name)) == 0;
}

bool Skipped(const xmlNode* n) {
  for (const char* s : {"script", "style", "head", "noscript", "template", "iframe", "object", "svg"}) {
    if (Named(n, s)) return true;
  }
  return false;
}

bool Block(const xmlNode* n) {
  static const std::set<std::string> kBlocks = {
      "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl",
      "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
      "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
      "tbody", "thead", "tfoot", "tr", "ul", "title", "option", "legend"};
  if (!n->name) return false;
  std::string name(reinterpret_cast<const char*>(n->name));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kBlocks.count(name) > 0;
}

bool Paragraph(const xmlNode* n) {
  for (const char* s : {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "ul", "ol", "dl",
                        "section", "article", "hr"}) {
    if (Named(n, s)) return true;
  }
  return false;
}

// Where an element the walk entered ends: the line breaks or cell separator it owes.
void Close(const xmlNode* n, int* pre_depth, std::string* out) {
  if (Named(n, "pre")) --*pre_depth;
  if (Block(n)) Break(out, Paragraph(n) ? 2 : 1);
  else if (Named(n, "td") || Named(n, "th")) Space(out, '\t');
}

// Text of the node list `first` and what is under it. HTML collapses runs of white space
// in text to one space (except in <pre>); the element structure gives the line breaks.
// Iterative (parent links, no stack), so any depth the parser built is walked whole.
void Walk(const xmlNode* first, std::string* out) {
  if (!first) return;
  const xmlNode* top = first->parent;
  int pre_depth = 0;
  for (const xmlNode* n = first; n;) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (const char* s = reinterpret_cast<const char*>(n->content)) {
        if (pre_depth > 0) {
          *out += s;
        } else {
          for (const char* p = s; *p; ++p) {
            char c = *p;
            if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f') {
              Space(out, ' ');
            } else {
              out->push_back(c);
            }
          }
        }
      }
    } else if (n->type == XML_ELEMENT_NODE && !Skipped(n)) {  // not comments, processing instructions
      if (Named(n, "br")) {
        Break(out, 1);
      } else {
        if (Block(n)) Break(out, Paragraph(n) ? 2 : 1);
        if (Named(n, "td") || Named(n, "th")) Space(out, '\t');
        if (Named(n, "pre")) ++pre_depth;
        if (n->children) {
          n = n->children;
          continue;
        }
        Close(n, &pre_depth, out);
      }
    }
    // On to the next sibling, closing each element left on the way up.
    while (n && !n->next) {
      n = n->parent;
      if (n == top) n = nullptr;
      else Close(n, &pre_depth, out);
    }
    if (n) n = n->next;
  }
}

struct DocDeleter {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};

}  // namespace

struct CtxtDeleter {
  void operator()(htmlParserCtxt* c) const { htmlFreeParserCtxt(c); }
};

Result<std::string> HtmlToText(std::string_view html) {
  if (html.empty()) return std::string();
  if (html.size() > static_cast<size_t>(INT_MAX)) return Status::Invalid("HTML document is larger than 2 GB");
  std::unique_ptr<htmlParserCtxt, CtxtDeleter> ctxt(htmlNewParserCtxt());
  if (!ctxt) return Status::Internal("HTML parser: out of memory");
  // XML_PARSE_HUGE: without it libxml2 stops at a text node over 10,000,000 bytes or an
  // element nested deeper than 256 and drops the rest; the request body limit bounds size.
  std::unique_ptr<xmlDoc, DocDeleter> doc(htmlCtxtReadMemory(
      ctxt.get(), html.data(), static_cast<int>(html.size()), nullptr, "UTF-8",
      HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED |
          HTML_PARSE_COMPACT | XML_PARSE_HUGE));
  // The recovering parser gives up only on what it cannot go past (a resource limit, no
  // memory); then what it built is a prefix of the document, and a prefix would lose text.
  const xmlError* err = xmlCtxtGetLastError(ctxt.get());
  if (ctxt->disableSAX || (err && err->level == XML_ERR_FATAL)) {
    std::string why = err && err->message ? err->message : "parser stopped";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return Status::Invalid("HTML could not be read to its end (" + why + ")");
  }
  if (!doc) return std::string();
  std::string out;
  Walk(xmlDocGetRootElement(doc.get()) ? doc->children : nullptr, &out);
  // Lines lose the spaces at their start that the collapsing left.
  std::string clean;
  clean.reserve(out.size());
  bool line_start = true;
  for (char c : out) {
    if (line_start && (c == ' ' || c == '\t')) continue;
    clean.push_back(c);
    line_start = c == '\n';
  }
  return Finish(std::move(clean));
}

Result<std::string> ToText(std::string_view input, Format format) {
  switch (format) {
    case Format::kMarkdown: return MarkdownToText(input);
    case Format::kHtml: return HtmlToText(input);
    case Format::kText: break;
  }
  return std::string(input);
}

}  // namespace kg::markup
