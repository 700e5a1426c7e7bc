#pragma once
// What a handler of the HTTP server (http/server.h) sees and answers: a parsed request and
// a response that is either whole (a body string), written in pieces as it is produced, or a
// stream of server-sent events. The member names follow cpp-httplib's, which the routes used
// before this server existed.

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kg::http {

// One part of a multipart/form-data body.
struct FormPart {
  std::string name, filename, content_type, content;
};

struct Request {
  std::string method;       // as sent: "GET", "POST", ...
  std::string path;         // percent-decoded, without the query
  std::string remote_addr;  // the client's address, e.g. "127.0.0.1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::multimap<std::string, std::string> params;  // the query, decoded
  std::string body;                                // the whole body (routes that read it whole)
  std::map<std::string, FormPart> files;           // multipart/form-data parts by name
  std::vector<std::string> matches;                // [0] the path, [1..] the route pattern's groups

  // Header names compare case-insensitively; the first of repeated headers wins.
  bool has_header(std::string_view name) const;
  std::string get_header_value(std::string_view name) const;
  bool has_param(const std::string& name) const { return params.count(name) > 0; }
  std::string get_param_value(const std::string& name) const;
  bool is_multipart_form_data() const;
};

// Writes a piece of a streamed response; false once the client is gone or too slow (stop
// producing then). Called on the handler's thread; blocks while the connection is behind.
using PieceWriter = std::function<bool(std::string_view piece)>;
// Produces a streamed response through `write`; true when it ended the response, false when it
// failed part way (the response then ends without its final chunk: a truncated transfer).
using StreamProducer = std::function<bool(const PieceWriter& write)>;

// A live stream of server-sent events (text/event-stream). Thread-safe; Send never blocks.
class EventChannel {
 public:
  virtual ~EventChannel() = default;
  // Queues one event ("event: <event>\ndata: <data>\n\n", one data line per line of `data`).
  // False once the stream has ended (client gone, too far behind, or the server stopping).
  virtual bool Send(std::string_view event, std::string_view data) = 0;
  virtual bool open() const = 0;
  // Ends the stream: what was sent still goes out, then the end of the body, then the close.
  virtual void Close() = 0;
};
// Called once the stream's headers are out, on a handler thread; keep the channel to send.
using EventStreamStart = std::function<void(std::shared_ptr<EventChannel>)>;

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;
  StreamProducer producer;         // set: chunked response written in pieces
  EventStreamStart event_stream;   // set: text/event-stream
  bool close = false;              // close the connection after this response

  // Replaces a header of the same name (case-insensitive).
  void set_header(const std::string& name, const std::string& value);
  std::string get_header_value(std::string_view name) const;
  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
  void set_chunked_content_provider(std::string type, StreamProducer p) {
    content_type = std::move(type);
    producer = std::move(p);
  }
  void set_event_stream(EventStreamStart start) { event_stream = std::move(start); }
};

// Takes a request body piece by piece as it arrives (routes registered with a streaming
// body, http/server.h). Calls come one at a time, on handler threads, never concurrently.
class BodyConsumer {
 public:
  virtual ~BodyConsumer() = default;
  // The next piece. False: stop reading; `res` holds the answer (the rest of the body is
  // read and dropped).
  virtual bool Write(std::string_view piece, Response& res) = 0;
  // The body is complete: fill in the answer.
  virtual void Finish(Response& res) = 0;
};

// Case-insensitive ASCII comparison of header names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace kg::http
