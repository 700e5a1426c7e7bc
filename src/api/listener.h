#pragma once
// Fix-ups of the listening socket around Debian's cpp-httplib 0.11 (backlog, SO_REUSEPORT,
// close-on-exec, a body without a declared length). All of it lives here so that replacing the HTTP library removes one file.

#include <httplib.h>

#include <string>

#include "common/status.h"

namespace kg::api {

// Call before binding: SO_REUSEADDR without SO_REUSEPORT, close-on-exec from creation, and
// a request without Content-Length or Transfer-Encoding read as an empty body. Takes the
// server's pre-routing handler.
void ConfigureListener(httplib::Server& svr);

// Binds host:port (port 0 picks a free port), raises the listen backlog, returns the port.
// Fails with kUnavailable when the address cannot be bound.
Result<int> BindListener(httplib::Server& svr, const std::string& host, int port);

}  // namespace kg::api
