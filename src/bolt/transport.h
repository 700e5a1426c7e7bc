#pragma once
// The Bolt transport under a Connection: one TCP socket (non-blocking, TCP_NODELAY) with a
// deadline on connect and on every read or write, and the chunked message framing
// ([u16 size][bytes]... 00 00; at most 65,535 bytes a chunk; empty NOOP chunks between
// messages skipped). Internal to kg_bolt. Not thread-safe: one Connection owns one.
//
// Every failure is kUnavailable with a message naming what failed ("connect: connection
// refused", "read: timed out after 30000 ms", "read: connection closed by the server"); the
// caller prefixes the server's address.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kg::bolt {

class Transport {
 public:
  Transport() = default;
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Resolves `host` (a name or an IPv4/IPv6 literal) and connects within `connect_timeout_ms`.
  Status Connect(const std::string& host, int port, int connect_timeout_ms, int io_timeout_ms);
  void Close();
  bool open() const { return fd_ >= 0; }

  // Raw bytes (the handshake).
  Status WriteRaw(std::string_view bytes);
  Status ReadRaw(size_t n, std::string& out);

  // Appends one message (a packed struct) to the output buffer, split into chunks; Flush
  // writes everything buffered (several messages pipelined in one write).
  void QueueMessage(std::string_view message);
  Status Flush();
  // Reads one whole message (its chunks joined), skipping NOOP chunks before it.
  Status ReadMessage(std::string& message);

  void set_io_timeout_ms(int ms) { io_timeout_ms_ = ms; }
  // True once a read or write on the open connection waited past the I/O timeout.
  bool timed_out() const { return timed_out_; }
  // Without waiting: true when bytes are buffered or the socket is readable (data, EOF or an
  // error). On an idle connection that means the server spoke or hung up unasked.
  bool Readable() const;

 private:
  // Reads at least one byte more into in_ (waiting up to the I/O timeout).
  Status Fill();
  Status Need(size_t n);

  int fd_ = -1;
  int io_timeout_ms_ = 30000;
  bool timed_out_ = false;
  std::string out_;
  std::string in_;
  size_t in_pos_ = 0;
};

}  // namespace kg::bolt
