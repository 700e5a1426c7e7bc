#pragma once
// How the distributed graph stores (MySQL, Neo4j) identify rows: internal to src/graph.
#include <string>
#include <string_view>

namespace kg::graph_keys {

// The text a relation's identity hash is taken of: (src, dst, type) length-prefixed, so no
// relation can be spelled two ways ("a:b" + "c" vs "a" + "b:c").
inline std::string RelationIdentity(std::string_view src, std::string_view dst, std::string_view type) {
  std::string s;
  for (std::string_view part : {src, dst, type}) {
    s += std::to_string(part.size());
    s += ':';
    s += part;
  }
  return s;
}

// The key's name part, as FindByName and SearchEntities see it: after the first ':'.
inline std::string_view NamePart(std::string_view key) {
  size_t colon = key.find(':');
  return colon == std::string_view::npos ? key : key.substr(colon + 1);
}

}  // namespace kg::graph_keys
