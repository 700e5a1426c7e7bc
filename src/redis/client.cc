#include "redis/client.h"

#include <openssl/evp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <algorithm>
#include <random>

#include "common/util.h"

namespace kg::redis {
namespace {

// Reconnect pacing after failed connects: 50 ms doubling to 2 s, +-25 % jitter so that many
// clients do not knock on a restarting server in step.
constexpr int64_t kBackoffBaseMs = 50;
constexpr int64_t kBackoffCapMs = 2000;
constexpr double kBackoffJitter = 0.25;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

Value Convert(const redisReply* r) {
  Value v;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      v.type = Value::Type::kInt;
      v.i = r->integer;
      break;
    case REDIS_REPLY_STRING:
      v.type = Value::Type::kString;
      v.s.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = Value::Type::kStatus;
      v.s.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = Value::Type::kError;
      v.s.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      v.type = Value::Type::kArray;
      v.a.reserve(r->elements);
      for (size_t k = 0; k < r->elements; ++k) v.a.push_back(Convert(r->element[k]));
      break;
    default:
      break;  // nil
  }
  return v;
}

timeval Tv(int ms) { return timeval{ms / 1000, static_cast<suseconds_t>((ms % 1000) * 1000)}; }

std::vector<std::string> Argv(const Call& c) {
  if (!c.script) return c.args;
  std::vector<std::string> argv;
  argv.reserve(c.args.size() + 3);
  argv.push_back("EVALSHA");
  argv.push_back(c.script->sha());
  argv.push_back(std::to_string(c.numkeys));
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  return argv;
}

int Append(redisContext* ctx, const std::vector<std::string>& argv) {
  std::vector<const char*> p;
  std::vector<size_t> len;
  p.reserve(argv.size());
  len.reserve(argv.size());
  for (const auto& a : argv) {
    p.push_back(a.data());
    len.push_back(a.size());
  }
  return redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), p.data(), len.data());
}

}  // namespace

int64_t Value::Int(int64_t fallback) const {
  if (type == Type::kInt) return i;
  if (type == Type::kString && !s.empty()) {
    try {
      size_t used = 0;
      int64_t n = std::stoll(s, &used);
      if (used == s.size()) return n;
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Script::Script(std::string body) : body_(std::move(body)) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(body_.data(), body_.size(), md, &n, EVP_sha1(), nullptr);
  static const char* kHex = "0123456789abcdef";
  for (unsigned int k = 0; k < n; ++k) {
    sha_.push_back(kHex[md[k] >> 4]);
    sha_.push_back(kHex[md[k] & 15]);
  }
}

Call Call::Eval(const Script& s, std::vector<std::string> keys, std::vector<std::string> argv) {
  Call c;
  c.script = &s;
  c.numkeys = static_cast<int>(keys.size());
  c.args = std::move(keys);
  c.args.insert(c.args.end(), std::make_move_iterator(argv.begin()), std::make_move_iterator(argv.end()));
  return c;
}

// ---- Connection ----

Connection::Connection(const RedisEndpoint& at, Client* owner) : at_(at), owner_(owner) {}

Connection::~Connection() { Drop(); }

void Connection::Drop() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

int Connection::fd() const { return ctx_ ? ctx_->fd : -1; }

Status Connection::Lost(const std::string& what) {
  std::string why = what + ": " + (ctx_ && ctx_->errstr[0] ? std::string(ctx_->errstr) : std::string("connection lost"));
  Drop();
  owner_->TransportLost(why);
  return Status::Unavailable(owner_->Where() + ": " + why);
}

Status Connection::Ensure() {
  if (ctx_) return Status::Ok();
  KG_RETURN_IF_ERROR(owner_->MayConnect());
  redisContext* c = redisConnectWithTimeout(at_.host.c_str(), at_.port, Tv(at_.connect_timeout_ms));
  if (!c || c->err) {
    std::string why = c ? c->errstr : "cannot allocate a context";
    if (c) redisFree(c);
    owner_->ConnectFailed(why);
    return Status::Unavailable(owner_->Where() + ": connect: " + why);
  }
  ctx_ = c;
  // The socket timeout bounds every later round trip; set on every connect, since a
  // reconnect would otherwise run without one.
  if (redisSetTimeout(ctx_, Tv(at_.socket_timeout_ms)) != REDIS_OK) {
    Status s = Status::Unavailable(owner_->Where() + ": set socket timeout: " + ctx_->errstr);
    owner_->ConnectFailed("set socket timeout");
    Drop();
    return s;
  }
  redisEnableKeepAlive(ctx_);
  std::vector<Call> setup;
  if (!at_.password.empty()) setup.push_back(Call::Cmd({"AUTH", at_.password}));
  if (at_.db != 0) setup.push_back(Call::Cmd({"SELECT", std::to_string(at_.db)}));
  if (!setup.empty()) {
    auto r = RunOnce(setup);
    if (!r.ok()) {
      owner_->ConnectFailed("setup");
      return r.status();
    }
    for (size_t k = 0; k < r->size(); ++k) {
      if ((*r)[k].type == Value::Type::kError) {
        // The server's words (e.g. "WRONGPASS invalid username-password pair"), never the password.
        // A refused password or database is the configuration's fault, not an outage: no waiting
        // for it to pass (REDIS_PASSWORD, REDIS_DB).
        std::string what = at_.password.empty() || k > 0 ? "select db " + std::to_string(at_.db) : "auth";
        Drop();
        owner_->ConnectFailed(what + " refused");
        return Status::Invalid(owner_->Where() + ": " + what + ": " + (*r)[k].s + " (check " +
                               (what == "auth" ? "REDIS_PASSWORD" : "REDIS_DB") + ")");
      }
    }
  }
  owner_->Connected();
  return Status::Ok();
}

Result<std::vector<Value>> Connection::RunOnce(const std::vector<Call>& calls) {
  for (const auto& c : calls) {
    if (Append(ctx_, Argv(c)) != REDIS_OK) return Lost("send");
  }
  std::vector<Value> out;
  out.reserve(calls.size());
  for (size_t k = 0; k < calls.size(); ++k) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) return Lost("read");
    ReplyPtr r(static_cast<redisReply*>(raw));
    out.push_back(Convert(r.get()));
  }
  return out;
}

Result<std::vector<Value>> Connection::Run(const std::vector<Call>& calls, bool allow_errors) {
  KG_RETURN_IF_ERROR(Ensure());
  KG_ASSIGN_OR_RETURN(auto out, RunOnce(calls));
  // A server that restarted or flushed its script cache answers NOSCRIPT: load and retry those
  // calls once (they did not run, so retrying them cannot apply anything twice).
  std::vector<Call> retry;
  std::vector<size_t> where;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k].type == Value::Type::kError && calls[k].script && out[k].s.rfind("NOSCRIPT", 0) == 0) {
      retry.push_back(Call::Cmd({"SCRIPT", "LOAD", calls[k].script->body()}));
      retry.push_back(calls[k]);
      where.push_back(k);
    }
  }
  if (!retry.empty()) {
    KG_ASSIGN_OR_RETURN(auto again, RunOnce(retry));
    for (size_t k = 0; k < where.size(); ++k) out[where[k]] = std::move(again[2 * k + 1]);
  }
  if (!allow_errors) {
    for (const auto& v : out) {
      if (v.type == Value::Type::kError) return Status::Internal(owner_->Where() + ": " + v.s);
    }
  }
  return out;
}

Status Connection::Send(const std::vector<std::string>& argv) {
  KG_RETURN_IF_ERROR(Ensure());
  if (Append(ctx_, argv) != REDIS_OK) return Lost("send");
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return Lost("send");
  }
  return Status::Ok();
}

Result<Value> Connection::Read() {
  if (!ctx_) return Status::Unavailable(owner_->Where() + ": not connected");
  void* raw = nullptr;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) return Lost("read");
  ReplyPtr r(static_cast<redisReply*>(raw));
  return Convert(r.get());
}

Status Connection::Subscribe(const std::string& channel) {
  KG_RETURN_IF_ERROR(Send({"SUBSCRIBE", channel}));
  KG_ASSIGN_OR_RETURN(Value v, Read());
  // RESP2 confirmation: ["subscribe", channel, number of subscriptions].
  if (v.type == Value::Type::kArray && v.a.size() == 3 && v.a[0].Str() == "subscribe" && v.a[1].Str() == channel) {
    owner_->SubscribeAccepted(channel);
    return Status::Ok();
  }
  std::string why = v.type == Value::Type::kError ? v.s : "unexpected reply";
  Drop();
  owner_->SubscribeRefused(channel, why);
  return Status::Internal(owner_->Where() + ": subscribe " + channel + ": " + why);
}

Result<std::vector<Value>> Connection::Drain() {
  if (!ctx_) return Status::Unavailable(owner_->Where() + ": not connected");
  pollfd p{ctx_->fd, POLLIN, 0};
  if (::poll(&p, 1, 0) > 0) {
    // Readable: either data (read once, it does not block) or EOF/an error (read reports it).
    if (redisBufferRead(ctx_) != REDIS_OK) return Lost("read");
  }
  std::vector<Value> out;
  while (true) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return Lost("parse");
    if (!raw) break;
    ReplyPtr r(static_cast<redisReply*>(raw));
    out.push_back(Convert(r.get()));
  }
  return out;
}

// ---- Client ----

Client::Client(RedisEndpoint at) : at_(std::move(at)) {}
Client::~Client() = default;

std::string Client::Where() const { return "redis " + at_.host + ":" + std::to_string(at_.port); }

std::unique_ptr<Connection> Client::Take() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return NewConnection();
}

void Client::Give(std::unique_ptr<Connection> c) {
  MutexLock lock(mu_);
  // Keep a few for reuse; a burst of threads beyond that closes its extra connections.
  if (idle_.size() < 16) idle_.push_back(std::move(c));
}

Result<std::vector<Value>> Client::Run(const std::vector<Call>& calls) {
  auto c = Take();
  auto r = c->Run(calls);
  Give(std::move(c));
  return r;
}

Result<Value> Client::Run(const Call& call) {
  KG_ASSIGN_OR_RETURN(auto v, Run(std::vector<Call>{call}));
  return std::move(v[0]);
}

Status Client::MayConnect() {
  MutexLock lock(mu_);
  if (failures_ > 0 && MonoMs() < next_try_ms_) {
    return Status::Unavailable(Where() + ": unreachable, next reconnect attempt in " +
                               std::to_string(next_try_ms_ - MonoMs()) + " ms");
  }
  return Status::Ok();
}

void Client::ConnectFailed(const std::string& why) {
  MutexLock lock(mu_);
  int64_t delay = std::min(kBackoffCapMs, kBackoffBaseMs << std::min(failures_, 10));
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  double factor = 1.0 + kBackoffJitter * (2.0 * std::uniform_real_distribution<double>(0, 1)(rng) - 1.0);
  next_try_ms_ = MonoMs() + static_cast<int64_t>(static_cast<double>(delay) * factor);
  ++failures_;
  if (!down_) {
    down_ = true;
    spdlog::warn("{}: connection lost ({}); reconnecting with backoff", Where(), why);
  }
}

void Client::Connected() {
  MutexLock lock(mu_);
  failures_ = 0;
  if (down_) {
    down_ = false;
    spdlog::info("{}: connection restored", Where());
  }
}

void Client::TransportLost(const std::string& why) {
  MutexLock lock(mu_);
  // The idle connections went to the same server: most likely dead too, so the next call
  // connects afresh instead of failing once per pooled connection.
  idle_.clear();
  if (!down_) {
    down_ = true;
    spdlog::warn("{}: connection lost ({}); reconnecting with backoff", Where(), why);
  }
}

void Client::SubscribeRefused(const std::string& channel, const std::string& why) {
  MutexLock lock(mu_);
  if (!subscribe_refused_) {
    subscribe_refused_ = true;
    spdlog::warn("{}: subscribe {} refused ({}); waits go without wake-ups until it is accepted", Where(), channel,
                 why);
  }
}

void Client::SubscribeAccepted(const std::string& channel) {
  MutexLock lock(mu_);
  if (subscribe_refused_) {
    subscribe_refused_ = false;
    spdlog::info("{}: subscribe {} accepted again", Where(), channel);
  }
}

}  // namespace kg::redis
