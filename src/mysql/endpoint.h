#pragma once
// Where a MySQL/MariaDB database is: a plain value, no client library, so that the configuration
// and the backends' headers can name it without pulling Connector/C in.
#include <string>

namespace kg {

// `database` is created when missing (with utf8mb4 and utf8mb4_bin as its defaults; tables may
// state their own collation).
struct MysqlEndpoint {
  std::string host;
  int port = 3306;
  std::string user;
  std::string password;
  std::string database;
  int pool_size = 4;
  int connect_timeout_ms = 3000;
  int io_timeout_s = 30;
};

}  // namespace kg
