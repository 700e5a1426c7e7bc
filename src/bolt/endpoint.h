#pragma once
// Where a Neo4j server is and how to log in: a plain struct, so the configuration can fill
// it without linking the Bolt client.
#include <string>

namespace kg {

struct Neo4jEndpoint {
  // "bolt": this one server, directly. "neo4j": routing: the server given is asked for the
  // routing table (the ROUTE message) and writes go to the writer it names.
  std::string scheme = "bolt";
  std::string host = "127.0.0.1";
  int port = 7687;
  std::string user;      // empty: the "none" auth scheme
  std::string password;  // secret: never logged, never in a message
  std::string database;  // empty: the server's default database
  int pool_size = 4;     // hard cap on open connections per process (KG_NEO4J_POOL_SIZE)
  int connect_timeout_ms = 5000;
  int io_timeout_ms = 30000;    // one read or write on an open connection
  int borrow_timeout_ms = 30000;  // how long Borrow waits for a free connection at the cap
};

}  // namespace kg
