#pragma once
// The graph benches' data: the batches of CHUNKS builtin-provider chunks, planned, extracted
// and built the way a worker does it.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "graph/graph_store.h"
#include "pipeline/document.h"
#include "provider/provider.h"

namespace kg::bench {

// A ~600-byte paragraph: names unique to `i` and names every paragraph shares, so batches
// both add entities and meet existing ones, as in a real corpus.
inline std::string Paragraph(int i) {
  static const char* kFirst[] = {"Mara", "Tomas", "Ingrid", "Amara", "Lena", "Oskar", "Ravi", "Nadia"};
  static const char* kOrg[] = {"Dynamics", "Robotics", "Capital", "Labs", "Industries", "Group", "Bank", "Institute"};
  std::string n = std::to_string(i);
  std::string person = std::string(kFirst[i % 8]) + " Voss" + n;
  std::string org = "Helix" + n + " " + kOrg[i % 8];
  return person + " founded " + org + " in 2014. " + org + " is headquartered in Port Avalon. " + person +
         " is the chief executive of " + org + ". " + kFirst[(i + 3) % 8] + " Lindqvist works for Orbital " +
         kOrg[(i + 5) % 8] + ". Engineers from both firms met every week to review gripper designs, sensor "
         "layouts and the safety cases for each new site.\n\n";
}

inline std::vector<GraphBatch> BuildBatches(int chunks) {
  std::vector<GraphBatch> out;
  for (int d = 0; static_cast<int>(out.size()) < chunks; ++d) {
    std::string text;
    for (int p = 0; p < 4; ++p) text += Paragraph(d * 4 + p);
    TaskPlan plan = PlanTask("t" + std::to_string(d), "builtin", "", "Doc " + std::to_string(d), "bench.txt", text,
                             ChunkOptions{600, 100});
    for (const ChunkItem& item : plan.items) {
      auto payload = DecodePayload(item.payload);
      if (!payload.ok()) {
        std::fprintf(stderr, "payload: %s\n", payload.status().message().c_str());
        std::exit(1);
      }
      GraphBatch b = BuildBatch(*payload, BuiltinExtract(payload->text));
      b.chunk.generation = 1;
      out.push_back(std::move(b));
      if (static_cast<int>(out.size()) == chunks) break;
    }
  }
  return out;
}

}  // namespace kg::bench
