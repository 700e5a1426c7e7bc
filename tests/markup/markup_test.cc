#include "markup/markup.h"

#include <gtest/gtest.h>

namespace kg::markup {
namespace {

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Verifies Markdown keeps the prose and drops emphasis markers, link targets, headings' hashes
// and images, and that separate blocks end up on separate lines.
TEST(Markup, MarkdownKeepsTextDropsMarkers) {
  std::string out = *MarkdownToText(
      "# Meridian Analytics\n\n"
      "**Meridian** was *founded* by [Ana Lund](https://example.com/ana) in Oslo.\n"
      "It hired `Tomas`.\n\n"
      "![logo](logo.png)\n\n"
      "- Orbital Freight\n- Helix Labs\n");
  EXPECT_EQ(out,
            "Meridian Analytics\n\n"
            "Meridian was founded by Ana Lund in Oslo. It hired Tomas.\n\n"
            "Orbital Freight\nHelix Labs\n");
}

// Verifies a GitHub table loses its pipes and rule, each row its own line, cells apart.
TEST(Markup, MarkdownTableBecomesRowsOfCells) {
  std::string out = *MarkdownToText(
      "Before the table.\n\n| Company | City |\n|---|:---:|\n| Meridian | Oslo |\n| Helix | Rotterdam |\n\nAfter.\n");
  EXPECT_FALSE(Has(out, "|")) << out;
  EXPECT_FALSE(Has(out, "---")) << out;
  EXPECT_EQ(out, "Before the table.\n\nCompany\tCity\nMeridian\tOslo\nHelix\tRotterdam\n\nAfter.\n");
}

// Verifies raw HTML inside Markdown is stripped as HTML and entities are decoded.
TEST(Markup, MarkdownRawHtmlAndEntities) {
  std::string out = *MarkdownToText("AT&amp;T bought <b>Helix</b>.\n\n<div>Inside a <i>block</i>.</div>\n");
  EXPECT_EQ(out, "AT&T bought Helix.\n\nInside a block.\n");
}

// Verifies HTML keeps visible text, drops scripts, styles, the head and comments, decodes
// entities, and breaks lines at block elements so sentences do not run together.
TEST(Markup, HtmlKeepsVisibleText) {
  std::string out = *HtmlToText(
      "<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style></head><body>"
      "<script>var x = 'Evil Corp';</script><!-- Hidden Person -->"
      "<h1>Caf&eacute; &amp; Co</h1><p>Ana Lund founded <a href=\"https://x.example\">Meridian</a>"
      "</p><p>It is in   Oslo.</p><div>Line one<br>Line two</div>"
      "<table><tr><th>Company</th><th>City</th></tr><tr><td>Helix</td><td>Rotterdam</td></tr></table>"
      "</body></html>");
  EXPECT_FALSE(Has(out, "Evil")) << out;
  EXPECT_FALSE(Has(out, "Hidden")) << out;
  EXPECT_FALSE(Has(out, "color")) << out;
  EXPECT_FALSE(Has(out, "x.example")) << out;
  EXPECT_FALSE(Has(out, "<")) << out;
  EXPECT_EQ(out,
            "Café & Co\n\nAna Lund founded Meridian\n\nIt is in Oslo.\n\nLine one\nLine two\n\n"
            "Company\tCity\nHelix\tRotterdam\n");
}

// Verifies broken HTML is read as a browser would, not refused, and nothing of it is lost.
TEST(Markup, HtmlRecoversFromBrokenMarkup) {
  std::string out = *HtmlToText("<p>Unclosed <b>bold<p>Second &lt;para&gt; &#8212; done");
  EXPECT_EQ(out, "Unclosed bold\n\nSecond <para> \xE2\x80\x94 done\n");
}

// Verifies plain text passes through untouched and format names parse.
TEST(Markup, TextIsUnchangedAndFormatsParse) {
  EXPECT_EQ(*ToText("a <b> | c", Format::kText), "a <b> | c");
  Format f{};
  EXPECT_TRUE(ParseFormat("html", &f));
  EXPECT_EQ(f, Format::kHtml);
  EXPECT_TRUE(ParseFormat("markdown", &f));
  EXPECT_EQ(f, Format::kMarkdown);
  EXPECT_FALSE(ParseFormat("pdf", &f));
}

// Verifies a table row that would cost cmark-gfm's table extension quadratic time (40 KB
// of '|', 7.5 s per row on Debian's cmark-gfm 0.29.0.gfm.6, minutes for a few rows) is read
// without the table extension: the parse ends (ctest's timeout is the bound), and the text
// before and after it is kept.
TEST(Markup, MarkdownLongTableRowIsNotQuadratic) {
  std::string row(40 * 1024, '|');
  std::string md = "Lead text.\n\na|b\n-|-\n";
  for (int i = 0; i < 4; ++i) md += row + "\n";
  md += "\nTAILMARKER after the table.\n";
  auto out = MarkdownToText(md);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(Has(*out, "Lead text.")) << out->substr(0, 200);
  EXPECT_TRUE(Has(*out, "TAILMARKER after the table.")) << out->substr(out->size() - 200);
  EXPECT_TRUE(Has(*out, row)) << "the row's pipes stay as text";
}

// Verifies a table of many short rows (cmark-gfm's table cost grows faster than its size:
// 3 MB of a 10-column table took 6 s) is read without tables too, keeping every cell's text.
TEST(Markup, MarkdownHugeTableKeepsItsText) {
  std::string md = "| a | b | c | d | e | f | g | h | i | j |\n|-|-|-|-|-|-|-|-|-|-|\n";
  for (int i = 0; i < 100000; ++i) md += "| w | w | w | w | w | w | w | w | w | w |\n";
  md += "| LASTCELL | x | x | x | x | x | x | x | x | x |\n";
  auto out = MarkdownToText(md);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(Has(*out, "| LASTCELL |")) << "read as text, pipes kept";
}

// Verifies a text node over libxml2's 10,000,000-byte default limit does not end the
// document: the paragraph after a 12 MB <pre> is kept.
TEST(Markup, HtmlHugeTextNodeKeepsTheRest) {
  std::string html = "<pre>" + std::string(12 * 1024 * 1024, 'a') + "</pre><p>TAILMARKER</p>";
  auto out = HtmlToText(html);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(Has(*out, "TAILMARKER"));
  EXPECT_EQ(out->size(), 12u * 1024 * 1024 + 2 + 10 + 1);  // the <pre> text, a blank line, the tail, newline
}

// Verifies text nested deeper than libxml2's default 256 levels (and deeper than a
// recursive walk's stack would like) is all kept.
TEST(Markup, HtmlDeepNestingKeepsText) {
  for (int depth : {300, 100000}) {
    std::string html = "<p>Lead.</p>";
    for (int i = 0; i < depth; ++i) html += "<div>";
    html += "DEEPTEXT";
    for (int i = 0; i < depth; ++i) html += "</div>";
    html += "<p>TAILMARKER</p>";
    auto out = HtmlToText(html);
    ASSERT_TRUE(out.ok()) << depth << ": " << out.status().message();
    EXPECT_EQ(*out, "Lead.\nDEEPTEXT\n\nTAILMARKER\n") << depth;  // libxml2 nests the divs in the <p>
  }
}

}  // namespace
}  // namespace kg::markup
