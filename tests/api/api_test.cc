// The HTTP API's error paths and happy paths, against a real server on a free port with
// the embedded backends. Every error is JSON, and the server keeps serving after each.
#include <expat.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api/metrics.h"
#include "api/server.h"
#include "api/submission.h"
#include "common/util.h"
#include "store/task_store.h"
#include "graph/graph_store.h"
#include "pipeline/document.h"
#include "sqlite/db.h"
#include "supervisor/node_registry.h"
#include "testing/prom_text.h"
#include "testing/testing.h"
#include "text/text.h"

namespace kg {
namespace {

using nlohmann::json;

using testing::ParseMetrics;
using testing::Sample;

// Sends `request` as is on a fresh loopback connection and returns everything the server
// answers until it closes (the request should say Connection: close). Empty on failure.
// A receive timeout keeps a server that waits for more bytes from hanging the test.
std::string RawExchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The status code of a raw HTTP/1.1 response, or -1.
int RawStatus(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::atoi(response.substr(9, 3).c_str());
}

class ApiTest : public ::testing::Test {
 protected:
  void Start(const std::string& token = "", const std::map<std::string, std::string>& env = {}) {
    auto c = LoadConfig([&](const std::string& k) -> std::optional<std::string> {
      if (auto it = env.find(k); it != env.end()) return it->second;
      if (k == "KG_DATA_DIR") return dir_.path();
      if (k == "KG_MAX_BODY_MB") return std::string("1");
      if (k == "KG_API_TOKEN" && !token.empty()) return token;
      return std::nullopt;
    });
    ASSERT_TRUE(c.ok()) << c.status().message();
    config_ = std::move(c).value();
    queue_ = std::move(OpenQueue(config_)).value();
    store_ = std::move(OpenTaskStore(config_)).value();
    graph_ = std::move(OpenGraphStore(config_)).value();
    server_ = std::make_unique<ApiServer>(ApiDeps{&config_, queue_.get(), store_.get(), graph_.get(), nullptr, false});
    auto port = server_->Bind("127.0.0.1", 0);
    ASSERT_TRUE(port.ok());
    port_ = *port;
    thread_ = std::thread([this] { server_->Serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    ASSERT_TRUE(testing::WaitFor([&] { return static_cast<bool>(client_->Get("/healthz")); }, std::chrono::seconds(5)));
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
  }

  // Expects status and a JSON {"error": ...} mentioning `needle`, then checks the server still serves.
  void ExpectError(const httplib::Result& r, int status, const std::string& needle) {
    ASSERT_TRUE(r) << "no response";
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r->body;
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_NE(j["error"].get<std::string>().find(needle), std::string::npos) << j["error"];
    auto h = client_->Get("/healthz");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
  }

  httplib::Result Post(const std::string& path, const std::string& body) {
    return client_->Post(path, body, "application/json");
  }

  testing::TempDir dir_;
  Config config_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<GraphStore> graph_;
  std::unique_ptr<ApiServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

// Verifies each bad submission gets a 4xx JSON error and loses nothing already queued.
TEST_F(ApiTest, SubmitErrors) {
  Start();
  auto ok = Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics.","title":"t"})");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 202) << ok->body;
  ExpectError(Post("/api/v1/tasks", "{not json"), 400, "not valid JSON");
  ExpectError(Post("/api/v1/tasks", ""), 400, "empty");
  ExpectError(Post("/api/v1/tasks", "[1,2]"), 400, "JSON object");
  ExpectError(Post("/api/v1/tasks", R"({"title":"x"})"), 400, "missing 'text'");
  ExpectError(Post("/api/v1/tasks", R"({"text":""})"), 400, "empty");
  ExpectError(Post("/api/v1/tasks", R"({"text":"   \n "})"), 400, "blank");
  ExpectError(Post("/api/v1/tasks", R"({"text":42})"), 400, "must be a string");
  ExpectError(Post("/api/v1/tasks", R"({"text":"x","provider":"gpt9"})"), 400, "known: builtin");
  ExpectError(Post("/api/v1/tasks", R"({"text":"x","title":7})"), 400, "'title' must be a string");
  ExpectError(Post("/api/v1/tasks", R"({"text":"x","id":"../etc"})"), 400, "'id'");
  ExpectError(Post("/api/v1/tasks", "{\"text\":\"bad \xff utf8\"}"), 400, "not valid JSON");
  // Binary content that JSON can carry is refused by what it is, with the reason.
  ExpectError(Post("/api/v1/tasks", R"({"text":"ELF\u0000\u0001\u0002 data"})"), 400, "NUL byte at offset 3");
  ExpectError(Post("/api/v1/tasks", R"({"text":"\u0001\u0002\u0003\u0004ab\u0005\u0006"})"), 400, "control characters");
  ExpectError(Post("/api/v1/tasks", std::string(2 * 1024 * 1024, 'x')), 413, "too large");
  auto list = client_->Get("/api/v1/tasks");
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["tasks"].size(), 1u) << "only the good task exists";
}

// The text of every chunk a submission queued, leased in order (this node runs no workers).
std::string QueuedText(Queue& q) {
  auto leases = q.LeaseChunks("builtin", "test", 1000, 60000, true);
  std::string out;
  if (!leases.ok()) return "<lease failed>";
  for (const auto& l : *leases) {
    auto p = DecodePayload(l.payload);
    if (p.ok()) out += p->text;
    (void)q.Ack(l.chunk_id, l.token);
  }
  return out;
}

// Verifies a document sent as a text/plain body (fields in the query) or as a multipart
// upload is queued as sent, without JSON; HTML and Markdown bodies are stripped to their
// text; the body limit applies with an error naming it, and bad shapes are 4xx JSON errors.
TEST_F(ApiTest, SubmitTextAndMultipartBodies) {
  Start();
  auto plain = client_->Post("/api/v1/tasks?title=Plain%20one&source=notes.txt",
                             "Mara Voss founded \"Helix\" Dynamics.\n", "text/plain; charset=utf-8");
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 202) << plain->body;
  auto task = client_->Get("/api/v1/tasks/" + json::parse(plain->body)["id"].get<std::string>());
  ASSERT_TRUE(task);
  EXPECT_EQ(json::parse(task->body)["title"], "Plain one");
  EXPECT_EQ(QueuedText(*queue_), "Mara Voss founded \"Helix\" Dynamics.");

  auto html = client_->Post("/api/v1/tasks", "<p>Ana Lund joined <b>Meridian</b>.</p><script>Evil Corp</script>",
                            "text/html");
  ASSERT_TRUE(html);
  ASSERT_EQ(html->status, 202) << html->body;
  EXPECT_EQ(QueuedText(*queue_), "Ana Lund joined Meridian.");

  auto md = client_->Post("/api/v1/tasks?format=markdown", "| Company | City |\n|---|---|\n| Helix | Oslo |\n",
                          "text/plain");
  ASSERT_TRUE(md);
  ASSERT_EQ(md->status, 202) << md->body;
  std::string md_text = QueuedText(*queue_);
  EXPECT_EQ(md_text.find('|'), std::string::npos) << md_text;
  EXPECT_NE(md_text.find("Helix"), std::string::npos) << md_text;

  // A stray invalid byte (within CheckText's tolerance) reaches the HTML parser as U+FFFD, and
  // the text after it is kept.
  auto latin1 = client_->Post("/api/v1/tasks", "<p>Caf\xe9 Lund opened in Oslo today.</p>", "text/html");
  ASSERT_TRUE(latin1);
  ASSERT_EQ(latin1->status, 202) << latin1->body;
  EXPECT_EQ(QueuedText(*queue_), "Caf\xEF\xBF\xBD Lund opened in Oslo today.");
  // The same stray byte in a text/plain body (chunked in place, no copy when valid) is replaced too.
  auto latin1_plain = client_->Post("/api/v1/tasks", "Caf\xe9 Lund opened in Oslo today.", "text/plain");
  ASSERT_TRUE(latin1_plain);
  ASSERT_EQ(latin1_plain->status, 202) << latin1_plain->body;
  EXPECT_EQ(QueuedText(*queue_), "Caf\xEF\xBF\xBD Lund opened in Oslo today.");

  // JSON with "format" strips too.
  auto js = Post("/api/v1/tasks", R"({"text":"<h1>Orbital</h1><p>Freight</p>","format":"html"})");
  ASSERT_TRUE(js);
  ASSERT_EQ(js->status, 202) << js->body;
  EXPECT_EQ(QueuedText(*queue_), "Orbital\n\nFreight");

  httplib::MultipartFormDataItems items = {
      {"file", "# Report\n\n**Helix** hired *Mara Voss*.\n", "report.md", "application/octet-stream"},
      {"title", "Quarterly", "", ""}};
  auto up = client_->Post("/api/v1/tasks", items);
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 202) << up->body;
  auto up_task = client_->Get("/api/v1/tasks/" + json::parse(up->body)["id"].get<std::string>());
  EXPECT_EQ(json::parse(up_task->body)["title"], "Quarterly");
  EXPECT_EQ(QueuedText(*queue_), "Report\n\nHelix hired Mara Voss.");

  httplib::MultipartFormDataItems no_file = {{"title", "x", "", ""}};
  ExpectError(client_->Post("/api/v1/tasks", no_file), 400, "no 'file' part");
  ExpectError(client_->Post("/api/v1/tasks", "x", "application/pdf"), 400, "unsupported Content-Type");
  ExpectError(client_->Post("/api/v1/tasks?format=pdf", "x", "text/plain"), 400, "'format' must be");
  ExpectError(client_->Post("/api/v1/tasks", std::string("ELF\0\1\2 data", 11), "text/plain"), 400, "NUL byte");
  ExpectError(client_->Post("/api/v1/tasks", " \n ", "text/plain"), 400, "blank");
  ExpectError(client_->Post("/api/v1/tasks", "<script>x()</script>", "text/html"), 400, "markup is stripped");
  ExpectError(client_->Post("/api/v1/tasks", std::string(2 * 1024 * 1024, 'x'), "text/plain"), 413, "KG_MAX_BODY_MB");
}

// A body sent chunked (no Content-Length), `size` bytes of `fill` after `head`.
httplib::ContentProviderWithoutLength Chunked(std::string head, size_t size, char fill, std::string tail = "") {
  return [=](size_t offset, httplib::DataSink& sink) {
    std::string piece;
    if (offset == 0) piece = head;
    size_t body_done = offset > head.size() ? offset - head.size() : 0;
    if (body_done < size) {
      piece += std::string(std::min<size_t>(64 * 1024, size - body_done), fill);
    } else if (offset < head.size() + size + tail.size()) {
      piece += tail;
    }
    if (piece.empty()) {
      sink.done();
    } else {
      sink.write(piece.data(), piece.size());
    }
    return true;
  };
}

// Verifies KG_MAX_BODY_MB holds for chunked bodies too (Debian's httplib checks only a
// Content-Length): chunked text/plain, JSON and multipart over the 1 MB limit are 413
// naming it, nothing is queued, and a chunked body under the limit is still accepted.
TEST_F(ApiTest, BodyLimitHoldsForChunkedBodies) {
  Start();
  const size_t over = 3 * 1024 * 1024;
  ExpectError(client_->Post("/api/v1/tasks", Chunked("", over, 'x'), "text/plain"), 413, "KG_MAX_BODY_MB");
  ExpectError(client_->Post("/api/v1/tasks", Chunked("{\"text\":\"", over, 'x', "\"}"), "application/json"), 413,
              "KG_MAX_BODY_MB");
  std::string head = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                     "Content-Type: text/plain\r\n\r\n";
  ExpectError(client_->Post("/api/v1/tasks", Chunked(head, over, 'x', "\r\n--XyZ--\r\n"),
                            "multipart/form-data; boundary=XyZ"),
              413, "KG_MAX_BODY_MB");
  // A path no route serves does not buffer the body either.
  ExpectError(client_->Post("/api/v1/nothing", Chunked("", over, 'x'), "text/plain"), 413, "KG_MAX_BODY_MB");
  EXPECT_EQ(QueuedText(*queue_), "");
  auto small = client_->Post("/api/v1/tasks", Chunked("Mara Voss founded Helix.", 0, 'x'), "text/plain");
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, 202) << small->body;
  auto small_mp = client_->Post("/api/v1/tasks", Chunked(head + "Ana Lund joined Meridian.", 0, 'x', "\r\n--XyZ--\r\n"),
                                "multipart/form-data; boundary=XyZ");
  ASSERT_TRUE(small_mp);
  EXPECT_EQ(small_mp->status, 202) << small_mp->body;
  EXPECT_EQ(QueuedText(*queue_), "Mara Voss founded Helix.Ana Lund joined Meridian.");
}

// Verifies JSON sent the way older clients send it is still read as JSON: curl -d's
// application/x-www-form-urlencoded and no content type at all; and JSON sent as
// text/plain is refused with a pointer to application/json instead of being stored braces
// and all (?format=text stores it as written).
TEST_F(ApiTest, JsonUnderOtherContentTypes) {
  Start();
  auto form = client_->Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix.","title":"Form"})",
                            "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  ASSERT_EQ(form->status, 202) << form->body;
  auto task = client_->Get("/api/v1/tasks/" + json::parse(form->body)["id"].get<std::string>());
  EXPECT_EQ(json::parse(task->body)["title"], "Form");
  EXPECT_EQ(QueuedText(*queue_), "Mara Voss founded Helix.");
  auto bare = RawExchange(port_,
                          "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 28\r\n\r\n"
                          R"({"text":"Ana Lund left it."})");
  EXPECT_EQ(RawStatus(bare), 202) << bare;
  EXPECT_EQ(QueuedText(*queue_), "Ana Lund left it.");
  ExpectError(client_->Post("/api/v1/tasks", "a=b&c=d", "application/x-www-form-urlencoded"), 400,
              "unsupported Content-Type");
  ExpectError(client_->Post("/api/v1/tasks", R"( {"text":"Mara Voss founded Helix."} )", "text/plain"), 400,
              "application/json");
  EXPECT_EQ(QueuedText(*queue_), "");
  auto as_written = client_->Post("/api/v1/tasks?format=text", R"({"text":"Mara Voss founded Helix."})", "text/plain");
  ASSERT_TRUE(as_written);
  EXPECT_EQ(as_written->status, 202) << as_written->body;
  EXPECT_EQ(QueuedText(*queue_), R"({"text":"Mara Voss founded Helix."})");
  // Plain text that merely has braces is still text.
  auto braces = client_->Post("/api/v1/tasks", "{Mara Voss founded Helix.}", "text/plain");
  ASSERT_TRUE(braces);
  EXPECT_EQ(braces->status, 202) << braces->body;
}

// Verifies unknown ids are 404, wrong methods 405, bad query values 400.
TEST_F(ApiTest, LookupErrors) {
  Start();
  ExpectError(client_->Get("/api/v1/tasks/t-nope"), 404, "not found");
  ExpectError(Post("/api/v1/tasks/t-nope/cancel", ""), 404, "not found");
  ExpectError(Post("/api/v1/tasks/t-nope/retry", ""), 404, "not found");
  ExpectError(client_->Get("/api/v1/graph/entities/person:nobody"), 404, "not found");
  ExpectError(client_->Get("/api/v1/nothing-here"), 404, "no such endpoint");
  ExpectError(client_->Delete("/api/v1/tasks"), 405, "not allowed");
  ExpectError(client_->Put("/api/v1/tasks", "{}", "application/json"), 405, "not allowed");
  ExpectError(client_->Post("/api/v1/graph/stats", "", "application/json"), 405, "not allowed");
  ExpectError(client_->Get("/api/v1/tasks?status=weird"), 400, "status must be");
  ExpectError(client_->Get("/api/v1/tasks?limit=-3"), 400, "limit");
  ExpectError(client_->Get("/api/v1/graph/export?format=csv"), 400, "json or graphml");
  ExpectError(client_->Put("/api/v1/providers/nope/processes", R"({"per_node":1})", "application/json"), 404, "unknown provider");
  ExpectError(client_->Put("/api/v1/providers/builtin/processes", R"({"per_node":-1})", "application/json"), 400, "per_node");
  ExpectError(client_->Put("/api/v1/providers/builtin/processes", R"({"per_node":"2"})", "application/json"), 400, "per_node");
}

// Verifies that with KG_API_TOKEN set every /api/ route, reads included, answers 401 without
// the token or with a wrong one and serves with the right one, while /healthz, /readyz and
// /metrics stay open, and the token never leaks.
TEST_F(ApiTest, BearerTokenOnEveryApiRoute) {
  Start("s3cret-token");
  httplib::Headers none;
  httplib::Headers wrong = {{"Authorization", "Bearer nope"}};
  httplib::Headers prefix = {{"Authorization", "Bearer s3cret"}};
  httplib::Headers right = {{"Authorization", "Bearer s3cret-token"}};
  const std::string submit = R"({"text":"Mara Voss founded Helix Dynamics."})";
  for (const auto* h : {&none, &wrong, &prefix}) {
    ExpectError(client_->Post("/api/v1/tasks", *h, submit, "application/json"), 401, "bearer token");
    ExpectError(client_->Put("/api/v1/providers/builtin/processes", *h, R"({"per_node":1})", "application/json"),
                401, "bearer token");
  }
  auto r = client_->Post("/api/v1/tasks", right, submit, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = json::parse(r->body)["id"];
  const std::vector<std::string> reads = {"/api/v1/tasks", "/api/v1/tasks/" + id, "/api/v1/providers",
                                          "/api/v1/workers", "/api/v1/graph/stats", "/api/v1/graph/entities?q=mara",
                                          "/api/v1/graph/export?format=json", "/api/v1/graph/export?format=graphml"};
  for (const auto& path : reads) {
    for (const auto* h : {&none, &wrong, &prefix}) {
      auto res = client_->Get(path, *h);
      ASSERT_TRUE(res) << path;
      EXPECT_EQ(res->status, 401) << path << " " << res->body;
      EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer") << path;
      EXPECT_EQ(res->body.find("Mara"), std::string::npos) << path << " leaks data without the token";
    }
    auto ok = client_->Get(path, right);
    ASSERT_TRUE(ok) << path;
    EXPECT_EQ(ok->status, 200) << path << " " << ok->body;
  }
  // The scheme is case-insensitive (RFC 7235), the token is not.
  auto lower = client_->Get("/api/v1/tasks", httplib::Headers{{"Authorization", "bearer s3cret-token"}});
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->status, 200) << lower->body;
  auto upper_token = client_->Get("/api/v1/tasks", httplib::Headers{{"Authorization", "Bearer S3CRET-TOKEN"}});
  ASSERT_TRUE(upper_token);
  EXPECT_EQ(upper_token->status, 401);
  auto missing = client_->Get("/api/v1/graph/entities/person:nobody", right);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404) << "the right token reaches the handler";
  for (const char* open : {"/healthz", "/readyz", "/metrics"}) {
    auto res = client_->Get(open);
    ASSERT_TRUE(res) << open;
    EXPECT_EQ(res->status, 200) << open << " must stay open for probes and scrapers";
    EXPECT_EQ(res->body.find("s3cret"), std::string::npos) << open;
  }
}

// Verifies the console is served from the binary: / is the page, every file the page names (and the
// graph library it loads on demand) comes with its type and the headers that keep it to its own node,
// the page is open under a token (it holds no data) and names no secret, and an unknown or
// path-like name is a JSON 404, not a file of the host.
TEST_F(ApiTest, ConsoleServedFromTheBinary) {
  Start("s3cret-token");
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200) << page->body;
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("data-testid=\"view-cluster\""), std::string::npos);
  EXPECT_EQ(page->body.find("s3cret"), std::string::npos);
  const std::string csp = page->get_header_value("Content-Security-Policy");
  for (const char* part : {"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"}) {
    EXPECT_NE(csp.find(part), std::string::npos) << csp;
  }
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  // Every src= and href= of the page that is a file of ours, plus the library graph.js loads.
  std::vector<std::string> files = {"cytoscape.min.js"};
  for (const char* attr : {"src=\"", "href=\""}) {
    for (size_t at = page->body.find(attr); at != std::string::npos; at = page->body.find(attr, at + 1)) {
      size_t from = at + std::strlen(attr);
      std::string v = page->body.substr(from, page->body.find('"', from) - from);
      if (v.find(':') == std::string::npos && v.find('#') == std::string::npos) files.push_back(v);
    }
  }
  ASSERT_GE(files.size(), 3u) << "the page names its script and style sheet";
  for (const auto& f : files) {
    auto r = client_->Get("/" + f);
    ASSERT_TRUE(r) << f;
    EXPECT_EQ(r->status, 200) << f;
    EXPECT_GT(r->body.size(), 100u) << f;
    std::string want = f.ends_with(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8";
    EXPECT_EQ(r->get_header_value("Content-Type"), want) << f;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << f;
  }
  // A browser's copy that is current costs a 304 and no body; a stale one gets the file.
  const std::string etag = page->get_header_value("ETag");
  ASSERT_GE(etag.size(), 3u);
  EXPECT_EQ(etag.front(), '"');
  auto same = client_->Get("/", httplib::Headers{{"If-None-Match", etag}});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->status, 304);
  EXPECT_TRUE(same->body.empty());
  auto stale = client_->Get("/", httplib::Headers{{"If-None-Match", "\"0000\""}});
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->status, 200);
  EXPECT_EQ(stale->body, page->body);
  auto app = client_->Get("/app.js");
  ASSERT_TRUE(app);
  EXPECT_NE(app->get_header_value("ETag"), etag) << "each file has its own";
  ExpectError(client_->Get("/nope.js"), 404, "no such file");
  for (const char* odd : {"/../CMakeCache.txt", "/%2e%2e/etc/passwd.js", "/.hidden.js", "/dir/app.js"}) {
    auto r = client_->Get(odd);
    ASSERT_TRUE(r) << odd;
    EXPECT_EQ(r->status, 404) << odd << " " << r->body;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << odd;
  }
}

// Verifies a provider name from TOML holding a double quote, a backslash and a newline
// reaches /metrics as a label value that a strict text-format parser reads back intact,
// and that every line of the page parses.
TEST_F(ApiTest, MetricsLabelValuesEscaped) {
  const std::string weird = "we\"ird\\name\nline";
  std::string toml = dir_.File("kg.toml");
  testing::WriteFile(toml, "[providers.builtin]\nkind = \"builtin\"\n"
                           "[providers.\"we\\\"ird\\\\name\\nline\"]\nkind = \"builtin\"\n");
  Start("", {{"KG_CONFIG", toml}});
  ASSERT_TRUE(config_.HasProvider(weird)) << config_.KnownProviders();
  auto r = Post("/api/v1/tasks", json({{"text", "Mara Voss founded Helix Dynamics."}, {"provider", weird}}).dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  std::string error;
  auto samples = ParseMetrics(m->body, &error);
  ASSERT_EQ(error, "") << m->body;
  bool found = false;
  int graph_lines = 0;
  for (const auto& s : samples) {
    if (s.name == "kg_queue_chunks" && s.labels.count("provider") && s.labels.at("provider") == weird &&
        s.labels.at("state") == "ready") {
      found = true;
      EXPECT_EQ(s.value, 1);
    }
    if (s.name == "kg_graph_nodes") ++graph_lines;
  }
  EXPECT_TRUE(found) << m->body;
  EXPECT_EQ(graph_lines, 3) << "normal names parse too: " << m->body;
}

// The samples of this server's /metrics page (a test failure when it does not parse).
std::vector<Sample> Scrape(httplib::Client& c) {
  auto m = c.Get("/metrics");
  EXPECT_TRUE(m && m->status == 200);
  if (!m) return {};
  std::string error;
  auto samples = ParseMetrics(m->body, &error);
  EXPECT_EQ(error, "") << m->body;
  return samples;
}

// Verifies kg_ready follows the /readyz check (1 while it answers 200, 0 once the node stops
// taking work) and kg_tasks_submitted_total counts the tasks each submission path accepted
// (single JSON, text/plain upload, a batch of 2) and not a refused one.
TEST_F(ApiTest, MetricsReadyAndSubmittedTasks) {
  Start();
  EXPECT_EQ(testing::Value(Scrape(*client_), "kg_ready"), 1);
  EXPECT_EQ(testing::Value(Scrape(*client_), "kg_tasks_submitted_total"), 0);
  EXPECT_EQ(testing::Value(Scrape(*client_), "kg_cluster_reporter"), 1) << "a node alone reports";
  auto one = Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics."})");
  ASSERT_TRUE(one && one->status == 202);
  auto text = client_->Post("/api/v1/tasks?title=t", "Ingrid Halvorsen works at Kestrel Labs.", "text/plain");
  ASSERT_TRUE(text && text->status == 202) << (text ? text->body : "");
  auto batch = Post("/api/v1/tasks/batch", R"([{"text":"Anna Berg leads Orion Labs."},{"text":"Tom Reed joined Vega Corp."}])");
  ASSERT_TRUE(batch && batch->status == 201) << (batch ? batch->body : "");
  ExpectError(Post("/api/v1/tasks", R"({"text":""})"), 400, "empty");
  EXPECT_EQ(testing::Value(Scrape(*client_), "kg_tasks_submitted_total"), 4);
  server_->StopTakingWork();
  auto ready = client_->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(testing::Value(Scrape(*client_), "kg_ready"), 0);
}

// Verifies GET /api/v1/graph/export streams (chunked transfer, no Content-Length) a
// complete document in both formats.
TEST_F(ApiTest, ExportStreamsChunked) {
  Start();
  std::vector<GraphBatch> batches;
  for (int i = 0; i < 300; ++i) {
    GraphBatch b;
    b.doc = {"d1", "Doc", "src"};
    b.chunk = {"d1:" + std::to_string(i), "d1", i, std::string(400, 'x')};
    std::string k = "person:p" + std::to_string(i);
    b.entities = {{k, "P" + std::to_string(i), "Person", "", 0}, {"organization:o", "O", "Organization", "", 0}};
    b.relations = {{k, "organization:o", "WORKS_AT", {}, 0}};
    batches.push_back(b);
  }
  ASSERT_TRUE(graph_->Merge(batches).ok());
  auto j = client_->Get("/api/v1/graph/export?format=json");
  ASSERT_TRUE(j);
  ASSERT_EQ(j->status, 200);
  EXPECT_EQ(j->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(j->has_header("Content-Length"));
  json doc = json::parse(j->body, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << j->body.substr(0, 500);
  EXPECT_EQ(doc["chunks"].size(), 300u);
  EXPECT_EQ(doc["entities"].size(), 301u);
  EXPECT_EQ(doc["mentions"].size(), 600u);
  EXPECT_EQ(doc["relations"].size(), 300u);
  auto g = client_->Get("/api/v1/graph/export?format=graphml");
  ASSERT_TRUE(g);
  ASSERT_EQ(g->status, 200);
  EXPECT_EQ(g->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_NE(g->body.find("</graphml>"), std::string::npos);
}

// What a real XML parser (libexpat) reads from a GraphML document.
struct ParsedGraphml {
  std::string error;                                    // empty when well-formed
  std::map<std::string, std::map<std::string, std::string>> nodes;  // id -> data key -> text
  std::vector<std::pair<std::string, std::string>> edges;           // (source, target)
};

ParsedGraphml ParseGraphml(const std::string& xml) {
  struct State {
    ParsedGraphml out;
    std::string node, key, text;
    bool in_data = false;
  } st;
  XML_Parser p = XML_ParserCreate("UTF-8");
  XML_SetUserData(p, &st);
  XML_SetElementHandler(
      p,
      [](void* ud, const XML_Char* name, const XML_Char** attrs) {
        auto* s = static_cast<State*>(ud);
        std::map<std::string, std::string> a;
        for (int i = 0; attrs[i]; i += 2) a[attrs[i]] = attrs[i + 1];
        std::string n = name;
        if (n == "node") s->node = a["id"], s->out.nodes[s->node];
        if (n == "edge") s->out.edges.emplace_back(a["source"], a["target"]);
        if (n == "data") s->in_data = true, s->key = a["key"], s->text.clear();
      },
      [](void* ud, const XML_Char* name) {
        auto* s = static_cast<State*>(ud);
        std::string n = name;
        if (n == "data") {
          if (!s->node.empty()) s->out.nodes[s->node][s->key] = s->text;
          s->in_data = false;
        }
        if (n == "node") s->node.clear();
      });
  XML_SetCharacterDataHandler(p, [](void* ud, const XML_Char* text, int len) {
    auto* s = static_cast<State*>(ud);
    if (s->in_data) s->text.append(text, static_cast<size_t>(len));
  });
  if (XML_Parse(p, xml.data(), static_cast<int>(xml.size()), 1) == XML_STATUS_ERROR) {
    st.out.error = std::string(XML_ErrorString(XML_GetErrorCode(p))) + " at line " +
                   std::to_string(XML_GetCurrentLineNumber(p));
  }
  XML_ParserFree(p);
  return st.out;
}

// Verifies every character XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE, U+FFFF,
// invalid UTF-8, overlong forms, UTF-8-encoded surrogates, truncated sequences) leaves the
// GraphML export well-formed for libexpat, in element text and attribute values, with
// tab, LF, CR and valid UTF-8 kept exactly; and the JSON export stays valid UTF-8.
TEST_F(ApiTest, ExportSurvivesCharactersXmlForbids) {
  Start();
  const std::string kept = "tab\there\nline\rcr & <x> \"q\" 'a' é€😀";
  const std::string bad = std::string("\x01\x08\x0B\x0C\x1F") + "|" + "\xEF\xBF\xBE" + "|" + "\xEF\xBF\xBF" + "|" +
                          "\xFF" + "|" + "\xC0\x80" + "|" + "\xED\xA0\x80" + "|" + "\xED\xBF\xBF" + "|" + "\xF4\x90\x80\x80" +
                          "|" + "\xE2\x82";
  const std::string fffd = "\xEF\xBF\xBD";
  const std::string bad_clean = fffd + fffd + fffd + fffd + fffd + "|" + fffd + "|" + fffd + "|" + fffd + "|" + fffd +
                                fffd + "|" + fffd + "|" + fffd + "|" + fffd + "|" + fffd + fffd;
  const std::string value = kept + bad;
  GraphBatch b;
  b.doc = {"doc\x01" + kept, "title " + value, "src"};
  b.chunk = {"chunk\x02" + kept, b.doc.id, 0, "text " + value};
  b.entities = {{"person:" + value, "name " + value, "type\x03", "desc " + value, 0},
                {"organization:o", "O", "Organization", "", 0}};
  b.relations = {{"person:" + value, "organization:o", "REL\x04" + bad, {}, 0}};
  ASSERT_TRUE(graph_->Merge({b}).ok());

  auto g = client_->Get("/api/v1/graph/export?format=graphml");
  ASSERT_TRUE(g);
  ASSERT_EQ(g->status, 200);
  ParsedGraphml x = ParseGraphml(g->body);
  ASSERT_EQ(x.error, "") << g->body;
  const std::string person = "entity:person:" + kept + bad_clean;
  ASSERT_TRUE(x.nodes.count(person)) << "attribute value mangled: " << g->body;
  EXPECT_EQ(x.nodes[person]["name"], "name " + kept + bad_clean);
  EXPECT_EQ(x.nodes[person]["text"], "desc " + kept + bad_clean);
  EXPECT_EQ(x.nodes[person]["type"], "type" + fffd);
  const std::string chunk = "chunk:chunk" + fffd + kept;
  ASSERT_TRUE(x.nodes.count(chunk)) << g->body;
  EXPECT_EQ(x.nodes[chunk]["text"], "text " + kept + bad_clean);
  EXPECT_EQ(x.nodes["doc:doc" + fffd + kept]["name"], "title " + kept + bad_clean);
  bool relation = false;
  for (const auto& [src, dst] : x.edges) relation = relation || (src == person && dst == "entity:organization:o");
  EXPECT_TRUE(relation) << g->body;

  auto j = client_->Get("/api/v1/graph/export?format=json");
  ASSERT_TRUE(j);
  ASSERT_EQ(j->status, 200);
  json doc = json::parse(j->body, nullptr, false);  // strict: invalid UTF-8 is a parse error
  ASSERT_FALSE(doc.is_discarded()) << "JSON export is not valid UTF-8 JSON";
  ASSERT_EQ(doc["entities"].size(), 2u);
  EXPECT_EQ(doc["relations"][0]["target"], "organization:o");
}

// Verifies submit, get, cancel and retry over HTTP with the queue state behind them.
TEST_F(ApiTest, TaskLifecycle) {
  Start();
  auto r = Post("/api/v1/tasks", R"({"text":"One sentence. Another sentence.","title":"Doc"})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202);
  json sub = json::parse(r->body);
  std::string id = sub["id"];
  EXPECT_EQ(sub["status"], "queued");
  EXPECT_EQ(sub["chunks_total"], 1);
  auto g = client_->Get("/api/v1/tasks/" + id);
  ASSERT_EQ(g->status, 200);
  EXPECT_EQ(json::parse(g->body)["status"], "queued");
  auto c = Post("/api/v1/tasks/" + id + "/cancel", "");
  ASSERT_EQ(c->status, 200) << c->body;
  EXPECT_EQ(json::parse(c->body)["status"], "cancelled");
  auto again = Post("/api/v1/tasks/" + id + "/retry", "");
  ASSERT_EQ(again->status, 202) << again->body;
  EXPECT_EQ(json::parse(again->body)["status"], "queued");
  EXPECT_EQ(json::parse(again->body)["chunks_requeued"], 1);
  auto retry_queued = Post("/api/v1/tasks/" + id + "/retry", "");
  EXPECT_EQ(retry_queued->status, 409);
  auto list = client_->Get("/api/v1/tasks?status=queued&limit=5");
  ASSERT_EQ(list->status, 200);
  EXPECT_EQ(json::parse(list->body)["tasks"].size(), 1u);
  // Finished (here by hand: this node runs no workers), a task cannot be cancelled any more.
  auto leases = queue_->LeaseChunks("builtin", "test", 5, 60000, true);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  ASSERT_TRUE(queue_->Ack((*leases)[0].chunk_id, (*leases)[0].token).ok());
  ExpectError(Post("/api/v1/tasks/" + id + "/cancel", ""), 409, "is done");
  auto done = client_->Get("/api/v1/tasks/" + id);
  ASSERT_TRUE(done);
  EXPECT_EQ(json::parse(done->body)["status"], "done");
  auto listed = client_->Get("/api/v1/tasks?status=done");
  ASSERT_TRUE(listed);
  EXPECT_EQ(json::parse(listed->body)["tasks"].size(), 1u) << "the list reads the queue's truth too";
  for (const char* path : {"/healthz", "/readyz", "/metrics", "/", "/api/v1/workers", "/api/v1/graph/stats",
                           "/api/v1/graph/entities?q=x", "/api/v1/graph/export?format=graphml"}) {
    auto h = client_->Get(path);
    ASSERT_TRUE(h) << path;
    EXPECT_EQ(h->status, 200) << path << " " << h->body;
  }
}

// Verifies the scale answer names the cap that actually binds, with the target and every cap's value: with a
// total cap of 3 and one provider the total binds (the per-provider cap defaults to it and used to be named),
// with another provider running 1 the total still binds with 2 left, and an explicit lower per-provider cap is
// named when it is the one.
TEST_F(ApiTest, ScaleAnswerNamesTheBindingCap) {
  testing::WriteFile(dir_.File("kg.toml"), "[providers.alpha]\n[providers.beta]\n");
  Start("", {{"KG_CONFIG", dir_.File("kg.toml")}, {"KG_MAX_TOTAL_PROCESSES", "3"}});
  auto r = client_->Put("/api/v1/providers/beta/processes", R"({"per_node":5})", "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
  json j = json::parse(r->body);
  EXPECT_EQ(j["target"], 2) << j;  // alpha keeps its configured 1 of the 3
  EXPECT_EQ(j["per_node"], 2) << j;
  EXPECT_EQ(j["requested"], 5);
  EXPECT_EQ(j["binding_cap"], json({{"name", "KG_MAX_TOTAL_PROCESSES"}, {"value", 3}})) << j;
  EXPECT_EQ(j["reason"], "KG_MAX_TOTAL_PROCESSES=3 (1 taken by other providers)") << j;
  EXPECT_EQ(j["caps"], json({{"KG_MAX_TOTAL_PROCESSES", 3}, {"KG_MAX_PROCESSES_PER_PROVIDER", 3}})) << j;
  EXPECT_TRUE(j["node"].is_null()) << "a node without a supervisor runs nothing itself";
  // Asking for what fits: nothing binds.
  r = client_->Put("/api/v1/providers/beta/processes", R"({"per_node":2})", "application/json");
  ASSERT_TRUE(r && r->status == 200);
  j = json::parse(r->body);
  EXPECT_TRUE(j["binding_cap"].is_null()) << j;
  EXPECT_FALSE(j["clamped"].get<bool>());
  EXPECT_EQ(j["target"], 2);
}

// Verifies the same with one provider (the issue's case: `scale beta 5` with a total cap of 3) and with an
// explicit per-provider cap below the total.
TEST_F(ApiTest, ScaleAnswerNamesTheTotalOrThePerProviderCap) {
  Start("", {{"KG_MAX_TOTAL_PROCESSES", "3"}});
  auto r = client_->Put("/api/v1/providers/builtin/processes", R"({"per_node":5})", "application/json");
  ASSERT_TRUE(r && r->status == 200);
  json j = json::parse(r->body);
  EXPECT_EQ(j["target"], 3) << j;
  EXPECT_EQ(j["binding_cap"]["name"], "KG_MAX_TOTAL_PROCESSES") << j;
  EXPECT_EQ(j["reason"], "KG_MAX_TOTAL_PROCESSES=3") << j;
  TearDown();
  server_.reset();
  Start("", {{"KG_MAX_TOTAL_PROCESSES", "3"}, {"KG_MAX_PROCESSES_PER_PROVIDER", "2"}});
  r = client_->Put("/api/v1/providers/builtin/processes", R"({"per_node":5})", "application/json");
  ASSERT_TRUE(r && r->status == 200);
  j = json::parse(r->body);
  EXPECT_EQ(j["target"], 2) << j;
  EXPECT_EQ(j["binding_cap"], json({{"name", "KG_MAX_PROCESSES_PER_PROVIDER"}, {"value", 2}})) << j;
}

// Verifies a task submitted while no live node runs a process of its provider says so in the submit answer,
// GET task and the task list ("no worker is serving provider X", computed from the node registry), that the
// warning goes when a live node reports a process of that provider, and comes back when that node goes stale.
TEST_F(ApiTest, SubmitWarnsWhileNoWorkerServesTheProvider) {
  Start();
  const std::string warning = "no worker is serving provider builtin";
  auto r = Post("/api/v1/tasks", R"({"text":"One sentence. Another sentence.","title":"Doc"})");
  ASSERT_TRUE(r && r->status == 202);
  json sub = json::parse(r->body);
  EXPECT_EQ(sub["warning"], warning) << sub;
  std::string id = sub["id"];
  auto task = [&] { return json::parse(client_->Get("/api/v1/tasks/" + id)->body); };
  EXPECT_EQ(task()["warning"], warning);
  EXPECT_EQ(json::parse(client_->Get("/api/v1/tasks")->body)["tasks"][0]["warning"], warning);

  // A node of another provider, and a stopping process, do not serve it.
  NodeRecord n{"w1", "worker", "elsewhere", 4242, NowMs(), R"([{"pid":77,"provider":"other","state":"idle"},)"
               R"({"pid":78,"provider":"builtin","state":"stopping"}])", 60000};
  ASSERT_TRUE(*store_->PutNodeIf(n, std::nullopt));
  EXPECT_EQ(task()["warning"], warning);
  NodeRecord held = n;
  n.processes_json = R"([{"pid":79,"provider":"builtin","state":"idle"}])";
  n.heartbeat_at_ms = NowMs();
  ASSERT_TRUE(*store_->PutNodeIf(n, held));
  EXPECT_TRUE(task()["warning"].is_null()) << task();
  EXPECT_TRUE(json::parse(client_->Get("/api/v1/tasks")->body)["tasks"][0]["warning"].is_null());
  r = Post("/api/v1/tasks", R"({"text":"One more sentence.","title":"Doc2"})");
  ASSERT_TRUE(r && r->status == 202);
  EXPECT_TRUE(json::parse(r->body)["warning"].is_null()) << r->body;

  // Its heartbeat late (more than two of its intervals): its processes are unknown, the warning is back.
  held = n;
  n.heartbeat_at_ms = NowMs() - 3 * n.heartbeat_ms;
  ASSERT_TRUE(*store_->PutNodeIf(n, held));
  EXPECT_EQ(task()["warning"], warning);
  // It has left the live nodes for "down".
  json w = json::parse(client_->Get("/api/v1/workers")->body);
  EXPECT_EQ(w["nodes"].size(), 0u) << w;
  ASSERT_EQ(w["down"].size(), 1u) << w;
  EXPECT_TRUE(w["down"][0]["stale"].get<bool>()) << w;
  EXPECT_GE(w["down"][0]["heartbeat_age_ms"].get<int64_t>(), 3 * n.heartbeat_ms) << w;
  EXPECT_EQ(w["down"][0]["processes"][0]["pid"], 0) << w;
  EXPECT_EQ(w["down"][0]["processes"][0]["last_pid"], 79) << w;
  EXPECT_EQ(w["down"][0]["processes"][0]["state"], "unknown") << w;

  // A finished task warns no more.
  ASSERT_EQ(Post("/api/v1/tasks/" + id + "/cancel", "")->status, 200);
  EXPECT_TRUE(task()["warning"].is_null()) << task();
}

// Verifies cancel and retry sent as `curl -X POST URL` sends them (no body, no
// Content-Length, no Transfer-Encoding) reach their routes and get the routes' own answers:
// 401 without the token, 404 for an unknown task, 200 and 202 for a known one.
TEST_F(ApiTest, CancelAndRetryWithoutContentLength) {
  Start("tok");
  auto r = client_->Post("/api/v1/tasks", httplib::Headers{{"Authorization", "Bearer tok"}},
                         R"({"text":"One sentence.","title":"Doc"})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  std::string id = json::parse(r->body)["id"];
  auto bare = [&](const std::string& path, const std::string& auth) {
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!auth.empty()) req += "Authorization: Bearer " + auth + "\r\n";
    return RawExchange(port_, req + "\r\n");
  };
  for (const char* op : {"cancel", "retry"}) {
    std::string path = std::string("/api/v1/tasks/t-nope/") + op;
    auto unauth = bare(path, "");
    EXPECT_EQ(RawStatus(unauth), 401) << unauth;
    auto unknown = bare(path, "tok");
    EXPECT_EQ(RawStatus(unknown), 404) << unknown;
    EXPECT_NE(unknown.find("not found"), std::string::npos) << unknown;
  }
  auto cancelled = bare("/api/v1/tasks/" + id + "/cancel", "tok");
  EXPECT_EQ(RawStatus(cancelled), 200) << cancelled;
  EXPECT_NE(cancelled.find("\"cancelled\""), std::string::npos) << cancelled;
  auto retried = bare("/api/v1/tasks/" + id + "/retry", "tok");
  EXPECT_EQ(RawStatus(retried), 202) << retried;
  // An empty body with an explicit Content-Length: 0 is as fine.
  auto zero = RawExchange(port_, "POST /api/v1/tasks/t-nope/cancel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 "Authorization: Bearer tok\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(RawStatus(zero), 404) << zero;
}

// Verifies GET /api/v1/graph/entities/{key} takes a name too: one match answers as the
// key does, several answer 300 with the candidate keys, none 404; keys still work.
TEST_F(ApiTest, EntityByName) {
  Start();
  GraphBatch b;
  b.doc = {"d1", "Doc", "src.txt"};
  b.chunk = {"d1:0", "d1", 0, "Meridian Analytics hired Mara Voss in Meridian."};
  b.entities = {{"organization:meridian analytics", "Meridian Analytics", "Organization", "", 0},
                {"person:mara voss", "Mara Voss", "Person", "", 0},
                {"location:meridian", "Meridian", "Location", "", 0},
                {"organization:meridian", "Meridian", "Organization", "", 0}};
  b.relations = {{"organization:meridian analytics", "person:mara voss", "EMPLOYS", {}, 0}};
  ASSERT_TRUE(graph_->Merge({b}).ok());
  for (const char* path : {"/api/v1/graph/entities/organization:meridian%20analytics",
                           "/api/v1/graph/entities/Meridian%20Analytics",
                           "/api/v1/graph/entities/meridian%20%20ANALYTICS"}) {
    auto r = client_->Get(path);
    ASSERT_TRUE(r) << path;
    ASSERT_EQ(r->status, 200) << path << " " << r->body;
    json j = json::parse(r->body);
    EXPECT_EQ(j["key"], "organization:meridian analytics") << path;
    ASSERT_EQ(j["neighbours"].size(), 1u) << path;
    EXPECT_EQ(j["neighbours"][0]["entity"]["mentions"], 1) << "the neighbour's own mentions";
  }
  auto amb = client_->Get("/api/v1/graph/entities/meridian");
  ASSERT_TRUE(amb);
  EXPECT_EQ(amb->status, 300) << amb->body;
  json j = json::parse(amb->body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << amb->body;
  EXPECT_TRUE(j.contains("error")) << amb->body;
  EXPECT_EQ(j["candidates"], json::array({"location:meridian", "organization:meridian"})) << amb->body;
  ExpectError(client_->Get("/api/v1/graph/entities/Nobody%20Here"), 404, "not found");
  ExpectError(client_->Get("/api/v1/graph/entities/person:meridian"), 404, "not found");
}

// Verifies an entity's view carries the text of the chunks behind its relations and mentions
// ("evidence": chunk id -> doc_id, idx, text cut to 1000 bytes on a UTF-8 boundary) and, per
// relation, the first sentence naming both ends whatever their case, or null when none does.
TEST_F(ApiTest, EntityCarriesEvidenceTextAndSentence) {
  Start();
  auto batch = [](const std::string& chunk, int idx, const std::string& text) {
    GraphBatch b;
    b.doc = {"d1", "Doc", "src.txt"};
    b.chunk = {chunk, "d1", idx, text};
    b.entities = {{"person:mara voss", "Mara Voss", "Person", "", 0}};
    return b;
  };
  GraphBatch founded = batch("d1:0", 0, "Helix Dynamics opened a lab. Later, MARA  VOSS founded helix dynamics. Done.");
  founded.entities.push_back({"organization:helix dynamics", "Helix Dynamics", "Organization", "", 0});
  founded.relations = {{"person:mara voss", "organization:helix dynamics", "FOUNDED", {}, 0}};
  GraphBatch apart = batch("d1:1", 1, "Orbital Labs is far away. Mara Voss rests.");
  apart.entities.push_back({"organization:orbital labs", "Orbital Labs", "Organization", "", 0});
  apart.relations = {{"person:mara voss", "organization:orbital labs", "VISITED", {}, 0}};
  std::string long_text = "Mara Voss wrote: ";
  while (long_text.size() < 1500) long_text += "\u674e\u660e\u00e9";  // 3 + 3 + 2 bytes
  GraphBatch mention = batch("d1:2", 2, long_text);
  ASSERT_TRUE(graph_->Merge({founded, apart, mention}).ok());

  auto r = client_->Get("/api/v1/graph/entities/person:mara%20voss");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["evidence_truncated"], false);
  ASSERT_EQ(j["evidence"].size(), 3u) << j["evidence"];
  EXPECT_EQ(j["evidence"]["d1:0"]["doc_id"], "d1");
  EXPECT_EQ(j["evidence"]["d1:0"]["idx"], 0);
  EXPECT_EQ(j["evidence"]["d1:0"]["text"], founded.chunk.text);
  EXPECT_EQ(j["evidence"]["d1:1"]["text"], apart.chunk.text);
  const std::string cut = j["evidence"]["d1:2"]["text"];
  EXPECT_LE(cut.size(), 1000u);
  EXPECT_GT(cut.size(), 990u);
  EXPECT_EQ(long_text.compare(0, cut.size(), cut), 0) << "a prefix of the chunk's text";
  EXPECT_TRUE(IsValidUtf8(cut));
  ASSERT_EQ(j["neighbours"].size(), 2u);
  for (const json& n : j["neighbours"]) {
    if (n["entity"]["key"] == "organization:helix dynamics") {
      EXPECT_EQ(n["sentence"], "Later, MARA  VOSS founded helix dynamics.") << n;
      EXPECT_EQ(n["sentence_chunk"], "d1:0") << n;
    } else {
      EXPECT_TRUE(n["sentence"].is_null()) << "no sentence names both Mara Voss and Orbital Labs: " << n;
      EXPECT_TRUE(n["sentence_chunk"].is_null()) << n;
    }
  }
}

// Verifies the evidence of an entity view is capped at 50 chunks, one of every relation's first
// and then the heaviest relation's, and says so ("evidence_truncated"); the relations keep every id.
TEST_F(ApiTest, EntityEvidenceIsCappedHeaviestFirst) {
  Start();
  std::vector<GraphBatch> batches;
  auto batch = [](const std::string& doc, const std::string& chunk, int idx, const std::string& other) {
    GraphBatch b;
    b.doc = {doc, doc, doc + ".txt"};
    b.chunk = {chunk, doc, idx, "Mara Voss met " + other + "."};
    b.entities = {{"person:mara voss", "Mara Voss", "Person", "", 0},
                  {EntityKey(other, "Organization"), other, "Organization", "", 0}};
    b.relations = {{"person:mara voss", EntityKey(other, "Organization"), "MET", {}, 0}};
    return b;
  };
  // Helix comes first in the store's order (by key), Orbital weighs more.
  batches.push_back(batch("d1", "h:0", 0, "Helix Dynamics"));
  for (int i = 0; i < 55; ++i) batches.push_back(batch("d2", "o:" + std::to_string(100 + i), i, "Orbital Labs"));
  ASSERT_TRUE(graph_->Merge(batches).ok());
  auto r = client_->Get("/api/v1/graph/entities/person:mara%20voss");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["evidence_truncated"], true);
  EXPECT_EQ(j["evidence"].size(), 50u);
  // One chunk of each relation, then Orbital's (the heavier) in order: o:100 .. o:148.
  EXPECT_TRUE(j["evidence"].contains("h:0")) << "every relation keeps a chunk for its sentence";
  EXPECT_TRUE(j["evidence"].contains("o:148"));
  EXPECT_FALSE(j["evidence"].contains("o:149"));
  ASSERT_EQ(j["neighbours"].size(), 2u);
  EXPECT_EQ(j["neighbours"][1]["evidence"].size(), 55u) << "relations keep every chunk id";
  EXPECT_EQ(j["neighbours"][0]["sentence"], "Mara Voss met Helix Dynamics.");
  EXPECT_EQ(j["neighbours"][1]["sentence"], "Mara Voss met Orbital Labs.");
}


// ---------------------------------------------------------------------------------------
// The review of the new server (issue 8), as the api sees it.

// A raw loopback connection: sends what the test says, reads answers one by one with a
// deadline, so that a test sees what comes before it sends a body.
class RawConn {
 public:
  explicit RawConn(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool connected() const { return connected_; }
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // The next answer's status line and headers, and its body when it has a Content-Length;
  // "" when none comes within `timeout` or the connection ends first.
  std::string ReadAnswer(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore(deadline)) return "";
    }
    std::string head = buf_.substr(0, end + 4);
    size_t length = 0;
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (size_t cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
      length = std::stoul(head.substr(cl + 17));
    }
    while (buf_.size() < end + 4 + length) {
      if (!ReadMore(deadline)) return "";
    }
    std::string answer = buf_.substr(0, end + 4 + length);
    buf_.erase(0, answer.size());
    return answer;
  }
  // True when the server closes the connection within `timeout` (what it still sends is dropped).
  bool WaitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      buf_.clear();
      if (!ReadMore(deadline)) return eof_;
    }
  }

 private:
  bool ReadMore(std::chrono::steady_clock::time_point deadline) {
    if (eof_) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count()))) <= 0) return false;
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

// The body of a raw answer.
std::string RawBody(const std::string& answer) {
  size_t end = answer.find("\r\n\r\n");
  return end == std::string::npos ? "" : answer.substr(end + 4);
}

// Finding 4: with KG_API_TOKEN set, a guarded POST with a wrong token and a 5 MB declared body
// gets 401 before a byte of the body is sent (JSON, text/plain and the scale route alike), and
// with "Expect: 100-continue" no 100 comes first; the connection then closes.
TEST_F(ApiTest, WrongTokenIs401BeforeTheBody) {
  Start("s3cret-token", {{"KG_MAX_BODY_MB", "10"}});  // 5 MB is under the limit: only the token refuses it
  struct Case {
    std::string target, type, expect;
  };
  const std::vector<Case> cases = {
      {"/api/v1/tasks", "application/json", ""},
      {"/api/v1/tasks?title=x", "text/plain", ""},
      {"/api/v1/providers/builtin/processes", "application/json", ""},
      {"/api/v1/tasks", "application/json", "Expect: 100-continue\r\n"},
      {"/api/v1/tasks?title=x", "text/plain", "Expect: 100-continue\r\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.target + " " + c.type + " " + c.expect);
    RawConn conn(port_);
    ASSERT_TRUE(conn.connected());
    const std::string method = c.target.find("processes") != std::string::npos ? "PUT" : "POST";
    ASSERT_TRUE(conn.Send(method + " " + c.target + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nope\r\n" +
                          "Content-Type: " + c.type + "\r\nContent-Length: 5000000\r\n" + c.expect + "\r\n"));
    std::string answer = conn.ReadAnswer();
    ASSERT_NE(answer, "") << "no answer before the body was sent";
    EXPECT_EQ(RawStatus(answer), 401) << answer.substr(0, 200);
    json j = json::parse(RawBody(answer), nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << answer;
    EXPECT_NE(j["error"].get<std::string>().find("bearer token"), std::string::npos) << answer;
    EXPECT_TRUE(conn.WaitClosed()) << "the connection stays open for a body nobody reads";
  }
  auto list = client_->Get("/api/v1/tasks", httplib::Headers{{"Authorization", "Bearer s3cret-token"}});
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["tasks"].size(), 0u);
}

// Finding 8: a text/plain upload that began before StopTakingWork() and finishes after it
// is 503 (stopping), not 202, and queues nothing. "Expect: 100-continue" makes the order
// certain: the server sends 100 only once the route has accepted the upload's head.
TEST_F(ApiTest, UploadFinishingAfterStopTakingWorkIs503) {
  Start();
  const std::string first = "Mara Voss founded Helix Dynamics in Oslo. ";
  const std::string rest = "Ana Lund joined Meridian Analytics in Bergen.\n";
  RawConn conn(port_);
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Send("POST /api/v1/tasks?title=late HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                        "Expect: 100-continue\r\nContent-Length: " +
                        std::to_string(first.size() + rest.size()) + "\r\n\r\n"));
  std::string go = conn.ReadAnswer();
  ASSERT_EQ(RawStatus(go), 100) << go;
  ASSERT_TRUE(conn.Send(first));
  server_->StopTakingWork();
  ASSERT_TRUE(conn.Send(rest));
  std::string answer = conn.ReadAnswer();
  ASSERT_NE(answer, "") << "no answer";
  EXPECT_EQ(RawStatus(answer), 503) << answer;
  json j = json::parse(RawBody(answer), nullptr, false);
  ASSERT_TRUE(j.is_object()) << answer;
  EXPECT_EQ(j.value("reason", ""), "stopping") << answer;
  EXPECT_EQ(QueuedText(*queue_), "") << "the upload was queued";
  auto list = client_->Get("/api/v1/tasks");
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["tasks"].size(), 0u) << list->body;
}

}  // namespace
}  // namespace kg

namespace kg {
namespace {

// The ids of a batch answer's tasks, in its order.
std::vector<std::string> BatchIds(const std::string& body) {
  std::vector<std::string> ids;
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("tasks")) return ids;
  for (const auto& t : j["tasks"]) ids.push_back(t.value("id", ""));
  return ids;
}

// Verifies POST /api/v1/tasks/batch takes NDJSON (blank lines and \r\n allowed) and a JSON
// array, creates one task per document in input order with every field of the JSON shape
// (title, provider, source, id as the graph document, format), queues every chunk, and
// answers 201 with the ids and chunk counts.
TEST_F(ApiTest, BatchSubmitCreatesEveryTaskInOrder) {
  Start();
  const std::string ndjson =
      "{\"text\":\"Mara Voss founded Helix Dynamics.\",\"title\":\"one\",\"source\":\"a.txt\",\"id\":\"doc-1\"}\r\n"
      "\n"
      "{\"text\":\"<p>Ana Lund joined <b>Meridian</b>.</p>\",\"format\":\"html\",\"provider\":\"builtin\"}\n"
      "{\"text\":\"Tomas Reyes led Ardent Capital.\",\"title\":\"three\"}";
  auto r = client_->Post("/api/v1/tasks/batch", ndjson, "application/x-ndjson");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  json j = json::parse(r->body);
  ASSERT_EQ(j["tasks"].size(), 3u) << r->body;
  EXPECT_EQ(j["warnings"], json::array({"no worker is serving provider builtin"})) << "this node runs no worker";
  std::vector<std::string> ids = BatchIds(r->body);
  const std::vector<std::string> titles = {"one", "untitled", "three"};
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(j["tasks"][i]["chunks"], 1) << r->body;
    auto t = client_->Get("/api/v1/tasks/" + ids[i]);
    ASSERT_TRUE(t);
    ASSERT_EQ(t->status, 200) << t->body;
    json task = json::parse(t->body);
    EXPECT_EQ(task["title"], titles[i]) << t->body;
    EXPECT_EQ(task["chunks_total"], 1) << t->body;
    EXPECT_EQ(task["status"], "queued") << t->body;
  }
  EXPECT_EQ(json::parse(client_->Get("/api/v1/tasks/" + ids[0])->body)["document"], "doc-1")
      << "a document id names the graph document, as on POST /api/v1/tasks";
  EXPECT_EQ(j["tasks"][0]["document"], "doc-1");
  auto row = store_->Get(ids[0]);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->source, "a.txt");
  EXPECT_EQ(QueuedText(*queue_),
            "Mara Voss founded Helix Dynamics.Ana Lund joined Meridian.Tomas Reyes led Ardent Capital.")
      << "every chunk queued, the HTML stripped";

  auto arr = Post("/api/v1/tasks/batch", R"([{"text":"Ingrid Halvorsen works at Kestrel Labs.","title":"a"},
                                              {"text":"Lena Brandt chairs the board.","id":"doc-1"}])");
  ASSERT_TRUE(arr);
  ASSERT_EQ(arr->status, 201) << arr->body;
  std::vector<std::string> arr_ids = BatchIds(arr->body);
  ASSERT_EQ(arr_ids.size(), 2u);
  EXPECT_EQ(json::parse(client_->Get("/api/v1/tasks/" + arr_ids[0])->body)["title"], "a");
  EXPECT_EQ(QueuedText(*queue_), "Ingrid Halvorsen works at Kestrel Labs.Lena Brandt chairs the board.");
  EXPECT_EQ(json::parse(client_->Get("/api/v1/tasks")->body)["tasks"].size(), 5u);
}

// Verifies every bad batch is a 4xx JSON error naming the line (NDJSON) or document (array)
// and the field, and creates nothing: each bad batch has good documents before the bad one,
// yet afterwards the only task is the one submitted first and the queue holds only its chunk.
TEST_F(ApiTest, BadBatchIsRefusedWholeAndNamesTheLine) {
  Start();
  auto first = Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics."})");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 202) << first->body;
  const std::string good = "{\"text\":\"Ana Lund joined Meridian Analytics.\",\"id\":\"d1\"}\n";
  auto nd = [&](const std::string& body) { return client_->Post("/api/v1/tasks/batch", body, "application/x-ndjson"); };
  ExpectError(client_->Post("/api/v1/tasks/batch", good, "text/plain"), 400, "unsupported Content-Type 'text/plain'");
  std::string untyped = RawExchange(port_, "POST /api/v1/tasks/batch HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                           "Content-Length: " + std::to_string(good.size()) + "\r\n\r\n" + good);
  EXPECT_EQ(RawStatus(untyped), 400) << untyped;
  EXPECT_NE(RawBody(untyped).find("a batch needs a Content-Type"), std::string::npos) << untyped;
  ExpectError(nd(""), 400, "no document");
  ExpectError(nd("\n  \r\n"), 400, "no document");
  ExpectError(nd(good + "\n{not json\n"), 400, "line 3: not valid JSON");
  ExpectError(nd(good + "{\"title\":\"x\"}\n"), 400, "line 2: missing 'text'");
  ExpectError(nd(good + "[1]\n"), 400, "line 2: a document must be a JSON object");
  ExpectError(nd(good + "{\"text\":\"x\",\"title\":7}\n"), 400, "line 2: 'title' must be a string");
  ExpectError(nd(good + "{\"text\":\"x\",\"format\":\"pdf\"}\n"), 400, "line 2: 'format' must be");
  ExpectError(nd(good + "{\"text\":\"x\",\"provider\":\"gpt9\"}\n"), 400, "line 2: unknown provider 'gpt9'");
  ExpectError(nd(good + "{\"text\":\"x\",\"id\":\"../etc\"}\n"), 400, "line 2: 'id' may contain only");
  ExpectError(nd(good + "{\"text\":\"ELF\\u0000\\u0001 data\"}\n"), 400, "line 2: 'text' is not text: binary data: NUL byte");
  ExpectError(nd(good + "{\"text\":\"  \\n \"}\n"), 400, "line 2: 'text' is empty or blank");
  ExpectError(nd(good + "{\"text\":\"<script>x()</script>\",\"format\":\"html\"}\n"), 400,
              "line 2: 'text' has no text once its markup is stripped");
  ExpectError(nd(good + "{\"text\":\"Other text.\"}\n" + good), 400, "line 3: 'id' d1 is also the id of line 1");
  ExpectError(Post("/api/v1/tasks/batch", R"({"text":"x"})"), 400, "must be an array");
  ExpectError(Post("/api/v1/tasks/batch", "[]"), 400, "no document");
  ExpectError(Post("/api/v1/tasks/batch", "[{\"text\":\"x\"},"), 400, "not valid JSON");
  ExpectError(Post("/api/v1/tasks/batch", R"([{"text":"Ana Lund joined."}, "x"])"), 400,
              "document 2: a document must be a JSON object");
  ExpectError(Post("/api/v1/tasks/batch", R"([{"text":"Ana Lund joined."}, {"text":5}])"), 400,
              "document 2: 'text' must be a string");
  // The cap on documents per request, in both shapes: 413 saying how many and the cap.
  std::string many, many_array = "[";
  for (size_t i = 0; i <= api::kMaxBatchDocuments; ++i) {
    many += "{\"text\":\"a\"}\n";
    many_array += std::string(i ? "," : "") + "{\"text\":\"a\"}";
  }
  many_array += "]";
  ExpectError(nd(many), 413, "holds 10001 documents; at most 10000");
  ExpectError(Post("/api/v1/tasks/batch", many_array), 413, "holds 10001 documents; at most 10000");
  // The body limit (1 MB in these tests) as on POST /api/v1/tasks.
  ExpectError(nd(good + "{\"text\":\"" + std::string(2 * 1024 * 1024, 'x') + "\"}\n"), 413, "KG_MAX_BODY_MB");

  auto list = client_->Get("/api/v1/tasks");
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["tasks"].size(), 1u) << "a bad batch created tasks: " << list->body;
  EXPECT_EQ(QueuedText(*queue_), "Mara Voss founded Helix Dynamics.") << "a bad batch queued chunks";
}

// Verifies the batch route keeps the rules of POST /api/v1/tasks: the bearer token (401
// without it, nothing created) and 503 with reason "stopping" once the node stops taking work.
TEST_F(ApiTest, BatchNeedsTheTokenAndIsRefusedWhileStopping) {
  Start("s3cret-token");
  const std::string body = "{\"text\":\"Mara Voss founded Helix Dynamics.\"}\n";
  ExpectError(client_->Post("/api/v1/tasks/batch", body, "application/x-ndjson"), 401, "bearer token");
  ExpectError(client_->Post("/api/v1/tasks/batch", {{"Authorization", "Bearer nope"}}, body, "application/x-ndjson"),
              401, "bearer token");
  httplib::Headers right = {{"Authorization", "Bearer s3cret-token"}};
  auto ok = client_->Post("/api/v1/tasks/batch", right, body, "application/x-ndjson");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 201) << ok->body;
  server_->StopTakingWork();
  auto late = client_->Post("/api/v1/tasks/batch", right, body, "application/x-ndjson");
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, 503) << late->body;
  EXPECT_EQ(json::parse(late->body).value("reason", ""), "stopping") << late->body;
  EXPECT_EQ(late->get_header_value("Retry-After"), "5");
  auto list = client_->Get("/api/v1/tasks", right);
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["tasks"].size(), 1u) << list->body;
}

// The task a 202/201 answer names.
std::string TaskIdOf(const httplib::Result& r) {
  if (!r || (r->status != 202)) return "";
  return json::parse(r->body)["id"].get<std::string>();
}

// Verifies "token_budget" is taken on every submission path (JSON, the streamed text/plain
// upload, a multipart form, a batch) and stored on the task, 0 when absent; anything but a
// whole number from 0 to 2^63-1 is a 400 JSON error naming the field, and creates nothing.
TEST_F(ApiTest, TokenBudgetIsTakenOnEverySubmissionPath) {
  Start();
  auto budget_of = [&](const std::string& id) {
    auto t = client_->Get("/api/v1/tasks/" + id);
    return t && t->status == 200 ? json::parse(t->body)["token_budget"] : json("no task");
  };
  auto js = Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics.","token_budget":10000})");
  ASSERT_TRUE(js);
  ASSERT_EQ(js->status, 202) << js->body;
  EXPECT_EQ(json::parse(js->body)["token_budget"], 10000);
  EXPECT_EQ(budget_of(TaskIdOf(js)), 10000);
  EXPECT_EQ(store_->Get(TaskIdOf(js))->token_budget, 10000);
  EXPECT_EQ(budget_of(TaskIdOf(Post("/api/v1/tasks", R"({"text":"Ana Lund joined Meridian."})"))), 0);
  EXPECT_EQ(budget_of(TaskIdOf(Post("/api/v1/tasks", R"({"text":"Big budget.","token_budget":9223372036854775807})"))),
            9223372036854775807LL);
  auto plain = client_->Post("/api/v1/tasks?title=p&token_budget=77", "Tomas Reyes led Ardent Capital.\n", "text/plain");
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 202) << plain->body;
  EXPECT_EQ(budget_of(TaskIdOf(plain)), 77);
  httplib::MultipartFormDataItems items = {{"file", "Ingrid Halvorsen works at Kestrel Labs.", "a.txt", "text/plain"},
                                           {"token_budget", "5", "", ""}};
  auto up = client_->Post("/api/v1/tasks", items);
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 202) << up->body;
  EXPECT_EQ(budget_of(TaskIdOf(up)), 5);
  auto batch = client_->Post("/api/v1/tasks/batch",
                             "{\"text\":\"Lena Brandt chairs the board.\",\"token_budget\":300}\n"
                             "{\"text\":\"Oslo is a city.\"}\n",
                             "application/x-ndjson");
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->status, 201) << batch->body;
  std::vector<std::string> ids = BatchIds(batch->body);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(budget_of(ids[0]), 300);
  EXPECT_EQ(budget_of(ids[1]), 0);
  const size_t tasks = 7;
  ASSERT_EQ(json::parse(client_->Get("/api/v1/tasks")->body)["tasks"].size(), tasks);

  for (const char* bad : {"-1", "1.5", "1.0", "\"10\"", "true", "[]", "9223372036854775808", "1e3"}) {
    ExpectError(Post("/api/v1/tasks", std::string(R"({"text":"x","token_budget":)") + bad + "}"), 400,
                "'token_budget' must be a whole number");
  }
  for (const char* bad : {"", "-3", "%2B3", "12x", "1.5", "99999999999999999999", "%2010"}) {
    ExpectError(client_->Post(std::string("/api/v1/tasks?token_budget=") + bad, "Some text.", "text/plain"), 400,
                "'token_budget'");
    ExpectError(client_->Post(std::string("/api/v1/tasks?token_budget=") + bad, "<p>Some text.</p>", "text/html"),
                400, "'token_budget'");
  }
  httplib::MultipartFormDataItems bad_part = {{"file", "Some text.", "a.txt", "text/plain"},
                                              {"token_budget", "lots", "", ""}};
  ExpectError(client_->Post("/api/v1/tasks", bad_part), 400, "'token_budget'");
  ExpectError(client_->Post("/api/v1/tasks/batch",
                            "{\"text\":\"Good one.\"}\n{\"text\":\"Bad one.\",\"token_budget\":-5}\n",
                            "application/x-ndjson"),
              400, "line 2: 'token_budget'");
  EXPECT_EQ(json::parse(client_->Get("/api/v1/tasks")->body)["tasks"].size(), tasks) << "a refused task was created";
}

// Verifies a task's view carries its spending from the ledger ("usage", summed over its chunks),
// per chunk only when asked (?chunks=1, of the listed chunks only), and GET /api/v1/providers each
// provider's spending over every task (zero for one with none).
TEST_F(ApiTest, TaskAndProviderViewsShowTheLedger) {
  Start();
  std::string id = TaskIdOf(Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics."})"));
  std::string other = TaskIdOf(Post("/api/v1/tasks", R"({"text":"Ana Lund joined Meridian."})"));
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(other.empty());
  auto fresh = json::parse(client_->Get("/api/v1/tasks/" + id)->body);
  EXPECT_EQ(fresh["usage"], json({{"prompt_tokens", 0}, {"completion_tokens", 0}, {"tokens", 0}, {"requests", 0},
                                  {"cached_chunks", 0}, {"cost", 0.0}}))
      << fresh.dump();
  UsageTotals a0, a1, b0;
  a0.prompt_tokens = 120;
  a0.completion_tokens = 30;
  a0.requests = 2;
  a0.cost = 0.25;
  a1.cached_chunks = 1;
  b0.prompt_tokens = 7;
  b0.completion_tokens = 3;
  b0.requests = 1;
  b0.cost = 0.5;
  ASSERT_TRUE(store_->AddUsage(id, id + ":0", "builtin", a0).ok());
  ASSERT_TRUE(store_->AddUsage(id, id + ":1", "builtin", a1).ok());
  ASSERT_TRUE(store_->AddUsage(other, other + ":0", "builtin", b0).ok());

  auto g = client_->Get("/api/v1/tasks/" + id);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->status, 200) << g->body;
  json t = json::parse(g->body);
  EXPECT_EQ(t["usage"], json({{"prompt_tokens", 120}, {"completion_tokens", 30}, {"tokens", 150}, {"requests", 2},
                              {"cached_chunks", 1}, {"cost", 0.25}}))
      << g->body;
  EXPECT_FALSE(t.contains("chunks_usage")) << "per chunk only when asked";
  EXPECT_FALSE(t.contains("usage_error"));
  auto per_chunk = client_->Get("/api/v1/tasks/" + id + "?chunks=1");
  ASSERT_TRUE(per_chunk);
  ASSERT_EQ(per_chunk->status, 200) << per_chunk->body;
  // The usage of the listed chunks only: the task has one chunk, so the ledger row of ":1" (no such
  // chunk in the queue) is counted in "usage" above but not listed.
  json chunks = json::parse(per_chunk->body)["chunks_usage"];
  ASSERT_EQ(chunks.size(), 1u) << per_chunk->body;
  EXPECT_EQ(chunks[0], json({{"chunk_id", id + ":0"}, {"prompt_tokens", 120}, {"completion_tokens", 30},
                             {"tokens", 150}, {"requests", 2}, {"cached_chunks", 0}, {"cost", 0.25}}));
  ExpectError(client_->Get("/api/v1/tasks/" + id + "?chunks=yes"), 400, "chunks must be 0 or 1");

  auto p = client_->Get("/api/v1/providers");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->status, 200) << p->body;
  json providers = json::parse(p->body)["providers"];
  ASSERT_EQ(providers.size(), 1u) << p->body;
  EXPECT_EQ(providers[0]["name"], "builtin");
  EXPECT_EQ(providers[0]["usage"], json({{"prompt_tokens", 127}, {"completion_tokens", 33}, {"tokens", 160},
                                         {"requests", 3}, {"cached_chunks", 1}, {"cost", 0.75}}))
      << p->body;
  EXPECT_FALSE(json::parse(p->body).contains("usage_error"));
}

// Verifies an unreadable ledger (its table gone from the database) is reported, not shown as
// zero spending: the providers and the task still answer 200 with everything else, "usage" is
// null and "usage_error" says what failed.
TEST_F(ApiTest, AnUnreadableLedgerIsReportedNotHidden) {
  Start();
  std::string id = TaskIdOf(Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics."})"));
  ASSERT_FALSE(id.empty());
  {
    auto db = sqlite::Db::Open(dir_.path() + "/tasks.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("DROP TABLE llm_usage").ok());
  }
  auto p = client_->Get("/api/v1/providers");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->status, 200) << p->body;
  json pj = json::parse(p->body);
  ASSERT_EQ(pj["providers"].size(), 1u) << p->body;
  EXPECT_EQ(pj["providers"][0]["name"], "builtin");
  EXPECT_TRUE(pj["providers"][0]["usage"].is_null()) << p->body;
  ASSERT_TRUE(pj.contains("usage_error")) << p->body;
  EXPECT_NE(pj["usage_error"].get<std::string>().find("llm_usage"), std::string::npos) << p->body;
  for (const std::string q : {"", "?chunks=1"}) {
    auto g = client_->Get("/api/v1/tasks/" + id + q);
    ASSERT_TRUE(g);
    ASSERT_EQ(g->status, 200) << g->body;
    json t = json::parse(g->body);
    EXPECT_EQ(t["id"], id);
    EXPECT_EQ(t["status"], "queued");
    EXPECT_TRUE(t["usage"].is_null()) << g->body;
    if (!q.empty()) {
      EXPECT_TRUE(t.contains("chunks_usage") && t["chunks_usage"].is_null()) << g->body;
    }
    ASSERT_TRUE(t.contains("usage_error")) << g->body;
    EXPECT_NE(t["usage_error"].get<std::string>().find("llm_usage"), std::string::npos) << g->body;
  }
}

// Verifies GET /api/v1/workers shows each node's version, start time, caps and quarantined providers from
// its record: a live node of two providers with one quarantined (its time left counted down by the
// heartbeat's age), a down node with what it last reported, and a node of an older kgflow (no info) with
// nulls rather than made-up figures.
TEST_F(ApiTest, WorkersShowEachNodesInfo) {
  testing::WriteFile(dir_.File("two.toml"), "[providers.alpha]\n[providers.beta]\n");
  Start("", {{"KG_CONFIG", dir_.File("two.toml")}});
  const int64_t now = NowMs();
  Config theirs = config_;
  theirs.max_total_processes = 7;
  theirs.max_processes_per_provider = 3;
  NodeRecord live{"w1", "worker", "h1", 4242, now - 2000,
                  R"([{"pid":77,"provider":"alpha","state":"idle"}])", 60000,
                  NodeInfoJson(theirs, 1234, {{"beta", 30.0}})};
  NodeRecord down{"w0", "worker", "h0", 4141, now - 600000, "[]", 1000, NodeInfoJson(theirs, 999, {{"alpha", 5.0}})};
  NodeRecord older{"w9", "web", "h9", 1, now, "[]", 60000};  // written before the info existed
  for (const NodeRecord& n : {live, down, older}) ASSERT_TRUE(*store_->PutNodeIf(n, std::nullopt));

  auto r = client_->Get("/api/v1/workers");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json w = json::parse(r->body);
  ASSERT_EQ(w["nodes"].size(), 2u) << w;
  ASSERT_EQ(w["down"].size(), 1u) << w;
  const json& n1 = w["nodes"][0];
  ASSERT_EQ(n1["name"], "w1") << w;
  EXPECT_EQ(n1["version"], KG_VERSION);
  EXPECT_EQ(n1["started_at"], 1234);
  EXPECT_EQ(n1["caps"], json({{"total", 7}, {"per_provider", 3}})) << n1;
  ASSERT_EQ(n1["quarantine"].size(), 1u) << n1;
  EXPECT_EQ(n1["quarantine"][0]["provider"], "beta");
  double left = n1["quarantine"][0]["remaining_s"].get<double>();
  EXPECT_LE(left, 28.0) << "30 s reported 2 s ago";
  EXPECT_GT(left, 18.0) << "counted down by the heartbeat's age, not more";

  const json& n0 = w["down"][0];
  ASSERT_EQ(n0["name"], "w0") << w;
  EXPECT_EQ(n0["version"], KG_VERSION) << "a down node keeps what it last reported";
  EXPECT_EQ(n0["started_at"], 999);
  EXPECT_EQ(n0["caps"], json({{"total", 7}, {"per_provider", 3}}));
  ASSERT_EQ(n0["quarantine"].size(), 1u) << n0;
  EXPECT_EQ(n0["quarantine"][0]["remaining_s"], 0.0) << "its quarantine has run out since";

  const json& n9 = w["nodes"][1];
  ASSERT_EQ(n9["name"], "w9") << w;
  for (const char* f : {"version", "started_at", "caps", "quarantine"}) {
    EXPECT_TRUE(n9.contains(f) && n9[f].is_null()) << f << ": " << n9;
  }
}

// Verifies GET /api/v1/providers gives each provider its queue figures (queued, running, delayed, dead,
// done) equal to the queue's own counts, zeros for a provider with no chunk, and LLM requests null on a
// node without workers; a queue that cannot be read makes each "queue" null with "queue_error" saying
// why, while the rest still answers 200.
TEST_F(ApiTest, ProvidersShowTheQueueOfEachProvider) {
  testing::WriteFile(dir_.File("two.toml"), "[providers.alpha]\n[providers.beta]\n");
  Start("", {{"KG_CONFIG", dir_.File("two.toml")}});
  for (const char* text : {"Mara Voss founded Helix Dynamics.", "Ana Lund joined Meridian.", "Ivo Berg left.",
                           "Lena Kraus moved to Oslo.", "Tom Hale sold Nordwind.", "Eva Roth met Kai Lind."}) {
    json body = {{"text", text}, {"provider", "alpha"}};
    ASSERT_FALSE(TaskIdOf(Post("/api/v1/tasks", body.dump())).empty());
  }
  // One done, one dead-lettered, one retried (delayed by its backoff), one running, two left queued
  // (no two figures alike, so a figure under the wrong name shows).
  auto leases = queue_->LeaseChunks("alpha", "test", 3, 60000, true);
  ASSERT_TRUE(leases.ok() && leases->size() == 3u);
  ASSERT_TRUE(queue_->Ack((*leases)[0].chunk_id, (*leases)[0].token).ok());
  ASSERT_TRUE(queue_->Nack((*leases)[1].chunk_id, (*leases)[1].token, "bad input", false).ok());
  ASSERT_TRUE(queue_->Nack((*leases)[2].chunk_id, (*leases)[2].token, "try again", true).ok());
  auto leased = queue_->LeaseChunks("alpha", "test", 1, 60000, false);
  ASSERT_TRUE(leased.ok() && leased->size() == 1u);

  auto r = client_->Get("/api/v1/providers");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  ASSERT_EQ(j["providers"].size(), 2u) << j;
  const json& alpha = j["providers"][0];
  ASSERT_EQ(alpha["name"], "alpha");
  const json& q = alpha["queue"];
  ASSERT_TRUE(q.is_object()) << j;
  EXPECT_EQ(q["running"], 1) << j;
  EXPECT_EQ(q["done"], 1) << j;
  EXPECT_EQ(q["dead"], 1) << j;
  // The retried chunk is delayed until its backoff (about a second) runs out, then queued again.
  EXPECT_EQ(q["queued"].get<int>() + q["delayed"].get<int>(), 3) << j;
  EXPECT_GE(q["queued"].get<int>(), 2) << j;
  EXPECT_LE(q["delayed"].get<int>(), 1) << j;
  EXPECT_EQ(j["providers"][1]["queue"],
            json({{"queued", 0}, {"running", 0}, {"delayed", 0}, {"dead", 0}, {"done", 0}}));
  EXPECT_TRUE(alpha.contains("llm_requests") && alpha["llm_requests"].is_null()) << "no workers on this node";
  EXPECT_FALSE(j.contains("queue_error"));

  {
    auto db = sqlite::Db::Open(dir_.path() + "/queue.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("DROP TABLE chunks").ok());
  }
  r = client_->Get("/api/v1/providers");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  j = json::parse(r->body);
  ASSERT_EQ(j["providers"].size(), 2u) << j;
  EXPECT_TRUE(j["providers"][0]["queue"].is_null()) << j;
  EXPECT_FALSE(j["providers"][0]["usage"].is_null()) << "the ledger still answers";
  ASSERT_TRUE(j.contains("queue_error")) << j;
  EXPECT_NE(j["queue_error"].get<std::string>().find("chunks"), std::string::npos) << j;
}

// A task row and its `n` chunks in the queue, as a submission makes them (ids "ID:idx").
void MakeTask(Queue& q, TaskStore& s, const std::string& id, int n, const std::string& title = "Doc",
              const std::string& provider = "builtin") {
  std::vector<ChunkItem> items;
  for (int i = 0; i < n; ++i) items.push_back({id + ":" + std::to_string(i), id, provider, i, "{}"});
  ASSERT_TRUE(q.Enqueue(items).ok());
  TaskRecord t;
  t.id = id;
  t.title = title;
  t.provider = provider;
  t.doc_id = "d-" + id;
  t.chunks_total = n;
  ASSERT_TRUE(s.Create(t).ok());
}

// Verifies ?chunks=1 lists every chunk in idx order with its state named as elsewhere in the API
// (queued, running, done, dead), attempts, crashes, last error (a dead letter's reason with the
// output snippet, also still in dead_letters), lease and update times, the duration of a finished
// chunk (null for the others) and its ledger row (null without one); without ?chunks=1 there is
// no "chunks".
TEST_F(ApiTest, TaskChunksShowStateTimesAndUsage) {
  Start();
  MakeTask(*queue_, *store_, "tc", 4);
  auto done = queue_->LeaseChunks("builtin", "w", 1, 60000, false);
  ASSERT_TRUE(done.ok() && done->size() == 1u);
  ASSERT_EQ((*done)[0].chunk_id, "tc:0");
  ASSERT_TRUE(queue_->Ack("tc:0", (*done)[0].token).ok());
  auto dead = queue_->LeaseChunks("builtin", "w", 1, 60000, false);
  ASSERT_TRUE(dead.ok() && dead->size() == 1u);
  const std::string reason = "the output is not JSON: \"Sure! Here are the entities: ...\"";
  ASSERT_TRUE(queue_->Nack("tc:1", (*dead)[0].token, reason, false).ok());
  auto running = queue_->LeaseChunks("builtin", "w", 1, 60000, false);
  ASSERT_TRUE(running.ok() && running->size() == 1u);
  UsageTotals u;
  u.prompt_tokens = 100;
  u.completion_tokens = 20;
  u.requests = 1;
  u.cost = 0.5;
  ASSERT_TRUE(store_->AddUsage("tc", "tc:0", "builtin", u).ok());

  auto plain = client_->Get("/api/v1/tasks/tc");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(json::parse(plain->body).contains("chunks")) << "per chunk only when asked";
  auto g = client_->Get("/api/v1/tasks/tc?chunks=1");
  ASSERT_TRUE(g);
  ASSERT_EQ(g->status, 200) << g->body;
  json t = json::parse(g->body);
  ASSERT_TRUE(t["chunks"].is_array()) << g->body;
  ASSERT_EQ(t["chunks"].size(), t["chunks_total"].get<size_t>()) << g->body;
  EXPECT_EQ(t["chunks_truncated"], false);
  EXPECT_TRUE(t["chunks_usage"].is_array()) << "kept for older clients";
  const json& c = t["chunks"];
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i]["idx"], i);
    EXPECT_EQ(c[i]["id"], "tc:" + std::to_string(i));
  }
  EXPECT_EQ(c[0]["state"], "done");
  EXPECT_EQ(c[0]["attempts"], 1);
  EXPECT_EQ(c[0]["crashes"], 0);
  EXPECT_TRUE(c[0]["error"].is_null());
  ASSERT_TRUE(c[0]["leased_at"].is_number_integer()) << c[0];
  ASSERT_TRUE(c[0]["updated_at"].is_number_integer()) << c[0];
  ASSERT_TRUE(c[0]["duration_ms"].is_number_integer()) << c[0];
  EXPECT_EQ(c[0]["duration_ms"].get<int64_t>(), c[0]["updated_at"].get<int64_t>() - c[0]["leased_at"].get<int64_t>());
  EXPECT_GE(c[0]["duration_ms"].get<int64_t>(), 0);
  EXPECT_EQ(c[0]["usage"], json({{"prompt_tokens", 100}, {"completion_tokens", 20}, {"tokens", 120}, {"requests", 1},
                                 {"cached_chunks", 0}, {"cost", 0.5}}));
  EXPECT_EQ(c[1]["state"], "dead");
  EXPECT_EQ(c[1]["error"], reason) << "the reason with the output snippet, whole";
  EXPECT_TRUE(c[1]["duration_ms"].is_number_integer()) << c[1];
  EXPECT_TRUE(c[1]["usage"].is_null());
  EXPECT_EQ(c[2]["state"], "running");
  EXPECT_TRUE(c[2]["leased_at"].is_number_integer()) << c[2];
  EXPECT_TRUE(c[2]["duration_ms"].is_null()) << "not finished";
  EXPECT_EQ(c[3]["state"], "queued");
  EXPECT_EQ(c[3]["attempts"], 0);
  EXPECT_TRUE(c[3]["leased_at"].is_null()) << "never leased";
  EXPECT_TRUE(c[3]["updated_at"].is_number_integer());
  EXPECT_TRUE(c[3]["duration_ms"].is_null());
  ASSERT_EQ(t["dead_letters"].size(), 1u) << g->body;
  EXPECT_EQ(t["dead_letters"][0]["chunk"], "tc:1");
  EXPECT_EQ(t["dead_letters"][0]["error"], reason);

  // Cancelled chunks are named so too.
  ASSERT_EQ(Post("/api/v1/tasks/tc/cancel", "")->status, 200);
  json after = json::parse(client_->Get("/api/v1/tasks/tc?chunks=1")->body);
  EXPECT_EQ(after["chunks"][2]["state"], "cancelled");
  EXPECT_EQ(after["chunks"][3]["state"], "cancelled");
}

// Verifies a task of more than 2000 chunks lists the first 2000 (in idx order) and says it is
// truncated, while the counts still cover every chunk.
TEST_F(ApiTest, TaskChunksAreCappedAt2000) {
  Start();
  MakeTask(*queue_, *store_, "big", 2001);
  auto g = client_->Get("/api/v1/tasks/big?chunks=1");
  ASSERT_TRUE(g);
  ASSERT_EQ(g->status, 200) << g->body.substr(0, 500);
  json t = json::parse(g->body);
  ASSERT_EQ(t["chunks"].size(), 2000u);
  EXPECT_EQ(t["chunks"][1999]["idx"], 1999);
  EXPECT_EQ(t["chunks_truncated"], true);
  EXPECT_EQ(t["chunks_total"], 2001);
  EXPECT_EQ(t["chunks_queued"], 2001);
}

// Verifies ?chunks=1 of a task of 2001+ chunks with dead ones stays bounded: 2000 chunks, usage only
// of listed chunks (a ledger row of chunk 2100 is not in "chunks_usage"), at most 100 dead letters
// taken from the listed chunks with "dead_letters_truncated" saying more are dead than shown; without
// ?chunks=1 the dead letters come from a capped read too.
TEST_F(ApiTest, BigTaskViewIsBoundedWithDeadLetters) {
  Start();
  MakeTask(*queue_, *store_, "huge", 2300);
  // 150 dead chunks, the first ones (more than the 100 shown).
  auto leases = queue_->LeaseChunks("builtin", "w", 150, 60000, false);
  ASSERT_TRUE(leases.ok() && leases->size() == 150u);
  for (const auto& l : *leases) ASSERT_TRUE(queue_->Nack(l.chunk_id, l.token, "bad " + l.chunk_id, false).ok());
  UsageTotals u;
  u.prompt_tokens = 7;
  u.requests = 1;
  ASSERT_TRUE(store_->AddUsage("huge", "huge:0", "builtin", u).ok());
  ASSERT_TRUE(store_->AddUsage("huge", "huge:2100", "builtin", u).ok());
  for (const std::string q : {"?chunks=1", ""}) {
    auto g = client_->Get("/api/v1/tasks/huge" + q);
    ASSERT_TRUE(g);
    ASSERT_EQ(g->status, 200) << g->body.substr(0, 500);
    json t = json::parse(g->body);
    EXPECT_EQ(t["chunks_failed"], 150) << q;
    ASSERT_TRUE(t["dead_letters"].is_array()) << q;
    EXPECT_EQ(t["dead_letters"].size(), 100u) << q;
    EXPECT_EQ(t["dead_letters"][0]["chunk"], "huge:0") << q;
    EXPECT_EQ(t["dead_letters_truncated"], true) << q;
    EXPECT_EQ(t["error"], "bad huge:0") << q;
    if (q.empty()) {
      EXPECT_FALSE(t.contains("chunks")) << "per chunk only when asked";
      continue;
    }
    EXPECT_EQ(t["chunks"].size(), 2000u);
    EXPECT_EQ(t["chunks_truncated"], true);
    ASSERT_TRUE(t["chunks_usage"].is_array()) << t["chunks_usage"];
    ASSERT_EQ(t["chunks_usage"].size(), 1u) << "only the listed chunks' ledger rows: " << t["chunks_usage"];
    EXPECT_EQ(t["chunks_usage"][0]["chunk_id"], "huge:0");
    EXPECT_EQ(t["chunks"][0]["usage"]["prompt_tokens"], 7);
    EXPECT_EQ(t["usage"]["prompt_tokens"], 14) << "the task's total still counts every chunk";
    EXPECT_LT(g->body.size(), 2000u * 400) << "about 2000 chunks' worth, not the whole task";
  }
  // Few dead chunks, all shown: not truncated.
  MakeTask(*queue_, *store_, "small", 3, "Small", "other");
  auto one = queue_->LeaseChunks("other", "w", 1, 60000, false);
  ASSERT_TRUE(one.ok() && one->size() == 1u);
  ASSERT_TRUE(queue_->Nack((*one)[0].chunk_id, (*one)[0].token, "no", false).ok());
  json small = json::parse(client_->Get("/api/v1/tasks/small?chunks=1")->body);
  EXPECT_EQ(small["dead_letters"].size(), 1u) << small;
  EXPECT_EQ(small["dead_letters_truncated"], false) << small;
}

// Verifies GET /api/v1/tasks brings up to date the unfinished rows of the page it answers (a row
// left behind by a worker killed between its ack and its progress write) and only those: a stale
// row off the page keeps its stored counts until a page shows it.
TEST_F(ApiTest, TaskListHealsOnlyThePageItAnswers) {
  Start();
  for (const char* id : {"h1", "h2", "h3"}) MakeTask(*queue_, *store_, id, 1);
  // Every chunk done in the queue, no row told.
  auto leases = queue_->LeaseChunks("builtin", "w", 3, 60000, false);
  ASSERT_TRUE(leases.ok() && leases->size() == 3u);
  for (const auto& l : *leases) ASSERT_TRUE(queue_->Ack(l.chunk_id, l.token).ok());
  auto r = client_->Get("/api/v1/tasks?limit=1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  ASSERT_EQ(j["tasks"].size(), 1u) << j;
  const std::string shown = j["tasks"][0]["id"];
  EXPECT_EQ(j["tasks"][0]["status"], "done") << "the page's row, healed, answers its new state: " << j;
  EXPECT_EQ(j["tasks"][0]["chunks_done"], 1) << j;
  int stale = 0;
  for (const char* id : {"h1", "h2", "h3"}) {
    auto row = store_->Get(id);
    ASSERT_TRUE(row.ok());
    if (id == shown) {
      EXPECT_EQ(row->status, "done") << id;
    } else if (row->status == "queued") {
      ++stale;
    }
  }
  EXPECT_EQ(stale, 2) << "rows off the page are not healed by this request";
  // Asked for finished tasks, the unfinished rows that may belong on the page are healed first.
  auto done = client_->Get("/api/v1/tasks?status=done");
  ASSERT_TRUE(done);
  EXPECT_EQ(json::parse(done->body)["tasks"].size(), 3u) << done->body;
}

// Verifies an entity whose chunk text cannot be read (a column of the graph's chunk table gone)
// still answers 200 with its relations: "evidence" null, "evidence_error" saying why, no sentence.
TEST_F(ApiTest, EntityAnswersWhenItsEvidenceIsUnreadable) {
  Start();
  GraphBatch b;
  b.doc = {"d1", "Doc", "src.txt"};
  b.chunk = {"d1:0", "d1", 0, "Mara Voss founded Helix Dynamics."};
  b.entities = {{"person:mara voss", "Mara Voss", "Person", "", 0},
                {"organization:helix dynamics", "Helix Dynamics", "Organization", "", 0}};
  b.relations = {{"person:mara voss", "organization:helix dynamics", "FOUNDED", {}, 0}};
  ASSERT_TRUE(graph_->Merge({b}).ok());
  {
    auto db = sqlite::Db::Open(dir_.path() + "/graph.db");
    ASSERT_TRUE(db.ok());
    // GetEntity reads the chunks' ids and documents; only their text goes.
    Status s = (*db)->Exec("ALTER TABLE chunks RENAME COLUMN text TO text_gone");
    ASSERT_TRUE(s.ok()) << s.message();
  }
  auto r = client_->Get("/api/v1/graph/entities/person:mara%20voss");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["key"], "person:mara voss") << j;
  EXPECT_TRUE(j["evidence"].is_null()) << j;
  ASSERT_TRUE(j["evidence_error"].is_string()) << j;
  EXPECT_NE(j["evidence_error"].get<std::string>().find("text"), std::string::npos) << j;
  ASSERT_EQ(j["neighbours"].size(), 1u) << j;
  EXPECT_EQ(j["neighbours"][0]["entity"]["key"], "organization:helix dynamics");
  EXPECT_TRUE(j["neighbours"][0]["sentence"].is_null()) << j;
  EXPECT_EQ(j["chunks"], json::array({"d1:0"})) << j;
}

// Verifies GET /api/v1/tasks filters on the server by provider (exact) and q (a case-insensitive
// substring of the title or id, % and _ literal), pages with offset, and reports the total of
// matching tasks whatever the page; a bad offset or a q over 200 bytes is a 400 and the server
// keeps serving.
TEST_F(ApiTest, TaskListFiltersPagesAndCounts) {
  Start();
  MakeTask(*queue_, *store_, "l1", 1, "Quarterly Report", "builtin");
  MakeTask(*queue_, *store_, "l2", 1, "quarterly 100% plan", "other");
  MakeTask(*queue_, *store_, "l3", 1, "Minutes", "builtin");
  MakeTask(*queue_, *store_, "l4", 1, "minutes_b", "other");
  MakeTask(*queue_, *store_, "l5", 1, "Notes", "builtin");
  auto ids = [&](const std::string& query, int64_t total) {
    auto r = client_->Get("/api/v1/tasks" + query);
    EXPECT_TRUE(r);
    std::set<std::string> out;
    if (!r) return out;
    EXPECT_EQ(r->status, 200) << query << " " << r->body;
    json j = json::parse(r->body);
    EXPECT_EQ(j["total"], total) << query << " " << r->body;
    for (const auto& t : j["tasks"]) out.insert(t["id"].get<std::string>());
    return out;
  };
  using Ids = std::set<std::string>;
  EXPECT_EQ(ids("", 5).size(), 5u);
  EXPECT_EQ(ids("?provider=other", 2), (Ids{"l2", "l4"}));
  EXPECT_EQ(ids("?q=QUARTERLY", 2), (Ids{"l1", "l2"}));
  EXPECT_EQ(ids("?q=l5", 1), (Ids{"l5"})) << "the id matches too";
  EXPECT_EQ(ids("?q=%25", 1), (Ids{"l2"})) << "% is literal";
  EXPECT_EQ(ids("?q=s_b", 1), (Ids{"l4"})) << "_ is literal";
  EXPECT_EQ(ids("?q=minutes&provider=builtin", 1), (Ids{"l3"}));
  EXPECT_EQ(ids("?provider=nobody", 0), Ids{});
  EXPECT_EQ(ids("?status=done", 0), Ids{});
  Ids seen;
  for (int offset : {0, 2, 4}) {
    Ids page = ids("?limit=2&offset=" + std::to_string(offset), 5);
    EXPECT_EQ(page.size(), offset < 4 ? 2u : 1u) << offset;
    for (const auto& id : page) EXPECT_TRUE(seen.insert(id).second) << id << " on two pages";
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(ids("?offset=10", 5), Ids{}) << "past the end: no rows, the same total";
  auto echo = json::parse(client_->Get("/api/v1/tasks?limit=2&offset=2")->body);
  EXPECT_EQ(echo["offset"], 2);
  EXPECT_EQ(echo["limit"], 2);
  EXPECT_EQ(ids("?q=" + std::string(200, 'x'), 0), Ids{}) << "200 bytes is allowed";
  ExpectError(client_->Get("/api/v1/tasks?q=" + std::string(201, 'x')), 400, "q must be at most 200 bytes");
  ExpectError(client_->Get("/api/v1/tasks?offset=-1"), 400, "offset must be a whole number");
  ExpectError(client_->Get("/api/v1/tasks?offset=abc"), 400, "offset must be a whole number");
  ExpectError(client_->Get("/api/v1/tasks?offset="), 400, "offset must be a whole number");
  ExpectError(client_->Get("/api/v1/tasks?status=bogus"), 400, "status must be one of");
}

}  // namespace
}  // namespace kg
