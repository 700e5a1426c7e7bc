// The fake OpenAI-compatible server (testing/fake_llm.py), driven through its launcher with
// cpp-httplib as the client.
#include "testing/fake_llm.h"

#include <gtest/gtest.h>

#include <httplib.h>

#include <string>

namespace kg::testing {
namespace {

using nlohmann::json;

// A chat-completions request whose first user message is `chunk`.
json Request(const std::string& chunk) {
  return {{"model", "fake-model"},
          {"temperature", 0},
          {"messages", json::array({{{"role", "system"}, {"content", "Extract a graph."}},
                                    {{"role", "user"}, {"content", chunk}}})}};
}

httplib::Result Ask(const FakeLlm& fake, const std::string& chunk, const std::string& key = "") {
  httplib::Client c("127.0.0.1", fake.port());
  c.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  return c.Post("/v1/chat/completions", h, Request(chunk).dump(), "application/json");
}

// Verifies the normal answer: the OpenAI response shape, the graph read off the chunk text and
// the usage numbers (prompt: bytes of all message contents / 4, completion: content / 4, rounded up).
TEST(FakeLlm, NormalAnswer) {
  FakeLlm fake;
  ASSERT_GT(fake.port(), 0);
  const std::string chunk = "Alice Smith joined Acme Corp in May. The weather was fine. Bob met Alice Smith!";
  auto res = Ask(fake, chunk);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  json body = json::parse(res->body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "fake-model");
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  const std::string content = body["choices"][0]["message"]["content"];
  json graph = json::parse(content);
  json names = json::array();
  for (const auto& e : graph["entities"]) names.push_back({e["name"], e["type"]});
  EXPECT_EQ(names, json::parse(R"([["Alice Smith","Person"],["Acme Corp","Organization"],["May","Person"],["Bob","Person"]])"));
  ASSERT_EQ(graph["relations"].size(), 2u);
  EXPECT_EQ(graph["relations"][0]["source"], "Alice Smith");
  EXPECT_EQ(graph["relations"][0]["target"], "Acme Corp");
  EXPECT_EQ(graph["relations"][0]["type"], "RELATED_TO");
  EXPECT_EQ(graph["relations"][0]["evidence"], "Alice Smith joined Acme Corp in May.");
  EXPECT_EQ(graph["relations"][1]["source"], "Bob");
  EXPECT_EQ(graph["relations"][1]["target"], "Alice Smith");
  const int prompt = static_cast<int>((std::string("Extract a graph.").size() + chunk.size() + 3) / 4);
  const int completion = static_cast<int>((content.size() + 3) / 4);
  EXPECT_EQ(body["usage"]["prompt_tokens"], prompt);
  EXPECT_EQ(body["usage"]["completion_tokens"], completion);
  EXPECT_EQ(body["usage"]["total_tokens"], prompt + completion);
}

}  // namespace
}  // namespace kg::testing
