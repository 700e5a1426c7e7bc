#pragma once
// A small RAII client over hiredis 0.14 (RESP2, no TLS, no automatic reconnect).
//
// - Connection: one hiredis context; NOT thread-safe (hiredis is not). Connects with the
//   endpoint's connect timeout, sets the socket timeout, AUTH, SELECT, on every (re)connect.
//   A transport error (timeout, EOF, refused) frees the context; the next call connects anew.
// - Client: thread-safe; hands each call a Connection from a small pool (one context per
//   thread at a time), so callers never share a context.
// - Calls are argv vectors (binary-safe), sent pipelined: N calls cost one round trip.
//   A Call with a Script runs by EVALSHA; on NOSCRIPT (a restarted or flushed server) the
//   script is loaded with SCRIPT LOAD and that call retried once.
// - Errors are Status values: kUnavailable for transport errors and while backing off
//   between reconnect attempts (capped exponential backoff with jitter), kInternal for an
//   error reply. Messages read "redis HOST:PORT: ..." and never carry the password.
// - A lost connection is logged once per outage (warn) and the recovery once (info).
#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "redis/endpoint.h"

namespace kg::redis {

// A reply converted to a value (RESP2 types).
struct Value {
  enum class Type { kNil, kInt, kString, kStatus, kArray, kError };
  Type type = Type::kNil;
  int64_t i = 0;
  std::string s;  // kString, kStatus, kError
  std::vector<Value> a;

  bool nil() const { return type == Type::kNil; }
  // The integer of a kInt, or of a kString holding a decimal number; `fallback` otherwise.
  int64_t Int(int64_t fallback = 0) const;
  const std::string& Str() const { return s; }
};

// A Lua script run by EVALSHA; the SHA-1 is computed once, here.
class Script {
 public:
  explicit Script(std::string body);
  const std::string& body() const { return body_; }
  const std::string& sha() const { return sha_; }

 private:
  std::string body_;
  std::string sha_;
};

// One command: plain argv, or a script with its keys followed by its arguments.
struct Call {
  const Script* script = nullptr;  // borrowed; outlives the call
  int numkeys = 0;
  std::vector<std::string> args;

  static Call Cmd(std::vector<std::string> argv) { return Call{nullptr, 0, std::move(argv)}; }
  static Call Eval(const Script& s, std::vector<std::string> keys, std::vector<std::string> argv);
};

class Client;

// One hiredis context. Not thread-safe. Movable only through unique_ptr.
class Connection {
 public:
  Connection(const RedisEndpoint& at, Client* owner);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (with AUTH and SELECT) unless connected; kUnavailable when it cannot.
  Status Ensure();
  // Sends every call in one write and reads every reply. A transport error drops the
  // context and fails the whole batch with kUnavailable (some calls may have run).
  // An error reply fails with kInternal unless `allow_errors` (then it is a kError Value).
  Result<std::vector<Value>> Run(const std::vector<Call>& calls, bool allow_errors = false);

  // For a subscriber: SUBSCRIBEs to `channel` and reads the confirmation (within the socket
  // timeout). kUnavailable on a transport error; kInternal when the server answers anything
  // but the confirmation for `channel` (an error such as NOPERM from an ACL, or "max number of
  // clients reached"), and the connection is dropped then: afterwards it is subscribed or not
  // connected. A refusal is logged once until a subscribe succeeds again.
  Status Subscribe(const std::string& channel);
  // The replies already received (reads the socket once if it is readable now); never blocks.
  Result<std::vector<Value>> Drain();
  int fd() const;
  bool connected() const { return ctx_ != nullptr; }
  void Drop();

 private:
  Status Lost(const std::string& what);
  Result<std::vector<Value>> RunOnce(const std::vector<Call>& calls);
  // Sends `argv` without reading a reply.
  Status Send(const std::vector<std::string>& argv);
  // Reads one reply, waiting up to the socket timeout.
  Result<Value> Read();

  RedisEndpoint at_;
  Client* owner_;  // borrowed: reports outages and recoveries, paces reconnects
  redisContext* ctx_ = nullptr;
};

// Thread-safe front of a small pool of Connections.
class Client {
 public:
  explicit Client(RedisEndpoint at);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const RedisEndpoint& endpoint() const { return at_; }
  // "redis HOST:PORT" (no password), the prefix of every message.
  std::string Where() const;

  Result<std::vector<Value>> Run(const std::vector<Call>& calls);
  Result<Value> Run(const Call& call);
  // A new connection of its own (a subscriber keeps one for itself).
  std::unique_ptr<Connection> NewConnection() { return std::make_unique<Connection>(at_, this); }

  // Reconnect pacing and outage logging, shared by every connection of this client.
  // Returns kUnavailable while the backoff after a failed connect has not passed.
  Status MayConnect();
  void ConnectFailed(const std::string& why);
  void Connected();
  void TransportLost(const std::string& why);
  // A refused SUBSCRIBE and the next accepted one: one log line each per streak.
  void SubscribeRefused(const std::string& channel, const std::string& why);
  void SubscribeAccepted(const std::string& channel);

 private:
  std::unique_ptr<Connection> Take();
  void Give(std::unique_ptr<Connection> c);

  RedisEndpoint at_;
  Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ KG_GUARDED_BY(mu_);
  bool down_ KG_GUARDED_BY(mu_) = false;  // an outage was logged and has not yet ended
  int failures_ KG_GUARDED_BY(mu_) = 0;     // connect failures in a row
  int64_t next_try_ms_ KG_GUARDED_BY(mu_) = 0;  // monotonic; no connect attempt before
  bool subscribe_refused_ KG_GUARDED_BY(mu_) = false;  // a refusal was logged, no success since
};

}  // namespace kg::redis
