#pragma once
// Client commands: they talk to a running node over its HTTP API.
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace kg {

struct ClientOptions {
  std::string url;    // http://host:port (default from KG_HTTP_ADDR)
  std::string token;  // KG_API_TOKEN
  bool json = false;  // read commands print the API's JSON body as is (--json)
};

// Checks a --url value: http://HOST[:PORT], or HOST[:PORT] taken as http (https is refused: the
// client speaks plain HTTP only, http/client.h). A path
// after it is stripped (the API's paths are fixed) and `note` says so; anything else is
// kInvalidArgument saying what is accepted. On success `url` holds SCHEME://HOST[:PORT].
Status NormalizeUrl(std::string* url, std::string* note);

struct SubmitOptions {
  std::string provider, title;
  std::string format;  // text|markdown|html; "" = by file extension (.md .markdown .html .htm)
  bool wait = false, recursive = false;
  bool batch = false;     // every document in one POST /api/v1/tasks/batch: all or none
  int64_t max_bytes = 0;  // the node's body limit (KG_MAX_BODY_MB)
  int reconnect_seconds = 60;  // --wait: how long a lost node is waited for (--reconnect-timeout)
  int64_t token_budget = 0;  // LLM tokens each task may spend (--token-budget); 0 = no limit, not sent
};

// Checks every argument first (exists, readable, a regular file or with `recursive` a
// directory's files, at most `max_bytes` as sent, text by CheckText) and submits nothing
// if one fails, naming each and why: exit 2 for a directory without `recursive`, else 1.
// Inside a directory, files that fail are skipped with a line on stderr. A file is checked
// by reading it (pread, one file at a time, at most `max_bytes`) and sent as a text body
// streamed from disk; a file that changed since its check (size or mtime) is refused with
// exit 1, "FILE changed while being sent", never sent cut. With `wait`, follows each
// task to its end, reconnecting with backoff (up to reconnect_seconds) when the node goes away.
// With `batch`, the documents go in one NDJSON request (each file read whole, as checked),
// which the node takes all or none; more than it takes per request (documents, or
// `max_bytes` once JSON-escaped) is exit 1 before anything is sent.
int CmdSubmit(const ClientOptions& o, const std::vector<std::string>& files, const SubmitOptions& so);

// What `submit` checked of a file (fstat): a file whose stamp differs when it is sent
// changed in between, and is refused rather than sent cut or mixed.
struct FileStamp {
  int64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t dev = 0, ino = 0;
  bool operator==(const FileStamp&) const = default;
};
// The stamp of the file open on `fd`; kInvalidArgument "cannot read PATH: ..." when fstat fails.
Result<FileStamp> StampOf(int fd, const std::string& path);
// Reads up to `length` bytes at `offset` of `path`, open on `fd`, for sending it as it was
// checked (`checked`): pread retried on EINTR, then the file stamped again. Returns the
// bytes read (more than 0 while offset < checked.size). kInvalidArgument "PATH changed while
// being sent" when its size, mtime or identity differ from `checked` or it ends early;
// kUnavailable "cannot read PATH: ..." on a read error.
Result<size_t> ReadAsChecked(int fd, const std::string& path, const FileStamp& checked, size_t offset, char* buf,
                             size_t length);
int CmdTasks(const ClientOptions& o, const std::string& id, const std::string& status, int limit);
int CmdWorkers(const ClientOptions& o);
// Sets the processes per node of `provider`, prints the target and the cap that binds, then
// waits up to `timeout_seconds` for the answering node to run the target (exit 1 if not).
int CmdScale(const ClientOptions& o, const std::string& provider, int n, int timeout_seconds);
// Removes the runtime override of `provider` (DELETE .../processes).
int CmdScaleReset(const ClientOptions& o, const std::string& provider);
int CmdGraphStats(const ClientOptions& o);
int CmdGraphSearch(const ClientOptions& o, const std::string& q, int limit);
// GET /api/v1/graph/entities/{key} (the key URL-encoded): the entity, its neighbours, provenance.
int CmdGraphEntity(const ClientOptions& o, const std::string& key);
// POST /api/v1/tasks/{id}/cancel and /retry.
int CmdCancel(const ClientOptions& o, const std::string& id);
int CmdRetry(const ClientOptions& o, const std::string& id);
int CmdGraphExport(const ClientOptions& o, const std::string& format);

}  // namespace kg
