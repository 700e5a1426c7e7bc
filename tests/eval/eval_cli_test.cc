// `kgflow eval` as a user runs it: the report, --json, exit codes for bad input and failures,
// and the labelled sets under eval/ scored end to end.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "testing/testing.h"

namespace kg {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

using testing::CliRun;

CliRun Kgflow(const std::vector<std::string>& args, const testing::TempDir& dir,
              std::map<std::string, std::string> env = {}) {
  return testing::RunToEnd(args, dir.path(), env, 120s);
}

const char* kTiny =
    R"({"id":"t1","lang":"en","text":"Quillon Systems Inc. is based in Dunmere. Its chief executive is Petra Halvorsen.","entities":[{"name":"Quillon Systems Inc.","type":"Organization","aliases":["Quillon Systems"]},{"name":"Dunmere","type":"Location"},{"name":"Petra Halvorsen","type":"Person"}],"relations":[{"source":"Quillon Systems Inc.","type":"LOCATED_IN","target":"Dunmere"},{"source":"Petra Halvorsen","type":"CEO_OF","target":"Quillon Systems Inc."}]})"
    "\n"
    R"({"id":"t2","lang":"zh","text":"赵明远创立了青禾科技有限公司。","entities":[{"name":"赵明远","type":"Person"},{"name":"青禾科技有限公司","type":"Organization"}],"relations":[{"source":"赵明远","type":"FOUNDED","target":"青禾科技有限公司"}]})"
    "\n";

// Verifies `kgflow eval` on a tiny file prints the table (per language and overall, all four
// measures) and exits 0; --json carries the same counts as the gold file holds.
TEST(EvalCli, ScoresATinyFile) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("gold.jsonl"), kTiny);
  CliRun r = Kgflow({"eval", dir.File("gold.jsonl")}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {"2 items (en 1, zh 1), provider builtin", "en       entities typed",
                           "zh       relations untyped", "overall  relations typed"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }

  CliRun j = Kgflow({"eval", "--json", dir.File("gold.jsonl")}, dir);
  ASSERT_EQ(j.code, 0) << j.err;
  json rep = json::parse(j.out);
  EXPECT_EQ(rep["provider"], "builtin");
  EXPECT_EQ(rep["overall"]["items"], 2);
  EXPECT_EQ(rep["overall"]["entities_typed"]["gold"], 5);
  EXPECT_EQ(rep["overall"]["relations_typed"]["gold"], 3);
  EXPECT_EQ(rep["languages"]["zh"]["entities_untyped"]["gold"], 2);
  ASSERT_EQ(rep["items"].size(), 2u);
  EXPECT_EQ(rep["items"][1]["line"], 2);

  CliRun none = Kgflow({"eval", "--max-misses", "0", dir.File("gold.jsonl")}, dir);
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_EQ(none.out.find("  missed "), std::string::npos) << none.out;
  EXPECT_EQ(none.out.find("  spurious "), std::string::npos) << none.out;
}

// Verifies bad input is a usage error (2) with one clear line: a bad gold line by number, a
// missing file, a directory, an unknown provider, a missing argument.
TEST(EvalCli, BadInputIsUsage) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("bad.jsonl"),
                     std::string(kTiny) + R"({"id":"t3","lang":"en","text":"x","entities":[]})" + "\n");
  CliRun bad = Kgflow({"eval", dir.File("bad.jsonl")}, dir);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("bad.jsonl: line 3: missing \"relations\""), std::string::npos) << bad.err;
  EXPECT_TRUE(bad.out.empty()) << bad.out;

  CliRun missing = Kgflow({"eval", dir.File("nope.jsonl")}, dir);
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("nope.jsonl: No such file or directory"), std::string::npos) << missing.err;

  CliRun directory = Kgflow({"eval", dir.path()}, dir);
  EXPECT_EQ(directory.code, 2);
  EXPECT_NE(directory.err.find("not a regular file"), std::string::npos) << directory.err;

  testing::WriteFile(dir.File("gold.jsonl"), kTiny);
  CliRun provider = Kgflow({"eval", "--provider", "gpt", dir.File("gold.jsonl")}, dir);
  EXPECT_EQ(provider.code, 2);
  EXPECT_NE(provider.err.find("unknown provider 'gpt'; this configuration has: builtin"), std::string::npos)
      << provider.err;

  EXPECT_EQ(Kgflow({"eval"}, dir).code, 2);
  EXPECT_EQ(Kgflow({"eval", "--max-misses", "-3", dir.File("gold.jsonl")}, dir).code, 2);
}

// Verifies --provider takes any provider the configuration declares (KG_CONFIG), as a node
// would build it, and that a failure to run (here: no usable temporary directory) is exit 1.
TEST(EvalCli, ConfiguredProviderAndRuntimeFailure) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("gold.jsonl"), kTiny);
  testing::WriteFile(dir.File("kg.toml"), "[providers.alpha]\nkind = \"builtin\"\n");
  CliRun alpha = Kgflow({"eval", "--provider", "alpha", dir.File("gold.jsonl")}, dir,
                        {{"KG_CONFIG", dir.File("kg.toml")}});
  EXPECT_EQ(alpha.code, 0) << alpha.err;
  EXPECT_NE(alpha.out.find("provider alpha"), std::string::npos) << alpha.out;

  CliRun no_tmp = Kgflow({"eval", dir.File("gold.jsonl")}, dir, {{"TMPDIR", dir.File("gold.jsonl")}});
  EXPECT_EQ(no_tmp.code, 1);
  EXPECT_NE(no_tmp.err.find("cannot make a temporary directory"), std::string::npos) << no_tmp.err;
}

// Verifies the labelled sets shipped under eval/ parse and are scored end to end (no
// threshold: the scores are reported in the README, not asserted).
TEST(EvalCli, LabelledSetsRun) {
  testing::TempDir dir;
  for (const char* f : {"tuning.jsonl", "heldout.jsonl"}) {
    std::string path = std::string(KG_EVAL_DIR) + "/" + f;
    CliRun r = Kgflow({"eval", "--json", path}, dir);
    ASSERT_EQ(r.code, 0) << f << ": " << r.err;
    json rep = json::parse(r.out);
    EXPECT_GE(rep["overall"]["items"].get<int>(), 35) << f;
    EXPECT_GT(rep["languages"]["en"]["items"].get<int>(), 0) << f;
    EXPECT_GT(rep["languages"]["zh"]["items"].get<int>(), 0) << f;
    EXPECT_FALSE(rep["overall"]["relations_typed"]["f1"].is_null()) << f;
  }
}

}  // namespace
}  // namespace kg
