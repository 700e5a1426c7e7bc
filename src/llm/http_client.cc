#include "llm/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <string_view>
#include <thread>
#include <utility>

#include "common/mutex.h"
#include "common/util.h"

namespace kg::llm {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      std::fprintf(stderr, "curl_global_init failed\n");
      std::abort();
    }
  });
}

// One transfer: owns its easy handle and everything libcurl borrows from it.
struct Transfer {
  HttpRequest request;
  HttpClient::Done done;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpResponse response;
  size_t max_bytes = 0;
  bool too_large = false;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (t->response.body.size() + len > t->max_bytes) {
    t->too_large = true;
    return 0;  // CURLE_WRITE_ERROR: ends this transfer
  }
  t->response.body.append(data, len);
  return len;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  std::string_view line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after a 100 Continue): forget the headers of the previous one.
    HttpResponse fresh;
    fresh.body = std::move(t->response.body);
    t->response = std::move(fresh);
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string value = Trim(line.substr(colon + 1));
  HttpResponse& r = t->response;
  if (name == "retry-after") r.retry_after = value;
  else if (name == "retry-after-ms") r.retry_after_ms = value;
  else if (name == "x-ratelimit-remaining-requests") r.ratelimit_remaining_requests = value;
  else if (name == "x-ratelimit-remaining-tokens") r.ratelimit_remaining_tokens = value;
  else if (name == "x-ratelimit-reset-requests") r.ratelimit_reset_requests = value;
  else if (name == "x-ratelimit-reset-tokens") r.ratelimit_reset_tokens = value;
  return len;
}

struct Timer {
  int64_t due_ms;
  uint64_t seq;
  std::function<void()> fn;
};
struct TimerLater {
  bool operator()(const Timer& a, const Timer& b) const {
    return a.due_ms != b.due_ms ? a.due_ms > b.due_ms : a.seq > b.seq;
  }
};

}  // namespace

struct HttpClient::Impl {
  Options options;
  CURLM* multi = nullptr;
  std::thread thread;
  std::thread::id loop_id;

  Mutex mu;
  bool stop KG_GUARDED_BY(mu) = false;
  std::deque<std::unique_ptr<Transfer>> incoming KG_GUARDED_BY(mu);
  std::vector<Timer> incoming_timers KG_GUARDED_BY(mu);
  uint64_t next_seq KG_GUARDED_BY(mu) = 0;

  // Loop thread only.
  std::map<CURL*, std::unique_ptr<Transfer>> running;
  std::priority_queue<Timer, std::vector<Timer>, TimerLater> timers;

  void Start(std::unique_ptr<Transfer> t);
  void Finish(CURL* easy, CURLcode code);
  void Loop();
};

HttpClient::HttpClient(Options options) : impl_(std::make_unique<Impl>()) {
  GlobalInitOnce();
  impl_->options = options;
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) {
    std::fprintf(stderr, "curl_multi_init failed\n");
    std::abort();
  }
  long conns = std::max(1, options.max_host_connections);
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
  // Keep as many idle connections as may be busy at once, so a burst reuses them all.
  curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, conns);
  impl_->thread = std::thread([impl = impl_.get()] { impl->Loop(); });
  impl_->loop_id = impl_->thread.get_id();
}

void HttpClient::Stop() {
  {
    MutexLock l(impl_->mu);
    impl_->stop = true;
  }
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
}

HttpClient::~HttpClient() {
  Stop();
  // Abandon what is left without calling back.
  for (auto& [easy, t] : impl_->running) curl_multi_remove_handle(impl_->multi, easy);
  impl_->running.clear();
  curl_multi_cleanup(impl_->multi);
}

void HttpClient::Post(HttpRequest request, Done done) {
  auto t = std::make_unique<Transfer>();
  t->request = std::move(request);
  t->done = std::move(done);
  {
    MutexLock l(impl_->mu);
    if (impl_->stop) return;
    impl_->incoming.push_back(std::move(t));
  }
  curl_multi_wakeup(impl_->multi);
}

void HttpClient::RunAfter(int64_t delay_ms, std::function<void()> fn) {
  {
    MutexLock l(impl_->mu);
    if (impl_->stop) return;
    impl_->incoming_timers.push_back(Timer{MonoMs() + std::max<int64_t>(0, delay_ms), impl_->next_seq++, std::move(fn)});
  }
  curl_multi_wakeup(impl_->multi);
}

bool HttpClient::InLoopThread() const { return std::this_thread::get_id() == impl_->loop_id; }

void HttpClient::Impl::Start(std::unique_ptr<Transfer> t) {
  CURL* e = curl_easy_init();
  if (e == nullptr) {
    t->response.error = "curl_easy_init failed";
    t->done(std::move(t->response));
    return;
  }
  t->easy = e;
  t->max_bytes = options.max_response_bytes;
  for (const std::string& h : t->request.headers) t->headers = curl_slist_append(t->headers, h.c_str());
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  // libcurl sends "Expect: 100-continue" for bodies over 1 KiB and waits up to 1 s for an
  // answer many servers never give.
  t->headers = curl_slist_append(t->headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request.body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request.body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, t->request.connect_timeout_ms)));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, t->request.total_timeout_ms)));
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // whatever this libcurl decodes
  // No CURLOPT_PIPEWAIT: on 7.88 it held HTTP/1.1 transfers back to one connection at a time
  // (a test with 5 held requests saw 1 arrive). HTTP/2 still multiplexes once a connection is up.
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  CURLMcode mc = curl_multi_add_handle(multi, e);
  if (mc != CURLM_OK) {
    t->response.error = std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc);
    t->done(std::move(t->response));
    return;
  }
  running.emplace(e, std::move(t));
}

void HttpClient::Impl::Finish(CURL* easy, CURLcode code) {
  auto it = running.find(easy);
  if (it == running.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  running.erase(it);
  curl_multi_remove_handle(multi, easy);
  HttpResponse r = std::move(t->response);
  if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<int>(status);
  } else {
    r.status = 0;
    r.body.clear();
    r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    if (t->too_large) {
      r.error = "response larger than " + std::to_string(options.max_response_bytes) + " bytes";
    } else {
      r.error = curl_easy_strerror(code);
      if (t->error[0] != '\0') r.error += std::string(": ") + t->error;
    }
  }
  Done done = std::move(t->done);
  t.reset();  // the handle goes before the callback, which may start the next transfer
  done(std::move(r));
}

void HttpClient::Impl::Loop() {
  for (;;) {
    std::deque<std::unique_ptr<Transfer>> starts;
    {
      MutexLock l(mu);
      if (stop) return;
      starts.swap(incoming);
      for (Timer& tm : incoming_timers) timers.push(std::move(tm));
      incoming_timers.clear();
    }
    for (auto& t : starts) Start(std::move(t));

    int64_t now = MonoMs();
    while (!timers.empty() && timers.top().due_ms <= now) {
      std::function<void()> fn = std::move(const_cast<Timer&>(timers.top()).fn);
      timers.pop();
      fn();
    }

    int still = 0;
    curl_multi_perform(multi, &still);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg == CURLMSG_DONE) Finish(m->easy_handle, m->data.result);
    }

    // Sleep until a socket is ready, libcurl's own timeout, the next timer or a wake-up.
    long curl_timeout = -1;
    curl_multi_timeout(multi, &curl_timeout);
    int64_t wait = 60000;
    if (curl_timeout >= 0) wait = std::min<int64_t>(wait, curl_timeout);
    if (!timers.empty()) wait = std::min<int64_t>(wait, std::max<int64_t>(0, timers.top().due_ms - MonoMs()));
    if (wait > 0) curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait), nullptr);
  }
}

}  // namespace kg::llm
