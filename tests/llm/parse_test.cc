#include "llm/parse.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

namespace kg::llm {
namespace {

const char kChunk[] = "Alice founded Acme in Paris. Bob works for Acme.";

const char kValid[] = R"({"entities":[
  {"name":"Alice","type":"Person","description":"founder"},
  {"name":"Acme","type":"Organization","description":"a company"},
  {"name":"Paris","type":"Location","description":"a city"},
  {"name":"Bob","type":"Person","description":"an employee"}],
 "relations":[
  {"source":"Alice","target":"Acme","type":"FOUNDED","description":"d","evidence":"Alice founded Acme in Paris."},
  {"source":"Acme","target":"Paris","type":"LOCATED_IN","description":"d","evidence":"Acme is in Paris."},
  {"source":"Bob","target":"Acme","type":"WORKS_FOR","description":"d","evidence":"Bob works for Acme."}]})";

ParsedOutput Parse(std::string_view content, std::string_view finish = "stop",
                   std::string_view chunk = kChunk) {
  return ParseExtractionOutput(content, finish, chunk);
}

bool ValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

void ExpectValid(const ParsedOutput& p) {
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  ASSERT_EQ(p.extraction.entities.size(), 4u);
  EXPECT_EQ(p.extraction.entities[0].name, "Alice");
  EXPECT_EQ(p.extraction.entities[0].type, "Person");
  EXPECT_EQ(p.extraction.entities[0].description, "founder");
  EXPECT_EQ(p.extraction.entities[1].type, "Organization");
  ASSERT_EQ(p.extraction.relations.size(), 3u);
  const ExtractedRelation& r = p.extraction.relations[0];
  EXPECT_EQ(r.source, "Alice");
  EXPECT_EQ(r.source_type, "Person");
  EXPECT_EQ(r.target, "Acme");
  EXPECT_EQ(r.target_type, "Organization");
  EXPECT_EQ(r.type, "FOUNDED");
  EXPECT_EQ(r.sentence, "Alice founded Acme in Paris.");
  EXPECT_EQ(p.dropped_records, 0);
  EXPECT_FALSE(p.nothing_found);
}

// Verifies the plain object asked for is read whole, with types on both ends of each relation.
TEST(ParseTest, PlainObject) { ExpectValid(Parse(kValid)); }

// Verifies an evidence quote is kept only when it occurs verbatim in the chunk.
TEST(ParseTest, EvidenceMustBeVerbatim) {
  ParsedOutput p = Parse(kValid);
  ASSERT_EQ(p.problem, OutputProblem::kNone);
  EXPECT_EQ(p.extraction.relations[1].sentence, "");  // "Acme is in Paris." is not in the chunk
  EXPECT_EQ(p.extraction.relations[2].sentence, "Bob works for Acme.");
  ParsedOutput other_chunk = Parse(kValid, "stop", "Something else entirely.");
  for (const auto& r : other_chunk.extraction.relations) EXPECT_EQ(r.sentence, "");
}

// Verifies wrappers models put around the object are taken off: fences, prose, think blocks.
TEST(ParseTest, Wrappers) {
  std::string v = kValid;
  ExpectValid(Parse("```json\n" + v + "\n```"));
  ExpectValid(Parse("```\n" + v + "\n```\n"));
  ExpectValid(Parse("Here is the graph you asked for:\n\n" + v +
                    "\n\nLet me know if you need more {details}."));
  ExpectValid(Parse("Sure! Format is {entities, relations}.\n```json\n" + v + "\n```"));
  // An example in the prose before the fence is not the answer.
  ExpectValid(Parse("The format is {\"entities\":[{\"name\":\"X\"}]}; here it is:\n```json\n" + v +
                    "\n```"));
  ExpectValid(Parse("Note: a { brace.\n" + v));  // a stray brace in prose opens nothing
  ExpectValid(Parse("<think>The user wants {\"entities\": ...}. Alice is a person.</think>\n" + v));
  ExpectValid(Parse("  <think>\nhmm\n</think>\n\n```json\n" + v + "\n```"));
  // The chat template opened the block: only its end appears.
  ExpectValid(Parse("Alice founded... so Alice is a Person.\n</think>\n" + v));
  ExpectValid(Parse("Maybe {\"entities\":[]}? No, Alice is a Person.\n</think>\n" + v));
}

// Verifies trailing commas are removed outside strings and left alone inside them.
TEST(ParseTest, TrailingCommas) {
  ParsedOutput p = Parse(R"({"entities":[{"name":"A, ]","type":"Person",},{"name":"B",},],
                             "relations":[{"source":"A, ]","target":"B","type":"KNOWS",
                             "evidence":"x,}"},],})",
                         "stop", "x,}");
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  ASSERT_EQ(p.extraction.entities.size(), 2u);
  EXPECT_EQ(p.extraction.entities[0].name, "A, ]");
  ASSERT_EQ(p.extraction.relations.size(), 1u);
  EXPECT_EQ(p.extraction.relations[0].sentence, "x,}");
}

// Verifies the field aliases models use inside records, and ends given as {"name": ...}.
TEST(ParseTest, RecordAliases) {
  ParsedOutput p =
      Parse(R"({"entities":[{"name":"Alice","entity_type":"PER"},{"name":"Acme","label":"ORG"},
                                         {"name":"Paris","Type":"GPE"}],
                             "relations":[{"head":"Alice","tail":"Acme","relation":"founded"},
                                          {"source":{"name":"Acme","type":"Organization"},"target":{"name":"Paris"},
                                           "relation_type":"located in"},
                                          {"head":"Acme","tail":"Alice","label":"founded by"}]})");
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  ASSERT_EQ(p.extraction.entities.size(), 3u);
  EXPECT_EQ(p.extraction.entities[0].type, "Person");
  EXPECT_EQ(p.extraction.entities[1].type, "Organization");
  EXPECT_EQ(p.extraction.entities[2].type, "Location");
  ASSERT_EQ(p.extraction.relations.size(), 3u);
  EXPECT_EQ(p.extraction.relations[0].type, "FOUNDED");
  EXPECT_EQ(p.extraction.relations[1].source, "Acme");
  EXPECT_EQ(p.extraction.relations[1].target, "Paris");
  EXPECT_EQ(p.extraction.relations[1].target_type, "Location");
  EXPECT_EQ(p.extraction.relations[1].type, "LOCATED_IN");
  EXPECT_EQ(p.extraction.relations[2].type, "FOUNDED_BY");
  EXPECT_EQ(p.dropped_records, 0);

  // Top-level keys in another case, and "relationships" for "relations".
  ParsedOutput q = Parse(
      R"({"Entities":[{"Name":"A"},{"name":"B"}],"relationships":[{"Source":"A","target":"B"}]})");
  ASSERT_EQ(q.problem, OutputProblem::kNone) << q.detail;
  EXPECT_EQ(q.extraction.entities.size(), 2u);
  EXPECT_EQ(q.extraction.relations.size(), 1u);
}

// Verifies a top-level object without "entities" is the wrong schema, even with look-alike keys.
TEST(ParseTest, WrongSchema) {
  for (const char* out : {R"({"nodes":[{"name":"A"}],"edges":[]})", R"({"result":{"entities":[]}})",
                          R"({"entities":"Alice, Bob"})", R"({"entities":[],"relations":{"a":1}})",
                          R"([{"name":"A","type":"Person"}])", R"({"entities":[1,2,"x"]})",
                          R"({"entities":[{"type":"Person"},{"name":"  "}]})"}) {
    ParsedOutput p = Parse(out);
    EXPECT_EQ(p.problem, OutputProblem::kWrongSchema)
        << out << " -> " << OutputProblemName(p.problem);
    EXPECT_TRUE(p.extraction.entities.empty());
    EXPECT_FALSE(p.nothing_found);
    EXPECT_FALSE(p.detail.empty());
  }
  ParsedOutput p = Parse(R"(Output: {"nodes":[{"name":"A"}]})");
  EXPECT_NE(p.detail.find("nodes"), std::string::npos) << p.detail;      // names the keys found
  EXPECT_NE(p.detail.find("Output: {"), std::string::npos) << p.detail;  // and quotes the output
}

// Verifies output holding no readable object is not JSON, the parser's reason in the detail.
TEST(ParseTest, NotJson) {
  for (const char* out :
       {"I could not find any entities in this text.", "{entities: [name: Alice]}",
        R"({"entities":[{"name":"A" "type":"Person"}]})", "{'entities': []}", "]]]}}}",
        "<think>reasoning without an end, then nothing"}) {
    ParsedOutput p = Parse(out);
    EXPECT_EQ(p.problem, OutputProblem::kNotJson) << out << " -> " << OutputProblemName(p.problem);
    EXPECT_TRUE(p.extraction.entities.empty());
    EXPECT_FALSE(p.detail.empty());
  }
  ParsedOutput p = Parse(R"({"entities":[{"name":"A" "type":"Person"}]})");
  EXPECT_NE(p.detail.find("not valid JSON"), std::string::npos) << p.detail;
  EXPECT_NE(p.detail.find("syntax error"), std::string::npos) << p.detail;
}

// Verifies cut-off output is truncated: by finish_reason "length", or unbalanced at the end.
TEST(ParseTest, Truncated) {
  std::string v = kValid;
  std::string cut = v.substr(0, v.size() / 2);
  EXPECT_EQ(Parse(cut, "length").problem, OutputProblem::kTruncated);
  EXPECT_EQ(Parse(cut, "stop").problem, OutputProblem::kTruncated);
  EXPECT_EQ(Parse("```json\n" + cut, "").problem, OutputProblem::kTruncated);
  EXPECT_EQ(Parse(R"({"entities":[{"name":"Al)", "stop").problem,
            OutputProblem::kTruncated);  // inside a string
  // Thinking until the token limit, no JSON yet.
  EXPECT_EQ(Parse("<think>Let me consider Alice and {Acme", "length").problem,
            OutputProblem::kTruncated);
  EXPECT_EQ(Parse("<think>Long reasoning.</think>\n", "length").problem, OutputProblem::kTruncated);
  // An object inside reasoning cut short is not the answer.
  EXPECT_EQ(Parse("<think>Maybe {\"entities\":[]} fits, but Alice", "length").problem,
            OutputProblem::kTruncated);
  EXPECT_EQ(Parse("Let me list the entities first: Alice, Acme", "length").problem,
            OutputProblem::kTruncated);
  ParsedOutput p = Parse(cut, "length");
  EXPECT_TRUE(p.extraction.entities.empty());
  EXPECT_NE(p.detail.find("length"), std::string::npos) << p.detail;
  EXPECT_NE(p.detail.find("{\"entities\""), std::string::npos) << p.detail;
  // A complete object is accepted even when the limit was hit just after it.
  ExpectValid(Parse(v, "length"));
}

// Verifies blank output is empty, not "not JSON" and not "nothing found".
TEST(ParseTest, Empty) {
  for (const char* out : {"", "   \n\t ", "\xE3\x80\x80", "<think>only thinking</think>  "}) {
    ParsedOutput p = Parse(out);
    EXPECT_EQ(p.problem, OutputProblem::kEmpty) << out;
    EXPECT_FALSE(p.nothing_found);
    EXPECT_FALSE(p.detail.empty());
  }
}

// Verifies valid JSON with zero entities is a success that found nothing, distinct from problems.
TEST(ParseTest, NothingFound) {
  for (const char* out :
       {R"({"entities":[],"relations":[]})", R"({"entities":[]})", R"({"entities":null})",
        "```json\n{\"entities\": [], \"relations\": [],}\n```"}) {
    ParsedOutput p = Parse(out);
    EXPECT_EQ(p.problem, OutputProblem::kNone) << out << ": " << p.detail;
    EXPECT_TRUE(p.nothing_found) << out;
    EXPECT_TRUE(p.extraction.entities.empty());
  }
  // Relations without entities have no ends: dropped and counted.
  ParsedOutput p = Parse(R"({"entities":[],"relations":[{"source":"A","target":"B","type":"X"}]})");
  EXPECT_TRUE(p.nothing_found);
  EXPECT_EQ(p.dropped_records, 1);
  EXPECT_FALSE(Parse(kValid).nothing_found);
}

// Verifies invalid records are dropped one by one and counted while the rest is kept.
TEST(ParseTest, DropsAndCountsBadRecords) {
  ParsedOutput p = Parse(R"({"entities":[
      {"name":"Alice","type":"Person"},
      {"name":"","type":"Person"},
      {"name":"   ","type":"Person"},
      {"type":"Person"},
      {"name":42},
      {"name":"Typed","type":7},
      {"name":"Described","description":["x"]},
      "Bob",
      null,
      {"name":"Acme","type":"Organization","description":null}],
    "relations":[
      {"source":"Alice","target":"Acme","type":"FOUNDED"},
      {"source":"Alice","target":"Nobody","type":"KNOWS"},
      {"source":"Ghost","target":"Acme","type":"HAUNTS"},
      {"source":"Alice","type":"X"},
      {"source":["Alice"],"target":"Acme","type":"X"},
      {"source":"Alice","target":"Acme","type":3},
      "Alice->Acme",
      {"source":"acme","target":"ALICE","type":"EMPLOYS"}]})");
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  ASSERT_EQ(p.extraction.entities.size(), 2u);
  EXPECT_EQ(p.extraction.entities[0].name, "Alice");
  EXPECT_EQ(p.extraction.entities[1].name, "Acme");
  EXPECT_EQ(p.extraction.entities[1].description, "");
  ASSERT_EQ(p.extraction.relations.size(), 2u);
  // Ends match entities ignoring case, and take the entity's spelling.
  EXPECT_EQ(p.extraction.relations[1].source, "Acme");
  EXPECT_EQ(p.extraction.relations[1].target, "Alice");
  EXPECT_EQ(p.dropped_records, 8 + 6);
}

// Verifies names are trimmed with blanks collapsed, and duplicates merged: first name and type,
// longest description.
TEST(ParseTest, NamesAndDuplicates) {
  ParsedOutput p = Parse(R"({"entities":[
      {"name":"  Alice \n  Smith ","type":"Person","description":"short"},
      {"name":"alice smith","type":"Organization","description":"a much longer description"},
      {"name":"ALICE SMITH","description":"mid"},
      {"name":"Acme","type":"company"}],
    "relations":[{"source":"Alice   Smith","target":" acme ","type":"works for"}]})");
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  ASSERT_EQ(p.extraction.entities.size(), 2u);
  EXPECT_EQ(p.extraction.entities[0].name, "Alice Smith");
  EXPECT_EQ(p.extraction.entities[0].type, "Person");
  EXPECT_EQ(p.extraction.entities[0].description, "a much longer description");
  EXPECT_EQ(p.dropped_records, 0);
  ASSERT_EQ(p.extraction.relations.size(), 1u);
  EXPECT_EQ(p.extraction.relations[0].source, "Alice Smith");
  EXPECT_EQ(p.extraction.relations[0].target, "Acme");
  EXPECT_EQ(p.extraction.relations[0].target_type, "Organization");
  EXPECT_EQ(p.extraction.relations[0].type, "WORKS_FOR");
}

// Verifies entity types map onto the canonical list from English, Chinese, NER tags, any case.
TEST(ParseTest, EntityTypes) {
  const std::pair<const char*, const char*> cases[] = {
      {"Person", "Person"},
      {"person", "Person"},
      {"PER", "Person"},
      {"people", "Person"},
      {"人物", "Person"},
      {"人", "Person"},
      {"组织", "Organization"},
      {"机构", "Organization"},
      {"公司", "Organization"},
      {"Company", "Organization"},
      {"ORG", "Organization"},
      {"地点", "Location"},
      {"地名", "Location"},
      {"城市", "Location"},
      {"国家", "Location"},
      {"GPE", "Location"},
      {"LOC", "Location"},
      {"city", "Location"},
      {"Country", "Location"},
      {"place", "Location"},
      {"产品", "Product"},
      {"PRODUCT", "Product"},
      {"事件", "Event"},
      {"event", "Event"},
      {"概念", "Concept"},
      {"concept", "Concept"},
      {"技术", "Technology"},
      {"TECH", "Technology"},
      {"technology", "Technology"},
      {"作品", "Work"},
      {"book", "Work"},
      {"Film", "Work"},
      {"work", "Work"},
      {"date", "Other"},
      {"动物", "Other"},
      {"", "Other"},
      {" Location ", "Location"},
      {"MISC", "Other"},
  };
  for (const auto& [raw, want] : cases) {
    std::string out = std::string(R"({"entities":[{"name":"X","type":")") + raw + "\"}]}";
    ParsedOutput p = Parse(out);
    ASSERT_EQ(p.problem, OutputProblem::kNone) << raw << ": " << p.detail;
    ASSERT_EQ(p.extraction.entities.size(), 1u);
    EXPECT_EQ(p.extraction.entities[0].type, want) << raw;
  }
  ParsedOutput untyped = Parse(R"({"entities":[{"name":"X"}]})");
  ASSERT_EQ(untyped.extraction.entities.size(), 1u);
  EXPECT_EQ(untyped.extraction.entities[0].type, "Other");
}

// Verifies relation types become UPPER_SNAKE_CASE; non-ASCII types are kept; none is RELATED_TO.
TEST(ParseTest, RelationTypes) {
  const std::pair<const char*, const char*> cases[] = {
      {"FOUNDED", "FOUNDED"},
      {"founded", "FOUNDED"},
      {"works for", "WORKS_FOR"},
      {"worksFor", "WORKS_FOR"},
      {"WorksFor", "WORKS_FOR"},
      {"works-for", "WORKS_FOR"},
      {" is_part_of ", "IS_PART_OF"},
      {"HTTPServerOf", "HTTP_SERVER_OF"},
      {"born in 1990", "BORN_IN_1990"},
      {"  ", "RELATED_TO"},
      {"", "RELATED_TO"},
      {"--", "RELATED_TO"},
      {" 创立 ", "创立"},
      {"位于  城市", "位于 城市"},
  };
  for (const auto& [raw, want] : cases) {
    std::string out = std::string(R"({"entities":[{"name":"A"},{"name":"B"}],
        "relations":[{"source":"A","target":"B","type":")") +
                      raw + "\"}]}";
    ParsedOutput p = Parse(out);
    ASSERT_EQ(p.problem, OutputProblem::kNone) << raw << ": " << p.detail;
    ASSERT_EQ(p.extraction.relations.size(), 1u) << raw;
    EXPECT_EQ(p.extraction.relations[0].type, want) << raw;
  }
  ParsedOutput untyped = Parse(
      R"({"entities":[{"name":"A"},{"name":"B"}],"relations":[{"source":"A","target":"B"}]})");
  ASSERT_EQ(untyped.extraction.relations.size(), 1u);
  EXPECT_EQ(untyped.extraction.relations[0].type, "RELATED_TO");
}

// Verifies Chinese output: names kept as written, Chinese types mapped, verbatim Chinese evidence.
TEST(ParseTest, ChineseOutput) {
  const char chunk[] = "马云于1999年在杭州创立了阿里巴巴。阿里巴巴的总部位于杭州。";
  ParsedOutput p = Parse(R"(<think>先找实体。</think>
```json
{"entities":[{"name":"马云","type":"人物","description":"阿里巴巴创始人"},
             {"name":"阿里巴巴","type":"公司","description":"中国互联网公司"},
             {"name":"杭州","type":"城市","description":"浙江省会"},
             {"name":"　杭州　","type":"Location","description":"重复"}],
 "relations":[{"source":"马云","target":"阿里巴巴","type":"FOUNDED","evidence":"马云于1999年在杭州创立了阿里巴巴。"},
              {"source":"阿里巴巴","target":"杭州","type":"总部位于","evidence":"阿里巴巴总部在杭州。"}]}
```)",
                         "stop", chunk);
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  ASSERT_EQ(p.extraction.entities.size(), 3u);
  EXPECT_EQ(p.extraction.entities[0].name, "马云");
  EXPECT_EQ(p.extraction.entities[0].type, "Person");
  EXPECT_EQ(p.extraction.entities[1].type, "Organization");
  EXPECT_EQ(p.extraction.entities[2].name, "杭州");
  EXPECT_EQ(p.extraction.entities[2].type, "Location");
  ASSERT_EQ(p.extraction.relations.size(), 2u);
  EXPECT_EQ(p.extraction.relations[0].sentence, "马云于1999年在杭州创立了阿里巴巴。");
  EXPECT_EQ(p.extraction.relations[1].type, "总部位于");
  EXPECT_EQ(p.extraction.relations[1].target_type, "Location");
  EXPECT_EQ(p.extraction.relations[1].sentence, "");  // paraphrased, not a quote
}

// Verifies Snippet cuts at a UTF-8 boundary, escapes control characters and stray bytes.
TEST(ParseTest, Snippet) {
  EXPECT_EQ(Snippet("short"), "short");
  EXPECT_EQ(Snippet("a\nb\tc\r\x01"), "a\\nb\\tc\\r\\x01");
  EXPECT_EQ(Snippet("abcdef", 3), "abc...");
  EXPECT_EQ(Snippet("中文字", 4), "中...");  // 3 bytes each: the second would be cut
  EXPECT_EQ(Snippet("中文字", 6), "中文...");
  EXPECT_EQ(Snippet("\xE4\xB8", 10), "\\xe4\\xb8");  // a cut-off sequence is escaped, byte by byte
  EXPECT_EQ(Snippet("a\xFF"
                    "b"),
            "a\\xffb");
  EXPECT_EQ(Snippet(std::string(1000, 'x')).size(), 203u);
  EXPECT_TRUE(ValidUtf8(Snippet(std::string("\xC3\x28\xE2\x82\xF0\x9F\x98\x80\xED\xA0\x80"))));
}

// Verifies every problem's detail holds a short snippet of the output, valid UTF-8.
TEST(ParseTest, DetailsQuoteTheOutput) {
  std::string big = "Sorry, 我无法完成。" + std::string(5000, 'z') + "\x01";
  for (const auto& [out, finish] :
       std::vector<std::pair<std::string, std::string>>{{big, "stop"},
                                                        {big, "length"},
                                                        {"{\"a\":1} " + big, "stop"},
                                                        {"{\"entities\":5} " + big, "stop"}}) {
    ParsedOutput p = Parse(out, finish);
    ASSERT_NE(p.problem, OutputProblem::kNone);
    EXPECT_NE(p.detail.find(out.substr(0, 8)), std::string::npos) << p.detail;
    EXPECT_LT(p.detail.size(), 600u) << p.detail;
    EXPECT_TRUE(ValidUtf8(p.detail));
  }
}

// Verifies large and hostile inputs end with an answer: 1 MB of garbage, deep nesting, many
// braces, a huge valid output.
TEST(ParseTest, LargeAndHostileInputs) {
  std::mt19937 rng(7);
  std::string garbage(1 << 20, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  EXPECT_NE(Parse(garbage).problem, OutputProblem::kNone);

  std::string json_chars = "{}[]\",:\\ ae1";
  std::string noise(1 << 20, ' ');
  for (char& c : noise) c = json_chars[rng() % json_chars.size()];
  EXPECT_NE(Parse(noise).problem, OutputProblem::kNone);
  EXPECT_NE(Parse(noise, "length").problem, OutputProblem::kNone);

  const size_t half = 1 << 19;
  EXPECT_EQ(Parse(std::string(half, '{') + std::string(half, '}')).problem,
            OutputProblem::kNotJson);
  EXPECT_EQ(Parse("{\"entities\":" + std::string(half, '[') + std::string(half, ']') + "}").problem,
            OutputProblem::kNotJson);
  EXPECT_EQ(Parse(std::string(1 << 20, '{')).problem, OutputProblem::kTruncated);
  EXPECT_EQ(Parse(std::string(1 << 20, '}')).problem, OutputProblem::kNotJson);
  EXPECT_NE(Parse(std::string(1 << 20, '"')).problem, OutputProblem::kNone);
  std::string many;
  while (many.size() < (1 << 20)) many += "{} ";
  EXPECT_EQ(Parse(many).problem, OutputProblem::kWrongSchema);
  std::string commas = "{\"entities\":[" + std::string(1 << 20, ',') + "]}";
  EXPECT_EQ(Parse(commas).problem, OutputProblem::kNotJson);
  std::string thinks;
  while (thinks.size() < (1 << 20)) thinks += "</think<think>";
  EXPECT_NE(Parse(thinks).problem, OutputProblem::kNone);

  // A 1 MB valid output: every record read.
  std::string chunk = "Entity 0 relates to entity 1.";
  std::string out = "{\"entities\":[";
  const int n = 15000;
  for (int i = 0; i < n; ++i) {
    out += "{\"name\":\"Entity " + std::to_string(i) +
           "\",\"type\":\"Concept\",\"description\":\"number " + std::to_string(i) + "\"},";
  }
  out += "],\"relations\":[";
  for (int i = 0; i + 1 < n; ++i) {
    out += "{\"source\":\"entity " + std::to_string(i) + "\",\"target\":\"ENTITY " +
           std::to_string(i + 1) +
           "\",\"type\":\"relates to\",\"evidence\":\"Entity 0 relates to entity 1.\"},";
  }
  out += "]}";
  ASSERT_GT(out.size(), 1u << 20);
  ParsedOutput p = Parse(out, "stop", chunk);
  ASSERT_EQ(p.problem, OutputProblem::kNone) << p.detail;
  EXPECT_EQ(p.extraction.entities.size(), static_cast<size_t>(n));
  EXPECT_EQ(p.extraction.relations.size(), static_cast<size_t>(n - 1));
  EXPECT_EQ(p.extraction.relations.back().sentence, chunk);
}

// Verifies random mutations of valid outputs never crash and always give a coherent answer:
// a problem with a detail and nothing extracted, or records whose relation ends are entities.
TEST(ParseTest, FuzzedOutputs) {
  const std::vector<std::string> seeds = {
      kValid,
      R"(<think>x</think>```json
{"entities":[{"name":"马云","type":"人物"},{"name":"杭州","type":"城市"}],"relations":[{"head":{"name":"马云"},"tail":"杭州","relation":"住在","evidence":"马云住在杭州"}],}
```)",
      R"({"entities":[],"relations":[]})",
  };
  const std::string pieces[] = {"{",
                                "}",
                                "[",
                                "]",
                                "\"",
                                ",",
                                ":",
                                "\\",
                                "<think>",
                                "</think>",
                                "```",
                                "null",
                                "\"entities\"",
                                "{\"name\":",
                                "\xE4\xB8",
                                "\n",
                                std::string(1, '\0'),
                                "1e999999",
                                "\\u0000"};
  std::mt19937 rng(12345);
  int problems = 0, successes = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 5) {
        case 0:
          s.erase(at, 1 + rng() % 8);
          break;
        case 1:
          s.insert(at, pieces[rng() % std::size(pieces)]);
          break;
        case 2:
          s[at] = static_cast<char>(rng());
          break;
        case 3:
          s.resize(at);
          break;
        default:
          s.insert(at, s.substr(rng() % s.size(), rng() % 40));
      }
    }
    const char* finish = rng() % 4 == 0 ? "length" : "stop";
    ParsedOutput p = Parse(s, finish, "马云住在杭州. Alice founded Acme in Paris.");
    if (p.problem != OutputProblem::kNone) {
      ++problems;
      EXPECT_FALSE(p.detail.empty()) << s;
      EXPECT_TRUE(ValidUtf8(p.detail)) << s;
      EXPECT_TRUE(p.extraction.entities.empty() && p.extraction.relations.empty()) << s;
      continue;
    }
    ++successes;
    std::set<std::string> names;
    for (const auto& en : p.extraction.entities) {
      EXPECT_FALSE(en.name.empty());
      names.insert(en.name);
    }
    for (const auto& r : p.extraction.relations) {
      EXPECT_TRUE(names.count(r.source) && names.count(r.target)) << s;
      EXPECT_FALSE(r.type.empty());
    }
    EXPECT_EQ(p.nothing_found, p.extraction.entities.empty());
  }
  // Both paths were exercised, not only one.
  EXPECT_GT(problems, 500);
  EXPECT_GT(successes, 200) << problems;
}

// Verifies the problem names used in logs and dead-letter reasons.
TEST(ParseTest, ProblemNames) {
  EXPECT_STREQ(OutputProblemName(OutputProblem::kNone), "none");
  EXPECT_STREQ(OutputProblemName(OutputProblem::kEmpty), "empty");
  EXPECT_STREQ(OutputProblemName(OutputProblem::kNotJson), "not_json");
  EXPECT_STREQ(OutputProblemName(OutputProblem::kTruncated), "truncated");
  EXPECT_STREQ(OutputProblemName(OutputProblem::kWrongSchema), "wrong_schema");
}

}  // namespace
}  // namespace kg::llm
