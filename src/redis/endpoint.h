#pragma once
// Where a Redis server is and how to talk to it: a plain value, no hiredis, so that the
// configuration and the queue's header can name it without pulling the client in.
#include <string>

namespace kg {

struct RedisEndpoint {
  std::string host;
  int port = 6379;
  std::string password;  // never logged, never put in a Status message
  int db = 0;
  std::string ns = "kg";  // key namespace: every key starts with "<ns>:"
  int connect_timeout_ms = 2000;
  // Bound on every command's round trip (SO_RCVTIMEO/SO_SNDTIMEO), re-applied after every
  // reconnect (hiredis's redisReconnect drops it). A call never hangs longer than this.
  int socket_timeout_ms = 5000;
};

}  // namespace kg
