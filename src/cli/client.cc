#include "cli/client.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "api/submission.h"
#include "common/util.h"
#include "http/client.h"
#include "text/text.h"

namespace kg {

using nlohmann::json;

namespace {

// How long a request waits for the node's answer (a submit of a large file is chunked first).
constexpr std::chrono::seconds kReadTimeout(120);
constexpr std::chrono::seconds kConnectTimeout(5);

class Api {
 public:
  explicit Api(const ClientOptions& o) : o_(o), cli_(o.url, http::ClientOptions{kConnectTimeout, kReadTimeout, o.token}) {}

  // Returns the parsed body, or prints the error and returns nullopt.
  std::optional<json> Call(const std::string& method, const std::string& path, const json* body = nullptr,
                           std::string* raw = nullptr) {
    Result<http::ClientResponse> r =
        method == "GET" || method == "DELETE"
            ? cli_.Send(method, path)
            : cli_.Send(method, path, body ? body->dump(-1, ' ', false, json::error_handler_t::replace) : "",
                        "application/json");
    return Answer(r, method, path, raw);
  }

  // POSTs `text` as `content_type`.
  std::optional<json> Post(const std::string& path, std::string_view text, const std::string& content_type) {
    return Answer(cli_.Send("POST", path, text, content_type), "POST", path, nullptr);
  }

  // POSTs `length` bytes that `next` gives (a file read piece by piece) as `content_type`.
  // A source that gives up sets `*send_error` (the request is then cut short): that error
  // is printed, not "cannot reach".
  std::optional<json> PostStream(const std::string& path, size_t length, const http::PieceSource& next,
                                 const std::string& content_type, const std::string* send_error) {
    Result<http::ClientResponse> r = cli_.SendStream("POST", path, length, content_type, next);
    if (!send_error->empty()) {
      std::cerr << "kgflow: " << *send_error << "\n";
      return std::nullopt;
    }
    return Answer(r, "POST", path, nullptr);
  }

  // GET for polling: a node that cannot be reached or answers 502/503/504 (restarting, or a
  // proxy in front of one) is `transient` with the reason, and nothing is printed;
  // everything else as Call.
  // `read_timeout` bounds the wait for an answer (a node that accepts and never answers,
  // e.g. stopped, is `transient` after it); later calls get the usual timeout back.
  std::optional<json> Poll(const std::string& path, std::string* transient, std::chrono::milliseconds read_timeout) {
    cli_.set_read_timeout(read_timeout);
    Result<http::ClientResponse> r = cli_.Send("GET", path);
    cli_.set_read_timeout(kReadTimeout);
    if (!r.ok() && r.status().code() == Code::kUnavailable) {
      *transient = r.status().message();
      return std::nullopt;
    }
    if (r.ok() && (r->status == 502 || r->status == 503 || r->status == 504)) {
      *transient = "HTTP " + std::to_string(r->status);
      return std::nullopt;
    }
    transient->clear();
    return Answer(r, "GET", path, nullptr);
  }

 private:
  std::optional<json> Answer(const Result<http::ClientResponse>& r, const std::string& method, const std::string& path,
                             std::string* raw) {
    if (!r.ok() && r.status().code() == Code::kUnavailable) {
      std::cerr << "kgflow: cannot reach " << o_.url << " (" << r.status().message()
                << "); is `kgflow start` running? (set KG_HTTP_ADDR or --url)\n";
      return std::nullopt;
    }
    if (!r.ok()) {  // a request this client cannot send: a bug, said as it is
      std::cerr << "kgflow: " << r.status().message() << "\n";
      return std::nullopt;
    }
    if (raw && r->status < 300) {
      *raw = r->body;
      return json::object();
    }
    json j = json::parse(r->body, nullptr, false);
    if (r->status >= 300) {
      std::string msg = !j.is_discarded() && j.contains("error") ? j["error"].get<std::string>() : r->body;
      std::cerr << "kgflow: " << method << " " << path << ": HTTP " << r->status << ": " << msg << "\n";
      if (!j.is_discarded() && j.contains("candidates") && j["candidates"].is_array()) {
        for (const auto& c : j["candidates"]) std::cerr << "  " << c.get<std::string>() << "\n";  // ask for one
      }
      return std::nullopt;
    }
    if (j.is_discarded()) {
      std::cerr << "kgflow: " << path << ": the server sent a body that is not JSON\n";
      return std::nullopt;
    }
    return j;
  }

  ClientOptions o_;
  http::Client cli_;
};

// One document to submit, checked before anything is sent. A file is sent from disk as it
// is (text/plain, or text/markdown or text/html by its format); stdin, which cannot be read
// twice, is kept in memory.
struct Doc {
  std::string path;   // as given, or "-" for stdin
  std::string text;   // stdin only
  int64_t size = 0;   // bytes that will be sent
  std::string format;  // text|markdown|html
  FileStamp stamp;    // a file's, as checked
};

std::string Mb(int64_t bytes) { return fmt::format("{} bytes", bytes); }

// What the node would refuse, said per argument before anything is sent: too large, not
// text, or nothing to read. `text` is what will be sent, byte for byte.
Status CheckContent(const std::string& label, std::string_view text, int64_t max_bytes) {
  if (static_cast<int64_t>(text.size()) > max_bytes) {
    return Status::Invalid(fmt::format("{} is {}; the node accepts at most {} (KG_MAX_BODY_MB)", label,
                                       Mb(static_cast<int64_t>(text.size())), Mb(max_bytes)));
  }
  if (Status c = CheckText(text); !c.ok()) return Status::Invalid(fmt::format("{}: not text: {}", label, c.message()));
  if (text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos) {
    return Status::Invalid(fmt::format("{} is empty or blank", label));
  }
  return Status::Ok();
}

// The format a file's extension implies: .md/.markdown, .html/.htm, else text.
std::string FormatFor(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".md" || ext == ".markdown") return "markdown";
  if (ext == ".html" || ext == ".htm") return "html";
  return "text";
}

// Checks a regular file is text under the size limit, reading it with pread (a mapping
// would raise SIGBUS on a file truncated while it is read); its stamp, or the reason it
// cannot be sent. Opened non-blocking: a FIFO is refused, not waited on.
Result<FileStamp> CheckFile(const std::string& path, int64_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return Status::Invalid(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::Invalid(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return Status::Invalid(fmt::format("{}: not a regular file", path));
  if (st.st_size > max_bytes) {
    return Status::Invalid(fmt::format("{} is {}; the node accepts at most {} (KG_MAX_BODY_MB)", path,
                                       Mb(st.st_size), Mb(max_bytes)));
  }
  if (st.st_size == 0) return Status::Invalid(fmt::format("{} is empty or blank", path));
  KG_ASSIGN_OR_RETURN(FileStamp stamp, StampOf(fd.get(), path));
  std::string text(static_cast<size_t>(stamp.size), '\0');
  for (size_t off = 0; off < text.size();) {
    auto n = ReadAsChecked(fd.get(), path, stamp, off, text.data() + off, text.size() - off);
    if (!n.ok()) return Status::Invalid(n.status().message());
    off += *n;
  }
  KG_RETURN_IF_ERROR(CheckContent(path, text, max_bytes));
  return stamp;
}

// Every argument read and checked; `errors` gets one line per refused argument, stderr one
// line per file skipped inside a --recursive directory.
// `usage` is set when an argument is a misuse of the command (a directory without
// --recursive) rather than a file that cannot be sent.
std::vector<Doc> Collect(const std::vector<std::string>& args, bool recursive, int64_t max_bytes,
                         const std::string& format, std::vector<std::string>* errors, bool* usage) {
  std::vector<Doc> docs;
  for (const auto& a : args) {
    if (a == "-") {
      std::ostringstream ss;
      ss << std::cin.rdbuf();
      std::string text = ss.str();
      if (Status c = CheckContent("stdin", text, max_bytes); !c.ok()) {
        errors->push_back(c.message());
      } else {
        int64_t size = static_cast<int64_t>(text.size());
        docs.push_back({a, std::move(text), size, format.empty() ? "text" : format, FileStamp{}});
      }
      continue;
    }
    struct stat st {};
    if (::stat(a.c_str(), &st) != 0) {
      errors->push_back(fmt::format("cannot read {}: {}", a, std::strerror(errno)));
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      if (!recursive) {
        errors->push_back(a + " is a directory; use --recursive");
        *usage = true;
        continue;
      }
      std::error_code ec;
      std::vector<std::string> found;
      auto it = std::filesystem::recursive_directory_iterator(a, ec);
      for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec)) continue;
        found.push_back(it->path().string());
      }
      if (ec) {
        errors->push_back(fmt::format("cannot list {}: {}", a, ec.message()));
        continue;
      }
      std::sort(found.begin(), found.end());
      size_t taken = 0;
      for (const auto& f : found) {
        auto stamp = CheckFile(f, max_bytes);
        if (!stamp.ok()) {
          std::cerr << "kgflow: skipped " << stamp.status().message() << "\n";
          continue;
        }
        docs.push_back({f, "", stamp->size, format.empty() ? FormatFor(f) : format, *stamp});
        ++taken;
      }
      if (taken == 0) errors->push_back(a + ": no text file in it");
      continue;
    }
    auto stamp = CheckFile(a, max_bytes);
    if (!stamp.ok()) {
      errors->push_back(stamp.status().message());
      continue;
    }
    docs.push_back({a, "", stamp->size, format.empty() ? FormatFor(a) : format, *stamp});
  }
  return docs;
}

std::string Basename(const std::string& path) {
  auto slash = path.find_last_of('/');
  std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
  auto dot = b.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? b : b.substr(0, dot);
}

bool Terminal(const std::string& status) { return status == "done" || status == "failed" || status == "cancelled"; }

void Bar(const std::string& label, int done, int failed, int total, const std::string& status) {
  int width = 30;
  int filled = total ? (done + failed) * width / total : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(static_cast<size_t>(width), '.');
  std::cout << fmt::format("\r{:<24.24} [{}] {}/{} {}{}   ", label, bar, done + failed, total, status,
                           failed ? fmt::format(" ({} failed)", failed) : "")
            << std::flush;
}

// --json: prints the API's body as is; returns the exit code.
int PrintRaw(Api& api, const std::string& path) {
  std::string raw;
  if (!api.Call("GET", path, nullptr, &raw)) return 1;
  std::cout << raw;
  if (raw.empty() || raw.back() != '\n') std::cout << "\n";
  return 0;
}

std::string Plural(int64_t n, const std::string& one, const std::string& many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

Result<FileStamp> StampOf(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::Invalid(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  FileStamp s;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  return s;
}

Result<size_t> ReadAsChecked(int fd, const std::string& path, const FileStamp& checked, size_t offset, char* buf,
                             size_t length) {
  ssize_t n;
  do {
    n = ::pread(fd, buf, length, static_cast<off_t>(offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Unavailable(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  // After the read: a change before or during it shows in the size or mtime now.
  KG_ASSIGN_OR_RETURN(FileStamp now, StampOf(fd, path));
  bool short_read = n == 0 && length > 0 && static_cast<int64_t>(offset) < checked.size;
  if (!(now == checked) || short_read) return Status::Invalid(path + " changed while being sent");
  return static_cast<size_t>(n);
}

Status NormalizeUrl(std::string* url, std::string* note) {
  const std::string accepted = "; expected http://HOST[:PORT], e.g. http://127.0.0.1:8080";
  const std::string& u = *url;
  auto bad = [&](const std::string& why) { return Status::Invalid("--url '" + u + "': " + why + accepted); };
  auto sep = u.find("://");  // none: HOST[:PORT], taken as http (as KG_HTTP_ADDR is written)
  std::string scheme = sep == std::string::npos ? "http" : u.substr(0, sep);
  // The client speaks plain HTTP (http/client.h): a node serves nothing else, and TLS would cost
  // every kgflow process a TLS library.
  if (scheme == "https") return bad("https is not supported (the client speaks plain HTTP)");
  if (scheme != "http") return bad("scheme '" + scheme + "' is not supported");
  std::string rest = sep == std::string::npos ? u : u.substr(sep + 3);
  std::string path;
  if (auto slash = rest.find_first_of("/?#"); slash != std::string::npos) {
    path = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  if (rest.find('@') != std::string::npos) return bad("credentials in the URL are not supported (use KG_API_TOKEN)");
  std::string host = rest, port;
  if (!rest.empty() && rest[0] == '[') {  // [IPv6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    host = rest.substr(0, close + 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("junk after the host");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return bad("empty port");
  }
  if (host.empty() || host == "[]") return bad("no host");
  if (host.find(':') != std::string::npos && host[0] != '[') return bad("bad host");
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return bad("bad port '" + port + "'");
    int p = std::stoi(port);
    if (p < 1 || p > 65535) return bad("port " + port + " out of range");
  }
  if (!path.empty() && path != "/") {
    *note = "kgflow: note: --url path '" + path + "' ignored; the client adds /api/v1/... itself";
  }
  *url = scheme + "://" + host + (port.empty() ? "" : ":" + port);
  return Status::Ok();
}

namespace {

const char* ContentTypeOf(const std::string& format) {
  return format == "markdown" ? "text/markdown; charset=utf-8"
         : format == "html"   ? "text/html; charset=utf-8"
                              : "text/plain; charset=utf-8";
}

// Sends one document as a text body (fields in the query), a file streamed from disk.
std::optional<json> SendDocument(Api& api, const Doc& d, const std::string& title, const SubmitOptions& so) {
  std::string path = "/api/v1/tasks?title=" + http::PercentEncode(title) +
                     "&source=" + http::PercentEncode(d.path == "-" ? "stdin" : d.path) + "&format=" + d.format;
  if (!so.provider.empty()) path += "&provider=" + http::PercentEncode(so.provider);
  if (so.token_budget > 0) path += "&token_budget=" + std::to_string(so.token_budget);
  if (d.path == "-") return api.Post(path, d.text, ContentTypeOf(d.format));
  UniqueFd fd(::open(d.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    std::cerr << "kgflow: cannot read " << d.path << ": " << std::strerror(errno) << "\n";
    return std::nullopt;
  }
  // Sent as checked or not at all: each piece is read, then the file stamped again.
  auto now = StampOf(fd.get(), d.path);
  if (!now.ok() || !(*now == d.stamp)) {
    std::cerr << "kgflow: " << (now.ok() ? d.path + " changed while being sent" : now.status().message()) << "\n";
    return std::nullopt;
  }
  std::string error;
  size_t offset = 0;
  const size_t length = static_cast<size_t>(d.size);
  auto next = [&](std::string* piece) {
    piece->resize(std::min<size_t>(65536, length - offset));
    auto n = ReadAsChecked(fd.get(), d.path, d.stamp, offset, piece->data(), piece->size());
    if (!n.ok()) {
      error = n.status().message();
      return false;  // the request is cut short; the node gets no task
    }
    piece->resize(*n);
    offset += *n;
    return true;
  };
  return api.PostStream(path, length, next, ContentTypeOf(d.format), &error);
}

// The batch request of `docs` (NDJSON, one line per document, in order): each file read as
// it was checked. kInvalidArgument when it cannot be one request: more documents than the
// node takes, or more than `max_bytes` once JSON-escaped.
Result<std::string> BatchBody(const std::vector<Doc>& docs, const std::vector<std::string>& titles,
                              const SubmitOptions& so) {
  if (docs.size() > api::kMaxBatchDocuments) {
    return Status::Invalid(fmt::format("--batch: {} documents; a batch takes at most {}: submit them in parts",
                                       docs.size(), api::kMaxBatchDocuments));
  }
  std::string body;
  for (size_t i = 0; i < docs.size(); ++i) {
    const Doc& d = docs[i];
    std::string text = d.text;
    if (d.path != "-") {
      UniqueFd fd(::open(d.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
      if (!fd.valid()) return Status::Invalid(fmt::format("cannot read {}: {}", d.path, std::strerror(errno)));
      text.resize(static_cast<size_t>(d.size));
      for (size_t offset = 0; offset < text.size();) {
        KG_ASSIGN_OR_RETURN(size_t n, ReadAsChecked(fd.get(), d.path, d.stamp, offset, text.data() + offset,
                                                    text.size() - offset));
        offset += n;
      }
    }
    json line = {{"text", std::move(text)}, {"title", titles[i]}, {"source", d.path == "-" ? "stdin" : d.path},
                 {"format", d.format}};
    if (!so.provider.empty()) line["provider"] = so.provider;
    if (so.token_budget > 0) line["token_budget"] = so.token_budget;
    // Bytes that are not UTF-8 go as U+FFFD, as the node would read them.
    body += line.dump(-1, ' ', false, json::error_handler_t::replace);
    body += '\n';
    if (so.max_bytes > 0 && static_cast<int64_t>(body.size()) > so.max_bytes) {
      return Status::Invalid(fmt::format("--batch: the documents up to {} are over {} bytes as one JSON request "
                                         "(KG_MAX_BODY_MB); submit them in parts or without --batch",
                                         d.path, so.max_bytes));
    }
  }
  return body;
}

// Backoff while the node is unreachable during --wait: doubling from 250 ms to 5 s, giving up
// once --reconnect-timeout (60 s by default) has passed without one answer.
constexpr auto kReconnectFirst = std::chrono::milliseconds(250);
constexpr auto kReconnectMax = std::chrono::milliseconds(5000);
// How long one poll waits for an answer: a node that accepts but never answers (stopped)
// counts as lost after this, and the budget above bounds the whole wait.
constexpr auto kPollReadTimeout = std::chrono::milliseconds(5000);

// Polls task `id` until it is finished; 0 done, 1 failed, cancelled or the node lost for good.
int WaitForTask(Api& api, const ClientOptions& o, const std::string& id, const std::string& label, bool tty,
                const std::chrono::seconds kReconnectBudget) {
  std::string last;
  bool lost = false;
  std::chrono::steady_clock::time_point lost_since{};
  auto backoff = kReconnectFirst;
  while (true) {
    std::string transient;
    // While lost, no poll outlasts what is left of the budget (at least 1 s, to get an answer).
    auto read_timeout = kPollReadTimeout;
    if (lost) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          kReconnectBudget - (std::chrono::steady_clock::now() - lost_since));
      read_timeout = std::clamp(left, std::chrono::milliseconds(1000), kPollReadTimeout);
    }
    auto t = api.Poll("/api/v1/tasks/" + id, &transient, read_timeout);
    if (!t && !transient.empty()) {
      auto now = std::chrono::steady_clock::now();
      if (!lost) {
        lost = true;
        lost_since = now;
        if (tty) std::cout << "\n";
        std::cerr << "kgflow: lost " << o.url << " (" << transient << "); reconnecting for up to "
                  << kReconnectBudget.count() << " s\n";
      } else if (now - lost_since >= kReconnectBudget) {
        std::cerr << "kgflow: cannot reach " << o.url << " for " << kReconnectBudget.count() << " s (" << transient
                  << "); task " << id << " goes on on the node: `kgflow tasks " << id << "` shows it\n";
        return 1;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kReconnectBudget - (now - lost_since));
      // The node is away: nothing to wait on but time (never past the budget's end).
      std::this_thread::sleep_for(std::max(std::chrono::milliseconds(0), std::min(backoff, left)));
      backoff = std::min(backoff * 2, kReconnectMax);
      continue;
    }
    if (!t) return 1;
    if (lost) {
      std::cerr << "kgflow: reconnected to " << o.url << "\n";
      lost = false;
      backoff = kReconnectFirst;
      last.clear();
    }
    std::string status = (*t)["status"];
    int done = (*t)["chunks_done"], failed = (*t)["chunks_failed"], total = (*t)["chunks_total"];
    std::string line = fmt::format("task {} {}: {}/{} done, {} failed", id, status, done,
                                   Plural(total, "chunk", "chunks"), failed);
    if (tty) Bar(label, done, failed, total, status);
    else if (line != last) std::cout << line << "\n" << std::flush;
    last = line;
    if (Terminal(status)) {
      if (tty) std::cout << "\n";
      if (status == "done") return 0;
      if (!(*t)["error"].is_null()) std::cerr << "kgflow: task " << id << ": " << (*t)["error"].get<std::string>() << "\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a remote API: no event to wait on
  }
}

}  // namespace

int CmdSubmit(const ClientOptions& o, const std::vector<std::string>& files, const SubmitOptions& so) {
  // Every argument is checked before anything is sent: a bad one submits nothing.
  std::vector<std::string> errors;
  bool usage = false;
  std::vector<Doc> docs = Collect(files, so.recursive, so.max_bytes, so.format, &errors, &usage);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "kgflow: " << e << "\n";
    std::cerr << "kgflow: nothing submitted\n";
    return usage ? 2 : 1;
  }
  Api api(o);
  struct Sub {
    std::string id, label;
  };
  std::vector<Sub> subs;
  std::vector<std::string> titles;
  for (const auto& d : docs) titles.push_back(!so.title.empty() ? so.title : d.path == "-" ? "stdin" : Basename(d.path));
  if (so.batch) {
    auto body = BatchBody(docs, titles, so);
    if (!body.ok()) {
      std::cerr << "kgflow: " << body.status().message() << "\nkgflow: nothing submitted\n";
      return 1;
    }
    auto r = api.Post("/api/v1/tasks/batch", *body, "application/x-ndjson");
    if (!r) return 1;
    const json& tasks = (*r)["tasks"];
    for (size_t i = 0; i < docs.size() && i < tasks.size(); ++i) {
      std::cout << fmt::format("submitted {} as task {} ({})\n", docs[i].path, tasks[i]["id"].get<std::string>(),
                               Plural(tasks[i]["chunks"].get<int>(), "chunk", "chunks"));
      subs.push_back({tasks[i]["id"], titles[i]});
    }
    for (const auto& w : r->value("warnings", json::array())) {
      std::cerr << "kgflow: warning: " << w.get<std::string>() << "; the tasks wait until one does\n";
    }
    docs.clear();
  }
  for (const auto& d : docs) {
    const std::string& f = d.path;
    std::string title = !so.title.empty() ? so.title : f == "-" ? "stdin" : Basename(f);
    auto r = SendDocument(api, d, title, so);
    if (!r) return 1;
    std::cout << fmt::format("submitted {} as task {} ({}, provider {})\n", f, (*r)["id"].get<std::string>(),
                             Plural((*r)["chunks_total"].get<int>(), "chunk", "chunks"), (*r)["provider"].get<std::string>());
    if (r->contains("warning") && (*r)["warning"].is_string()) {
      std::cerr << "kgflow: warning: task " << (*r)["id"].get<std::string>() << ": " << (*r)["warning"].get<std::string>()
                << "; it waits until one does\n";
    }
    subs.push_back({(*r)["id"], title});
  }
  if (!so.wait) return 0;
  bool tty = isatty(STDOUT_FILENO);
  int failed_tasks = 0;
  for (const auto& s : subs) {
    if (WaitForTask(api, o, s.id, s.label, tty, std::chrono::seconds(so.reconnect_seconds)) != 0) ++failed_tasks;
  }
  return failed_tasks ? 1 : 0;
}

namespace {

std::string Str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
int64_t Int(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : 0;
}

std::string LocalTime(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// One task for a reader (`tasks ID`; --json prints the API's body instead).
void PrintTask(const json& t) {
  std::cout << fmt::format("task {}: {}\n", Str(t, "id"), Str(t, "title"));
  std::cout << fmt::format("  status    {}\n", Str(t, "status"));
  std::cout << fmt::format("  provider  {}\n", Str(t, "provider"));
  std::cout << fmt::format("  document  {}\n", Str(t, "document"));
  std::cout << fmt::format("  chunks    {} of {} done, {} failed, {} running, {} queued\n", Int(t, "chunks_done"),
                           Int(t, "chunks_total"), Int(t, "chunks_failed"), Int(t, "chunks_running"),
                           Int(t, "chunks_queued"));
  std::cout << fmt::format("  created   {}, updated {}\n", LocalTime(Int(t, "created_at_ms")),
                           LocalTime(Int(t, "updated_at_ms")));
  if (t.contains("usage") && t["usage"].is_object()) {
    const json& u = t["usage"];
    std::string budget = Int(t, "token_budget") > 0 ? fmt::format(" of a budget of {}", Int(t, "token_budget")) : "";
    std::cout << fmt::format("  tokens    {}{} ({} prompt, {} completion), {}, {} from the cache\n", Int(u, "tokens"),
                             budget, Int(u, "prompt_tokens"), Int(u, "completion_tokens"),
                             Plural(Int(u, "requests"), "request", "requests"),
                             Plural(Int(u, "cached_chunks"), "chunk", "chunks"));
    double cost = u.contains("cost") && u["cost"].is_number() ? u["cost"].get<double>() : 0;
    std::cout << fmt::format("  cost      {:.4f} (in the unit of the provider's prices)\n", cost);
  } else if (!Str(t, "usage_error").empty()) {
    std::cout << fmt::format("  tokens    unknown: {}\n", Str(t, "usage_error"));
  }
  if (!Str(t, "error").empty()) std::cout << fmt::format("  error     {}\n", Str(t, "error"));
  if (!Str(t, "warning").empty()) std::cout << fmt::format("  warning   {}\n", Str(t, "warning"));
  if (t.contains("dead_letters") && t["dead_letters"].is_array()) {
    for (const auto& d : t["dead_letters"]) {
      std::cout << fmt::format("  failed chunk {} after {}: {}\n", Str(d, "chunk"),
                               Plural(Int(d, "attempts"), "attempt", "attempts"), Str(d, "error"));
    }
  }
}

}  // namespace

int CmdTasks(const ClientOptions& o, const std::string& id, const std::string& status, int limit) {
  Api api(o);
  if (!id.empty()) {
    if (o.json) return PrintRaw(api, "/api/v1/tasks/" + http::PercentEncode(id));
    auto t = api.Call("GET", "/api/v1/tasks/" + http::PercentEncode(id));
    if (!t) return 1;
    PrintTask(*t);
    return 0;
  }
  std::string path = fmt::format("/api/v1/tasks?limit={}", limit);
  if (!status.empty()) path += "&status=" + http::PercentEncode(status);
  if (o.json) return PrintRaw(api, path);
  auto r = api.Call("GET", path);
  if (!r) return 1;
  std::cout << fmt::format("{:<20} {:<10} {:>6} {:>6} {:>6}  {}\n", "ID", "STATUS", "DONE", "FAILED", "TOTAL", "TITLE");
  std::vector<std::string> warnings;
  for (const auto& t : (*r)["tasks"]) {
    std::cout << fmt::format("{:<20} {:<10} {:>6} {:>6} {:>6}  {}\n", t["id"].get<std::string>(),
                             t["status"].get<std::string>(), t["chunks_done"].get<int>(), t["chunks_failed"].get<int>(),
                             t["chunks_total"].get<int>(), t["title"].get<std::string>());
    if (t.contains("warning") && t["warning"].is_string()) {
      warnings.push_back(fmt::format("task {}: {}", t["id"].get<std::string>(), t["warning"].get<std::string>()));
    }
  }
  for (const auto& w : warnings) std::cout << "warning: " << w << "\n";
  return 0;
}

int CmdWorkers(const ClientOptions& o) {
  Api api(o);
  if (o.json) return PrintRaw(api, "/api/v1/workers");
  auto r = api.Call("GET", "/api/v1/workers");
  if (!r) return 1;
  json all = (*r)["nodes"];
  for (const auto& n : r->value("down", json::array())) all.push_back(n);
  for (const auto& n : all) {
    bool stale = n.value("stale", false);
    std::cout << fmt::format("node {} (role {}, host {}, pid {}), heartbeat {:.1f} s ago{}\n",
                             n["name"].get<std::string>(), n["role"].get<std::string>(), n["host"].get<std::string>(),
                             n["pid"].get<int64_t>(), n.value("heartbeat_age_ms", int64_t{0}) / 1000.0,
                             stale ? fmt::format(" DOWN (no heartbeat for over {} s; processes unknown)",
                                                 2 * n.value("heartbeat_interval_ms", int64_t{0}) / 1000)
                                   : "");
    std::cout << fmt::format("  {:>8} {:<14} {:<12} {:>8} {:>8} {:>7} {:>8}  {}\n", "PID", "PROVIDER", "STATE", "RSS_MB",
                             "CPU_S", "CHUNKS", "RESTARTS", "LAST_EXIT");
    for (const auto& p : n["processes"]) {
      int64_t pid = p["pid"].get<int64_t>();
      std::string last_exit = p["last_exit"].get<std::string>();
      std::cout << fmt::format("  {:>8} {:<14} {:<12} {:>8.1f} {:>8.2f} {:>7} {:>8}  {}\n",
                               pid > 0 ? std::to_string(pid) : stale ? "?" : "-", p["provider"].get<std::string>(),
                               p["state"].get<std::string>(), p["rss_bytes"].get<double>() / 1048576.0,
                               p["cpu_seconds"].get<double>(), p["chunks_done"].get<int64_t>(),
                               p["restarts"].get<int64_t>(), last_exit.empty() ? "-" : last_exit);
    }
  }
  for (const auto& s : (*r)["scaling"]) {
    std::string provider = s["provider"].get<std::string>();
    std::cout << fmt::format("provider {}: configured {} per node (KG_WORKERS_PER_PROVIDER), ", provider,
                             s["configured"].get<int>());
    if (s["override"].is_null()) {
      std::cout << "no override";
    } else {
      std::cout << fmt::format("override {} per node in force (`kgflow scale {} --reset` removes it)",
                               s["override"].get<int>(), provider);
    }
    if (s.contains("per_node")) std::cout << fmt::format("; runs {} here", s["per_node"].get<int>());
    std::cout << "\n";
  }
  return 0;
}

namespace {

// Processes of `provider` on node `node` in a /api/v1/workers answer, and whether every one
// of them is settled (idle or busy: none starting or stopping).
std::pair<int, bool> RunningOn(const json& workers, const std::string& node, const std::string& provider) {
  int n = 0;
  bool settled = true;
  for (const auto& nd : workers["nodes"]) {
    if (nd["name"] != node) continue;
    for (const auto& p : nd["processes"]) {
      if (p["provider"] != provider || p["pid"].get<int64_t>() <= 0) continue;
      ++n;
      settled = settled && (p["state"] == "idle" || p["state"] == "busy");
    }
  }
  return {n, settled};
}

}  // namespace

int CmdScale(const ClientOptions& o, const std::string& provider, int n, int timeout_seconds) {
  Api api(o);
  json body = {{"per_node", n}};
  auto r = api.Call("PUT", "/api/v1/providers/" + provider + "/processes", &body);
  if (!r) return 1;
  int target = (*r)["per_node"].get<int>();
  std::string caps;
  if (r->contains("caps")) {
    for (const auto& [k, v] : (*r)["caps"].items()) caps += fmt::format("{}{}={}", caps.empty() ? "" : ", ", k, v.get<int>());
  }
  std::string binding = (*r)["clamped"].get<bool>() ? fmt::format("; clamped by {}", (*r)["reason"].get<std::string>()) : "";
  bool here = r->contains("node") && (*r)["node"].is_string();
  std::cout << fmt::format("provider {}: asked for {} per node; target {} {}{} (caps: {})\n", provider, n,
                           Plural(target, "process", "processes"),
                           here ? "on node " + (*r)["node"].get<std::string>() : "per worker node", binding, caps)
            << std::flush;
  if (!here) {
    std::cout << fmt::format("provider {}: {}\n", provider, (*r)["applied"].get<std::string>());
    return 0;
  }
  std::string node = (*r)["node"];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int last = -1;
  while (true) {
    auto w = api.Call("GET", "/api/v1/workers");
    if (!w) return 1;
    auto [running, settled] = RunningOn(*w, node, provider);
    last = running;
    if (running == target && settled) {
      std::cout << fmt::format("provider {}: {} running on node {}\n", provider,
                               Plural(running, "process", "processes"), node);
      return 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a remote API: no event to wait on
  }
  std::cerr << fmt::format("kgflow: provider {}: {} of the target {} running on node {} after {} s; the node keeps "
                           "trying (see `kgflow workers` and the node's log)\n",
                           provider, last, target, node, timeout_seconds);
  return 1;
}

int CmdScaleReset(const ClientOptions& o, const std::string& provider) {
  Api api(o);
  auto r = api.Call("DELETE", "/api/v1/providers/" + provider + "/processes");
  if (!r) return 1;
  std::cout << fmt::format("provider {}: override removed; back to the configured {} per node ({} here)\n", provider,
                           (*r)["configured"].get<int>(), (*r)["per_node"].get<int>());
  return 0;
}

int CmdGraphStats(const ClientOptions& o) {
  Api api(o);
  if (o.json) return PrintRaw(api, "/api/v1/graph/stats");
  auto r = api.Call("GET", "/api/v1/graph/stats");
  if (!r) return 1;
  std::cout << fmt::format("documents {}  chunks {}  entities {}  relations {}\n", (*r)["documents"].get<int64_t>(),
                           (*r)["chunks"].get<int64_t>(), (*r)["entities"].get<int64_t>(),
                           (*r)["relations"].get<int64_t>());
  return 0;
}

int CmdGraphSearch(const ClientOptions& o, const std::string& q, int limit) {
  Api api(o);
  std::string path =
      "/api/v1/graph/entities?q=" + http::PercentEncode(q) + "&limit=" + std::to_string(limit);
  if (o.json) return PrintRaw(api, path);
  auto r = api.Call("GET", path);
  if (!r) return 1;
  for (const auto& e : (*r)["entities"]) {
    std::cout << fmt::format("{:<40} {:<14} mentions {}\n", e["name"].get<std::string>(), e["type"].get<std::string>(),
                             e["mentions"].get<int64_t>());
  }
  return 0;
}

int CmdGraphEntity(const ClientOptions& o, const std::string& key) {
  Api api(o);
  std::string path = "/api/v1/graph/entities/" + http::PercentEncode(key);
  if (o.json) return PrintRaw(api, path);
  auto r = api.Call("GET", path);
  if (!r) return 1;
  const json& e = *r;
  std::cout << fmt::format("{} ({}), key {}, {}\n", e["name"].get<std::string>(), e["type"].get<std::string>(),
                           e["key"].get<std::string>(), Plural(e["mentions"].get<int64_t>(), "mention", "mentions"));
  if (e.contains("description") && e["description"].is_string() && !e["description"].get<std::string>().empty()) {
    std::cout << "  " << e["description"].get<std::string>() << "\n";
  }
  for (const auto& nb : e["neighbours"]) {
    bool out = nb["direction"] == "out";
    std::cout << fmt::format("  {} {} {} {} ({})\n", out ? "-[" : "<-[", nb["type"].get<std::string>(),
                             out ? "]->" : "]-", nb["entity"]["name"].get<std::string>(),
                             nb["entity"]["type"].get<std::string>());
  }
  std::cout << fmt::format("  in {}, {}\n", Plural(static_cast<int64_t>(e["documents"].size()), "document", "documents"),
                           Plural(static_cast<int64_t>(e["chunks"].size()), "chunk", "chunks"));
  return 0;
}

namespace {

int TaskAction(const ClientOptions& o, const std::string& id, const std::string& action, const std::string& count,
               const std::string& what) {
  Api api(o);
  auto r = api.Call("POST", "/api/v1/tasks/" + http::PercentEncode(id) + "/" + action);
  if (!r) return 1;
  int64_t n = r->contains(count) ? (*r)[count].get<int64_t>() : 0;
  std::cout << fmt::format("task {} {}: {} {}; status {}\n", id, action == "cancel" ? "cancelled" : "retried",
                           Plural(n, "chunk", "chunks"), what, (*r)["status"].get<std::string>());
  return 0;
}

}  // namespace

int CmdCancel(const ClientOptions& o, const std::string& id) {
  return TaskAction(o, id, "cancel", "chunks_cancelled", "cancelled");
}

int CmdRetry(const ClientOptions& o, const std::string& id) {
  return TaskAction(o, id, "retry", "chunks_requeued", "queued again");
}

int CmdGraphExport(const ClientOptions& o, const std::string& format) {
  Api api(o);
  std::string raw;
  auto r = api.Call("GET", "/api/v1/graph/export?format=" + format, nullptr, &raw);
  if (!r) return 1;
  std::cout << raw;
  return 0;
}

}  // namespace kg
