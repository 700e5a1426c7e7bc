// One Bolt session: version handshake, HELLO/LOGON, RUN/PULL/DISCARD, explicit transactions,
// FAILURE -> RESET recovery, ROUTE and GOODBYE. The bytes on the wire are transport.cc's.
//
// Version: the handshake offers 5.8..5.6, 5.4..5.0 and 4.4; Neo4j 5.26 picks 5.8. From 5.7 a
// FAILURE carries {gql_status, description, message, neo4j_code, ...} instead of {code,
// message}: FailureStatus() reads `neo4j_code` and falls back to `code`, the one place that
// differs, so the newest version costs nothing elsewhere. 5.1+ log in with LOGON; 5.0 and
// 4.4 put the credentials in HELLO.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "bolt/bolt.h"
#include "bolt/codes.h"
#include "bolt/transport.h"

namespace kg::bolt {

namespace {

// Request and response signatures (message struct tags).
constexpr uint8_t kHello = 0x01, kGoodbye = 0x02, kReset = 0x0F, kRun = 0x10, kBegin = 0x11, kCommit = 0x12,
                  kRollback = 0x13, kDiscard = 0x2F, kPull = 0x3F, kRoute = 0x66, kLogon = 0x6A;
constexpr uint8_t kSuccess = 0x70, kRecord = 0x71, kIgnored = 0x7E, kFailure = 0x7F;

constexpr const char* kAgent = "kgflow/" KG_VERSION;

}  // namespace

bool ClosesConnection(std::string_view neo4j_code) {
  return neo4j_code == "Neo.ClientError.Security.AuthorizationExpired" ||
         neo4j_code == "Neo.ClientError.Security.TokenExpired";
}

Code CodeForNeo4j(std::string_view neo4j_code) {
  auto starts = [&](std::string_view p) { return neo4j_code.starts_with(p); };
  if (starts("Neo.TransientError.")) return Code::kUnavailable;
  // A routing failure: the server is no longer (or never was) the writer; refresh and retry.
  if (neo4j_code == "Neo.ClientError.Cluster.NotALeader" ||
      neo4j_code == "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase") {
    return Code::kUnavailable;
  }
  // Expired credentials: a fresh connection logs in again (the connection is closed).
  if (ClosesConnection(neo4j_code)) return Code::kUnavailable;
  if (starts("Neo.ClientError.Security.")) return Code::kInvalidArgument;
  if (neo4j_code == "Neo.ClientError.Database.DatabaseNotFound") return Code::kInvalidArgument;
  if (neo4j_code == "Neo.ClientError.Schema.ConstraintValidationFailed") return Code::kConflict;
  return Code::kInternal;
}

int64_t Summary::Counter(std::string_view name) const {
  for (const auto& [k, v] : metadata) {
    if (k == "stats") return v[name].AsInt();
  }
  return 0;
}

struct Connection::Impl {
  Neo4jEndpoint e;  // with the password cleared once logged in
  std::string host;
  int port = 0;
  Transport t;
  int major = 0, minor = 0;
  std::string agent;
  bool broken = false;
  bool in_tx = false;
  int pending = 0;  // requests sent whose summary (SUCCESS, FAILURE, IGNORED) is still to come
  BookmarkHooks bookmarks;
  std::vector<std::string> sent_bookmarks;
  std::string last_bookmark;

  std::string Address() const { return HostPort(host, port); }
  // The bookmark a COMMIT or an auto-commit query's last SUCCESS carries, if any.
  void Bookmark(const Map& meta) {
    for (const auto& [k, v] : meta) {
      if (k == "bookmark" && v.is_string() && !v.AsString().empty()) {
        last_bookmark = v.AsString();
        if (bookmarks.sink) bookmarks.sink(last_bookmark);
      }
    }
  }
  Status Err(const std::string& what, const Status& s) const {
    return Status(s.code(), "neo4j " + Address() + ": " + what + ": " + s.message());
  }
  // A transport or protocol error: the connection cannot be trusted again.
  Status Break(const std::string& what, const Status& s) {
    broken = true;
    in_tx = false;
    t.Close();
    return Err(what, s);
  }
  bool AtLeast(int maj, int min) const { return major > maj || (major == maj && minor >= min); }

  void Queue(uint8_t tag, std::vector<Value> fields) {
    std::string bytes;
    Pack(Value(Struct{tag, std::move(fields)}), bytes);
    t.QueueMessage(bytes);
    ++pending;
  }
  Status Flush(const std::string& what) {
    Status s = t.Flush();
    return s.ok() ? s : Break(what, s);
  }
  Result<Struct> Receive(const std::string& what) {
    std::string bytes;
    Status s = t.ReadMessage(bytes);
    if (!s.ok()) return Break(what, s);
    size_t pos = 0;
    Result<Value> v = Unpack(bytes, &pos);
    if (!v.ok()) return Break(what, v.status());
    if (!v->is_struct() || pos != bytes.size()) {
      return Break(what, Status::Internal("malformed reply (not one message struct): " + Debug(*v).substr(0, 200)));
    }
    Struct m = v->AsStruct();
    if (m.tag == kSuccess || m.tag == kFailure || m.tag == kIgnored) {
      --pending;
    } else if (m.tag != kRecord) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02X", m.tag);
      return Break(what, Status::Internal(std::string("unexpected message 0x") + buf));
    }
    return m;
  }
  static const Map& Meta(const Struct& m) {
    static const Map kNone;
    return m.fields.empty() ? kNone : m.fields[0].AsMap();
  }

  // The Status of a FAILURE summary: "<Neo4j code>: <Neo4j message>" (Err adds where).
  static Status FailureStatus(const Struct& m) {
    Value meta(Meta(m));
    std::string code = meta["neo4j_code"].AsString();  // 5.7+
    if (code.empty()) code = meta["code"].AsString();  // up to 5.6
    std::string message = meta["message"].AsString();
    if (message.empty()) message = meta["description"].AsString();
    if (code.empty()) code = "Neo.DatabaseError.General.UnknownError";
    return Status(CodeForNeo4j(code), code + ": " + message);
  }

  // After a FAILURE: RESET, then read every summary still owed (IGNORED for the requests
  // pipelined behind the failed one) up to RESET's SUCCESS. A failed RESET breaks the
  // connection. The server rolls back an open transaction.
  Status Recover() {
    in_tx = false;
    if (broken) return Status::Unavailable("neo4j " + Address() + ": connection is closed");
    Queue(kReset, {});
    KG_RETURN_IF_ERROR(Flush("reset"));
    while (pending > 0) {
      KG_ASSIGN_OR_RETURN(Struct m, Receive("reset"));
      if (pending == 0) {
        if (m.tag != kSuccess) {
          return Break("reset", Status::Unavailable("the server refused RESET: " + Debug(Value(Meta(m)))));
        }
      }
    }
    return Status::Ok();
  }

  // A failure summary `m` in reply to `what`: the error to return, after RESET (or after
  // closing the connection, for expired credentials).
  Status Failed(const std::string& what, const Struct& m) {
    if (m.tag == kFailure) {
      Status f = FailureStatus(m);
      if (ClosesConnection(Neo4jCode(Err(what, f)))) return Break(what, f);
    }
    Status s = m.tag == kFailure ? Err(what, FailureStatus(m))
                                 : Err(what, Status::Internal("request ignored (the connection was in a failed state)"));
    Status r = Recover();
    if (!r.ok()) spdlog::debug("{}", r.message());
    return s;
  }

  // Reads the one summary of a simple request (BEGIN, COMMIT, ROLLBACK, LOGON, ...).
  Result<Map> Summary1(const std::string& what) {
    KG_ASSIGN_OR_RETURN(Struct m, Receive(what));
    if (m.tag == kRecord) return Break(what, Status::Internal("a RECORD where a summary was expected"));
    if (m.tag != kSuccess) return Failed(what, m);
    return Meta(m);
  }

  Status Usable() const {
    if (broken) return Status::Unavailable("neo4j " + Address() + ": connection is closed");
    return Status::Ok();
  }

  // BEGIN's or an auto-commit RUN's extra: database, mode, and for reads the pool's bookmarks
  // (the server waits until it has applied them: causal consistency on a cluster).
  Map TxExtra(AccessMode mode) {
    Map extra;
    if (!e.database.empty()) extra.emplace_back("db", e.database);
    sent_bookmarks.clear();
    if (mode == AccessMode::kRead) {
      extra.emplace_back("mode", "r");
      if (bookmarks.source) sent_bookmarks = bookmarks.source();
      if (!sent_bookmarks.empty()) {
        List b;
        for (const std::string& x : sent_bookmarks) b.emplace_back(x);
        extra.emplace_back("bookmarks", std::move(b));
      }
    }
    return extra;
  }

  // RUN + PULL {n} pipelined; on success the RUN's SUCCESS metadata (fields, ...).
  Result<Map> Start(std::string_view cypher, const Map& params, AccessMode mode, int64_t n) {
    KG_RETURN_IF_ERROR(Usable());
    if (pending != 0) return Break("run", Status::Internal("a previous reply was not read (client bug)"));
    Queue(kRun, {Value(cypher), Value(params), Value(in_tx ? Map{} : TxExtra(mode))});
    Queue(kPull, {Value(Map{{"n", n}})});
    KG_RETURN_IF_ERROR(Flush("run"));
    KG_ASSIGN_OR_RETURN(Struct m, Receive("run"));
    if (m.tag == kRecord) return Break("run", Status::Internal("a RECORD before RUN's summary"));
    if (m.tag != kSuccess) return Failed("run", m);
    return Meta(m);
  }

  Status Open(const std::string& password) {
    // Handshake: magic, then four proposals [00][range][minor][major], best first.
    static const char kHandshake[] = {0x60, 0x60, static_cast<char>(0xB0), 0x17,  //
                                      0, 2, 8, 5,                                  // 5.8..5.6
                                      0, 4, 4, 5,                                  // 5.4..5.0
                                      0, 0, 4, 4,                                  // 4.4
                                      0, 0, 0, 0};
    Status s = t.WriteRaw(std::string_view(kHandshake, sizeof kHandshake));
    if (!s.ok()) return Break("handshake", s);
    std::string reply;
    s = t.ReadRaw(4, reply);
    if (!s.ok()) return Break("handshake", s);
    if (reply == "HTTP") {
      return Break("handshake", Status::Invalid("this port speaks HTTP, not Bolt (use the Bolt port, 7687 by default)"));
    }
    major = static_cast<uint8_t>(reply[3]);
    minor = static_cast<uint8_t>(reply[2]);
    if (major == 0) {
      return Break("handshake", Status::Invalid("no common Bolt version (offered 5.8-5.6, 5.4-5.0 and 4.4)"));
    }
    if (!(major == 5 && minor <= 8 && minor != 5) && !(major == 4 && minor == 4)) {
      return Break("handshake", Status::Invalid("the server chose Bolt " + std::to_string(major) + "." +
                                                std::to_string(minor) + ", which was not offered"));
    }

    Map hello{{"user_agent", kAgent}};
    if (AtLeast(5, 3)) {
      hello.emplace_back("bolt_agent", Map{{"product", kAgent}, {"platform", "Linux"}, {"language", "C++/20"}});
    }
    if (e.scheme == "neo4j") hello.emplace_back("routing", Map{{"address", HostPort(e.host, e.port)}});
    Map auth;
    if (e.user.empty()) {
      auth = {{"scheme", "none"}};
    } else {
      auth = {{"scheme", "basic"}, {"principal", e.user}, {"credentials", password}};
    }
    bool logon = AtLeast(5, 1);
    if (!logon) hello.insert(hello.end(), auth.begin(), auth.end());
    Queue(kHello, {Value(std::move(hello))});
    KG_RETURN_IF_ERROR(Flush("hello"));
    KG_ASSIGN_OR_RETURN(Struct h, Receive("hello"));
    std::string who = e.user.empty() ? "log in (auth scheme none)" : "log in as '" + e.user + "'";
    if (h.tag != kSuccess) return Break(logon ? "hello" : who, FailureStatus(h));
    agent = Value(Meta(h))["server"].AsString();
    if (logon) {
      Queue(kLogon, {Value(std::move(auth))});
      KG_RETURN_IF_ERROR(Flush(who));
      KG_ASSIGN_OR_RETURN(Struct l, Receive(who));
      if (l.tag != kSuccess) return Break(who, FailureStatus(l));
    }
    return Status::Ok();
  }
};

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Connection>> Connection::Open(const Neo4jEndpoint& e, const std::string& host, int port) {
  auto impl = std::make_unique<Impl>();
  impl->e = e;
  impl->e.password.clear();
  impl->host = host;
  impl->port = port;
  Status s = impl->t.Connect(host, port, e.connect_timeout_ms, e.io_timeout_ms);
  if (!s.ok()) {
    // The transport's messages already say which step failed ("connect: Connection refused").
    const std::string& m = s.message();
    return impl->Break("connect", m.rfind("connect: ", 0) == 0 ? Status(s.code(), m.substr(9)) : s);
  }
  KG_RETURN_IF_ERROR(impl->Open(e.password));
  return std::unique_ptr<Connection>(new Connection(std::move(impl)));
}

Connection::~Connection() {
  if (impl_->broken || !impl_->t.open()) return;
  // Best effort, and quickly: the server closes its side on GOODBYE and sends nothing back.
  impl_->t.set_io_timeout_ms(1000);
  impl_->Queue(kGoodbye, {});
  Status s = impl_->t.Flush();
  (void)s;
  impl_->t.Close();
}

int Connection::major() const { return impl_->major; }
int Connection::minor() const { return impl_->minor; }
const std::string& Connection::server_agent() const { return impl_->agent; }
std::string Connection::address() const { return impl_->Address(); }
bool Connection::in_transaction() const { return impl_->in_tx; }
bool Connection::broken() const { return impl_->broken; }
bool Connection::unsolicited_input() const { return impl_->pending == 0 && impl_->t.Readable(); }
bool Connection::timed_out() const { return impl_->t.timed_out(); }
void Connection::set_bookmark_hooks(BookmarkHooks hooks) { impl_->bookmarks = std::move(hooks); }
const std::vector<std::string>& Connection::sent_bookmarks() const { return impl_->sent_bookmarks; }
const std::string& Connection::last_bookmark() const { return impl_->last_bookmark; }

Result<QueryResult> Connection::Run(std::string_view cypher, const Map& params, AccessMode mode) {
  Impl& m = *impl_;
  KG_ASSIGN_OR_RETURN(Map head, m.Start(cypher, params, mode, -1));
  QueryResult out;
  const Value meta(std::move(head));  // named: a temporary would die before the loop body
  for (const Value& f : meta["fields"].AsList()) out.fields.push_back(f.AsString());
  for (;;) {
    KG_ASSIGN_OR_RETURN(Struct r, m.Receive("pull"));
    if (r.tag == kRecord) {
      out.records.push_back(r.fields.empty() ? List{} : r.fields[0].AsList());
      continue;
    }
    if (r.tag != kSuccess) return m.Failed("pull", r);
    out.summary.metadata = Impl::Meta(r);
    if (!m.in_tx) m.Bookmark(out.summary.metadata);
    return out;
  }
}

Result<Summary> Connection::RunEach(std::string_view cypher, const Map& params,
                                    const std::function<Status(const std::vector<std::string>&, const List&)>& each,
                                    AccessMode mode, int64_t batch) {
  Impl& m = *impl_;
  if (batch <= 0) batch = 1000;
  KG_ASSIGN_OR_RETURN(Map head, m.Start(cypher, params, mode, batch));
  std::vector<std::string> fields;
  const Value meta(std::move(head));
  for (const Value& f : meta["fields"].AsList()) fields.push_back(f.AsString());
  Status stop;  // the first non-OK Status of `each`
  for (;;) {
    KG_ASSIGN_OR_RETURN(Struct r, m.Receive("pull"));
    if (r.tag == kRecord) {
      // The rest of a batch already under way is read and dropped after a stop.
      if (stop.ok()) stop = each(fields, r.fields.empty() ? List{} : r.fields[0].AsList());
      continue;
    }
    if (r.tag != kSuccess) return m.Failed("pull", r);
    Summary summary{Impl::Meta(r)};
    if (!Value(summary.metadata)["has_more"].AsBool()) {
      if (!m.in_tx) m.Bookmark(summary.metadata);
      if (!stop.ok()) return stop;
      return summary;
    }
    m.Queue(stop.ok() ? kPull : kDiscard, {Value(Map{{"n", stop.ok() ? batch : int64_t{-1}}})});
    KG_RETURN_IF_ERROR(m.Flush(stop.ok() ? "pull" : "discard"));
  }
}

Status Connection::Begin(AccessMode mode) {
  Impl& m = *impl_;
  KG_RETURN_IF_ERROR(m.Usable());
  if (m.in_tx) return m.Err("begin", Status::Internal("a transaction is already open on this connection"));
  m.Queue(kBegin, {Value(m.TxExtra(mode))});
  KG_RETURN_IF_ERROR(m.Flush("begin"));
  KG_ASSIGN_OR_RETURN(Map meta, m.Summary1("begin"));
  m.in_tx = true;
  return Status::Ok();
}

Status Connection::Commit() {
  Impl& m = *impl_;
  KG_RETURN_IF_ERROR(m.Usable());
  if (!m.in_tx) return m.Err("commit", Status::Internal("no open transaction"));
  m.Queue(kCommit, {});
  KG_RETURN_IF_ERROR(m.Flush("commit"));
  m.in_tx = false;
  KG_ASSIGN_OR_RETURN(Map meta, m.Summary1("commit"));
  m.Bookmark(meta);
  return Status::Ok();
}

Status Connection::Rollback() {
  Impl& m = *impl_;
  KG_RETURN_IF_ERROR(m.Usable());
  if (!m.in_tx) return Status::Ok();
  m.Queue(kRollback, {});
  KG_RETURN_IF_ERROR(m.Flush("rollback"));
  m.in_tx = false;
  KG_ASSIGN_OR_RETURN(Map meta, m.Summary1("rollback"));
  return Status::Ok();
}

Status Connection::Reset() {
  Impl& m = *impl_;
  KG_RETURN_IF_ERROR(m.Usable());
  return m.Recover();
}

Result<Connection::RoutingTable> Connection::Route() {
  Impl& m = *impl_;
  KG_RETURN_IF_ERROR(m.Usable());
  if (!m.AtLeast(4, 4)) return m.Err("route", Status::Invalid("ROUTE needs Bolt 4.4 or later"));
  Map extra;
  if (!m.e.database.empty()) extra.emplace_back("db", m.e.database);
  Map context{{"address", HostPort(m.e.host, m.e.port)}};
  m.Queue(kRoute, {Value(std::move(context)), Value(List{}), Value(std::move(extra))});
  KG_RETURN_IF_ERROR(m.Flush("route"));
  KG_ASSIGN_OR_RETURN(Map meta, m.Summary1("route"));
  Value rt = Value(std::move(meta))["rt"];
  RoutingTable table;
  table.ttl_seconds = rt["ttl"].AsInt();
  table.database = rt["db"].AsString();
  const Value servers = rt["servers"];
  for (const Value& server : servers.AsList()) {
    const std::string& role = server["role"].AsString();
    auto* into = role == "WRITE" ? &table.writers : role == "READ" ? &table.readers : role == "ROUTE" ? &table.routers : nullptr;
    if (into == nullptr) continue;
    for (const Value& a : server["addresses"].AsList()) into->push_back(a.AsString());
  }
  if (table.routers.empty() && table.writers.empty() && table.readers.empty()) {
    return m.Err("route", Status::Internal("an empty routing table: " + Debug(rt).substr(0, 300)));
  }
  return table;
}

}  // namespace kg::bolt
