#include "http/message.h"

#include <cctype>

#include "http/parse.h"

namespace kg::http {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

bool Request::has_header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return true;
  }
  return false;
}

std::string Request::get_header_value(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

std::string Request::get_param_value(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? "" : it->second;
}

bool Request::is_multipart_form_data() const {
  std::string t = get_header_value("Content-Type");
  return t.size() >= 19 && EqualsIgnoreCase(std::string_view(t).substr(0, 19), "multipart/form-data");
}

void Response::set_header(const std::string& name, const std::string& value) {
  for (auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) {
      v = value;
      return;
    }
  }
  headers.emplace_back(name, value);
}

std::string Response::get_header_value(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = HexDigit(s[i + 1]), lo = HexDigit(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Status ParseTarget(std::string_view target, Request* req) {
  // The absolute form (RFC 9112 3.2.2: "http://host:port/path?q") stands for its path.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() > scheme.size() && EqualsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  if (target.empty() || target.front() != '/') return Status::Invalid("request target must be a path");
  size_t q = target.find('?');
  auto path = PercentDecode(target.substr(0, q), false);
  if (!path) return Status::Invalid("malformed percent escape in the path");
  req->path = std::move(*path);
  if (q == std::string_view::npos) return Status::Ok();
  std::string_view query = target.substr(q + 1);
  size_t hash = query.find('#');
  if (hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq), true);
    auto value = PercentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value) return Status::Invalid("malformed percent escape in the query");
    req->params.emplace(std::move(*key), std::move(*value));
  }
  return Status::Ok();
}

std::string HeaderParam(std::string_view value, std::string_view name) {
  size_t pos = value.find(';');
  while (pos != std::string_view::npos) {
    std::string_view rest = value.substr(pos + 1);
    size_t next = rest.find(';');
    std::string_view item = Trim(rest.substr(0, next));
    size_t eq = item.find('=');
    if (eq != std::string_view::npos && EqualsIgnoreCase(Trim(item.substr(0, eq)), name)) {
      std::string_view v = Trim(item.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
    pos = next == std::string_view::npos ? next : pos + 1 + next;
  }
  return "";
}

Status ParseMultipart(std::string_view body, std::string_view boundary, std::map<std::string, FormPart>* parts) {
  if (boundary.empty() || boundary.size() > 200) return Status::Invalid("multipart body without a valid boundary");
  const std::string delim = "--" + std::string(boundary);
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return Status::Invalid("multipart body without its boundary");
  pos += delim.size();
  const std::string next_delim = "\r\n" + delim;
  while (true) {
    if (body.substr(pos, 2) == "--") return Status::Ok();  // the closing delimiter
    // The rest of the delimiter line (transport padding), then the part's headers.
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string_view::npos) return Status::Invalid("multipart body ends inside a delimiter line");
    size_t headers_end = body.find("\r\n\r\n", eol);
    FormPart part;
    std::string_view head;
    size_t content_begin;
    if (body.substr(eol, 4) == "\r\n\r\n") {  // a part without headers
      content_begin = eol + 4;
    } else {
      if (headers_end == std::string_view::npos) return Status::Invalid("multipart part without the end of its headers");
      head = body.substr(eol + 2, headers_end - eol - 2);
      content_begin = headers_end + 4;
    }
    while (!head.empty()) {
      size_t nl = head.find("\r\n");
      std::string_view line = head.substr(0, nl);
      head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = Trim(line.substr(0, colon)), value = Trim(line.substr(colon + 1));
      if (EqualsIgnoreCase(name, "Content-Type")) {
        part.content_type = std::string(value);
      } else if (EqualsIgnoreCase(name, "Content-Disposition")) {
        part.name = HeaderParam(value, "name");
        part.filename = HeaderParam(value, "filename");
      }
    }
    size_t end = body.find(next_delim, content_begin);
    if (end == std::string_view::npos) return Status::Invalid("multipart body ends inside a part");
    part.content = std::string(body.substr(content_begin, end - content_begin));
    std::string key = part.name;
    parts->emplace(std::move(key), std::move(part));
    pos = end + next_delim.size();
  }
}

}  // namespace kg::http
