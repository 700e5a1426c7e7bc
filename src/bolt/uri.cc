// NEO4J_URI parsing, how logs name an endpoint, and the Neo4j code a Status carries.
#include <cctype>

#include "bolt/bolt.h"

namespace kg::bolt {

Status ParseUri(std::string_view uri, Neo4jEndpoint& into) {
  // The URI is never echoed whole in an error: it could carry a password (user:pass@host).
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos) return Status::Invalid("NEO4J_URI: expected bolt://HOST[:PORT] or neo4j://HOST[:PORT]");
  std::string scheme(uri.substr(0, sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "bolt+s" || scheme == "bolt+ssc" || scheme == "neo4j+s" || scheme == "neo4j+ssc") {
    return Status::Invalid("NEO4J_URI: scheme " + scheme +
                           ":// needs TLS, which kgflow's Bolt client does not speak; use bolt:// or neo4j:// "
                           "(on a trusted network or through a TLS tunnel)");
  }
  if (scheme != "bolt" && scheme != "neo4j") {
    return Status::Invalid("NEO4J_URI: unknown scheme '" + scheme + "' (expected bolt:// or neo4j://)");
  }
  std::string_view rest = uri.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('@') != std::string_view::npos) {
    return Status::Invalid("NEO4J_URI: credentials do not go in the URI; set NEO4J_USER and NEO4J_PASSWORD");
  }
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return Status::Invalid("NEO4J_URI: a path or query is not supported (expected SCHEME://HOST[:PORT]; the database "
                           "is set apart)");
  }
  std::string host;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return Status::Invalid("NEO4J_URI: an IPv6 address without its closing ']'");
    host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Status::Invalid("NEO4J_URI: expected ':PORT' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return Status::Invalid("NEO4J_URI: an empty port");
    }
  } else {
    size_t colon = rest.find(':');
    host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      if (rest.find(':', colon + 1) != std::string_view::npos) {
        return Status::Invalid("NEO4J_URI: an IPv6 address goes in brackets ([::1]:7687)");
      }
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return Status::Invalid("NEO4J_URI: an empty port");
    }
  }
  if (host.empty()) return Status::Invalid("NEO4J_URI: no host");
  int port = 7687;
  if (!port_text.empty()) {
    port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port > 65535) {
        return Status::Invalid("NEO4J_URI: port '" + std::string(port_text) + "' is not a number from 1 to 65535");
      }
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) {
      return Status::Invalid("NEO4J_URI: port '" + std::string(port_text) + "' is not a number from 1 to 65535");
    }
  }
  into.scheme = scheme;
  into.host = host;
  into.port = port;
  return Status::Ok();
}

std::string HostPort(std::string_view host, int port) {
  bool v6 = host.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

std::string Describe(const Neo4jEndpoint& e) { return e.scheme + "://" + HostPort(e.host, e.port); }

std::string Neo4jCode(const Status& s) {
  // The message reads "neo4j HOST:PORT: <what>: <code>: <message>"; the code is the first
  // ": Neo.<Class>.<Category>.<Title>" in it (what comes before is ours and holds none).
  const std::string& m = s.message();
  size_t from = 0;
  while ((from = m.find(": Neo.", from)) != std::string::npos) {
    size_t start = from + 2;
    size_t end = start;
    int dots = 0;
    while (end < m.size() && (std::isalnum(static_cast<unsigned char>(m[end])) || m[end] == '.')) {
      if (m[end] == '.') ++dots;
      ++end;
    }
    if (dots == 3 && (end == m.size() || m[end] == ':')) return m.substr(start, end - start);
    from = start;
  }
  return "";
}

}  // namespace kg::bolt
