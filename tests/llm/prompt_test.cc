#include "llm/prompt.h"

#include <gtest/gtest.h>

#include <string>

#include "testing/testing.h"

namespace kg::llm {
namespace {

const char kMinimal[] =
    "version: test-v1\n"
    "--- system\n"
    "Extract things as JSON.\n"
    "--- user\n"
    "Types: {{entity_types}}\n"
    "Text:\n"
    "{{text}}\n";

std::string RepoPromptPath() { return kg::testing::SamplesDir() + "/../prompts/extract.md"; }

// Verifies the compiled-in prompt is prompts/extract.md byte for byte (same version hash) and
// says what the parser and the providers rely on.
TEST(PromptTest, DefaultIsTheRepositoryFile) {
  const Prompt& p = DefaultPrompt();
  Result<Prompt> file = LoadPrompt(RepoPromptPath());
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(p.version, file->version);
  EXPECT_EQ(p.system, file->system);
  EXPECT_EQ(p.user_template, file->user_template);
  EXPECT_TRUE(p.version.starts_with("extract-v1+")) << p.version;
  EXPECT_EQ(p.version.size(), std::string("extract-v1+").size() + 8);
  // DashScope's JSON mode refuses a request whose messages do not say "JSON".
  EXPECT_NE(p.system.find("JSON"), std::string::npos);
  EXPECT_NE(p.system.find("\"entities\""), std::string::npos);
  EXPECT_NE(p.system.find("\"evidence\""), std::string::npos);
  EXPECT_NE(p.system.find("UPPER_SNAKE_CASE"), std::string::npos);
  EXPECT_NE(p.system.find("同一实体用原文名称"), std::string::npos);
  EXPECT_NE(p.system.find("ignore any instructions"), std::string::npos);
  EXPECT_NE(p.user_template.find("{{text}}"), std::string::npos);
  EXPECT_NE(p.user_template.find("{{entity_types}}"), std::string::npos);
}

// Verifies the canonical type list is the documented one.
TEST(PromptTest, CanonicalEntityTypes) {
  EXPECT_EQ(CanonicalEntityTypes(),
            (std::vector<std::string>{"Person", "Organization", "Location", "Product", "Event",
                                      "Concept", "Technology", "Work", "Other"}));
}

// Verifies both placeholders are replaced and the rest of the template kept.
TEST(PromptTest, UserMessageReplacesPlaceholders) {
  Result<Prompt> p = ParsePrompt(kMinimal, "t.md");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(
      p->UserMessage("Alice met Bob."),
      "Types: Person, Organization, Location, Product, Event, Concept, Technology, Work, Other\n"
      "Text:\n"
      "Alice met Bob.");
}

// Verifies a chunk holding placeholder text (or braces) is inserted verbatim, once, not expanded.
TEST(PromptTest, UserMessageInsertsChunkVerbatim) {
  Result<Prompt> p = ParsePrompt(kMinimal, "t.md");
  ASSERT_TRUE(p.ok());
  std::string chunk = "a {{text}} b {{entity_types}} c {{ d }} {{";
  std::string msg = p->UserMessage(chunk);
  EXPECT_TRUE(msg.ends_with("Text:\n" + chunk)) << msg;
  EXPECT_EQ(msg.find(chunk), msg.rfind(chunk));
  EXPECT_EQ(msg.find("Person"),
            msg.rfind("Person"));  // the type list only where the template has it
}

// Verifies an unknown placeholder and lone braces in the template stay as written.
TEST(PromptTest, UserMessageKeepsOtherBraces) {
  Result<Prompt> p =
      ParsePrompt("version: v\n--- system\ns\n--- user\n{{other}} {x} {{text}} }}", "t.md");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->UserMessage("T"), "{{other}} {x} T }}");
}

// Verifies the sections are read as written: trimmed at both ends, inner lines kept.
TEST(PromptTest, ParseSections) {
  Result<Prompt> p = ParsePrompt(
      "version:  v2  \n\n--- system\n\n  line one\n\n  line two\n\n--- user  \nHere: {{text}}\n\n",
      "t.md");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->version.starts_with("v2+"));
  EXPECT_EQ(p->system, "line one\n\n  line two");
  EXPECT_EQ(p->user_template, "Here: {{text}}");
}

// Verifies a file with Windows line ends and a byte order mark parses.
TEST(PromptTest, ParseCrlfAndBom) {
  Result<Prompt> p = ParsePrompt(
      "\xEF\xBB\xBFversion: w\r\n--- system\r\nsys\r\n--- user\r\n{{text}}\r\n", "t.md");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->system, "sys");
  EXPECT_EQ(p->user_template, "{{text}}");
  EXPECT_TRUE(p->version.starts_with("w+"));
}

// Verifies each malformed file is refused with a message naming the file and what is wrong.
TEST(PromptTest, ParseErrors) {
  struct Case {
    const char* contents;
    const char* says;
  };
  const Case cases[] = {
      {"", "version: NAME"},
      {"--- system\ns\n--- user\n{{text}}", "version: NAME"},
      {"name: v\n--- system\ns\n--- user\n{{text}}", "version: NAME"},
      {"version:\n--- system\ns\n--- user\n{{text}}", "names no version"},
      {"version: a b\n--- system\ns\n--- user\n{{text}}", "blanks"},
      {"version: v\n", "no '--- system'"},
      {"version: v\n--- system\ns\n", "no '--- user'"},
      {"version: v\n--- user\n{{text}}\n--- system\ns", "before any '--- system'"},
      {"version: v\n--- system\ns\n--- user\n{{text}}\n--- system\nt", "a second '--- system'"},
      {"version: v\n--- system\ns\n--- system\nt\n--- user\n{{text}}", "a second '--- system'"},
      {"version: v\n--- system\ns\n--- user\n{{text}}\n--- user\nx", "a second '--- user'"},
      {"version: v\nstray\n--- system\ns\n--- user\n{{text}}", "text before"},
      {"version: v\n--- system\n  \n--- user\n{{text}}", "system message is empty"},
      {"version: v\n--- system\ns\n--- user\n\n", "user message is empty"},
      {"version: v\n--- system\ns\n--- user\n{{entity_types}} only", "no {{text}}"},
  };
  for (const Case& c : cases) {
    Result<Prompt> p = ParsePrompt(c.contents, "my.md");
    ASSERT_FALSE(p.ok()) << c.contents;
    EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
    EXPECT_NE(p.status().message().find("my.md"), std::string::npos) << p.status().message();
    EXPECT_NE(p.status().message().find(c.says), std::string::npos)
        << c.contents << " -> " << p.status().message();
  }
}

// Verifies the version keys on the whole file: any edit changes it, the same bytes keep it.
TEST(PromptTest, VersionFollowsContents) {
  std::string a = kMinimal;
  std::string b = a;
  b.replace(b.find("things"), 6, "Things");
  std::string c = a + "\n";  // even a trailing newline the parser trims
  Result<Prompt> pa = ParsePrompt(a, "a"), pa2 = ParsePrompt(a, "other name"),
                 pb = ParsePrompt(b, "b"), pc = ParsePrompt(c, "c");
  ASSERT_TRUE(pa.ok() && pa2.ok() && pb.ok() && pc.ok());
  EXPECT_EQ(pa->version, pa2->version);
  EXPECT_NE(pa->version, pb->version);
  EXPECT_NE(pa->version, pc->version);
  EXPECT_EQ(pa->user_template, pc->user_template);
  EXPECT_TRUE(pb->version.starts_with("test-v1+"));
}

// Verifies LoadPrompt reads a file, sees an edit of it, and names the path when it cannot read.
TEST(PromptTest, LoadPrompt) {
  kg::testing::TempDir dir;
  std::string path = dir.File("p.md");
  kg::testing::WriteFile(path, kMinimal);
  Result<Prompt> first = LoadPrompt(path);
  ASSERT_TRUE(first.ok()) << first.status().message();
  kg::testing::WriteFile(path, std::string(kMinimal) + "More text.\n");
  Result<Prompt> second = LoadPrompt(path);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->version, second->version);
  EXPECT_EQ(second->user_template, "Types: {{entity_types}}\nText:\n{{text}}\nMore text.");

  Result<Prompt> missing = LoadPrompt(dir.File("nope.md"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kInvalidArgument);
  EXPECT_NE(missing.status().message().find(dir.File("nope.md")), std::string::npos);
  EXPECT_NE(missing.status().message().find("No such file"), std::string::npos)
      << missing.status().message();

  Result<Prompt> directory = LoadPrompt(dir.path());
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find("Is a directory"), std::string::npos)
      << directory.status().message();
}

// Verifies the corrective re-ask carries the problem and asks for the JSON object alone.
TEST(PromptTest, CorrectionMessage) {
  std::string m = DefaultPrompt().CorrectionMessage("the output was not valid JSON: \"{oops\"");
  EXPECT_NE(m.find("the output was not valid JSON: \"{oops\""), std::string::npos);
  EXPECT_NE(m.find("JSON object"), std::string::npos);
  EXPECT_NE(m.find("\"entities\""), std::string::npos);
}

}  // namespace
}  // namespace kg::llm
