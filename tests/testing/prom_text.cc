#include "testing/prom_text.h"

#include <cctype>
#include <cstdlib>
#include <sstream>

namespace kg::testing {



// Parses one sample line strictly per the text format 0.0.4; false on anything else.
bool ParseSample(const std::string& line, Sample* out) {
  size_t i = 0;
  auto name_char = [](char c, bool first) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
           (!first && std::isdigit(static_cast<unsigned char>(c)));
  };
  auto name = [&](std::string* n) {
    size_t start = i;
    while (i < line.size() && name_char(line[i], i == start)) ++i;
    *n = line.substr(start, i - start);
    return !n->empty();
  };
  if (!name(&out->name)) return false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      std::string key, value;
      if (!name(&key) || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return false;
      i += 2;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size()) return false;
          char e = line[i + 1];
          if (e == '\\') value += '\\';
          else if (e == '"') value += '"';
          else if (e == 'n') value += '\n';
          else return false;
          i += 2;
        } else {
          value += line[i++];
        }
      }
      if (i >= line.size()) return false;
      ++i;  // closing quote
      out->labels[key] = value;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // closing brace
  }
  if (i >= line.size() || line[i] != ' ') return false;
  std::string v = line.substr(i + 1);
  char* end = nullptr;
  out->value = std::strtod(v.c_str(), &end);
  return !v.empty() && end && *end == '\0';
}

// Every line of a /metrics page: comments must be HELP or TYPE, samples must parse.
std::vector<Sample> ParseMetrics(const std::string& page, std::string* error) {
  std::vector<Sample> out;
  size_t pos = 0;
  while (pos < page.size()) {
    size_t nl = page.find('\n', pos);
    if (nl == std::string::npos) {
      *error = "page does not end with a newline";
      return out;
    }
    std::string line = page.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    Sample s;
    if (!ParseSample(line, &s)) {
      *error = "not a sample line: [" + line + "]";
      return out;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::map<std::string, Family> Families(const std::string& page, std::string* error) {
  std::map<std::string, Family> out;
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    for (const char* kind : {"# HELP ", "# TYPE "}) {
      if (line.rfind(kind, 0) != 0) continue;
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      std::string text = rest.find(' ') == std::string::npos ? "" : rest.substr(rest.find(' ') + 1);
      std::string& field = kind[2] == 'H' ? out[name].help : out[name].type;
      if (!field.empty()) *error = "declared twice: " + line;
      field = text;
    }
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    if (!ParseSample(line, &s)) continue;  // ParseMetrics reports it
    std::string family = s.name;
    if (!out.count(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        std::string sf = suffix;
        if (family.size() > sf.size() && family.compare(family.size() - sf.size(), sf.size(), sf) == 0 &&
            out.count(family.substr(0, family.size() - sf.size()))) {
          family = family.substr(0, family.size() - sf.size());
        }
      }
    }
    auto it = out.find(family);
    if (it == out.end() || it->second.help.empty() || it->second.type.empty()) {
      *error = "sample before its family's HELP and TYPE: " + line;
    }
  }
  return out;
}

std::optional<double> Value(const std::vector<Sample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels) {
  std::optional<double> found;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (!match) continue;
    if (found) return std::nullopt;
    found = s.value;
  }
  return found;
}

}  // namespace kg::testing
