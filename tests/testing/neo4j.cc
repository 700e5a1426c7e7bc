#include "testing/neo4j.h"

#include <gtest/gtest.h>

#include "bolt/bolt.h"

namespace kg::testing {

void ClearNeo4j(const ServerProcess& server) {
  auto c = bolt::Connection::Open(Neo4jAt(server));
  ASSERT_TRUE(c.ok()) << c.status().message();
  // An auto-commit query: CALL ... IN TRANSACTIONS commits every 10,000 nodes, so a large graph
  // never needs one huge transaction (the test server's heap is small).
  auto r = (*c)->Run("MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto left = (*c)->Run("MATCH (n) RETURN count(n)", {}, bolt::AccessMode::kRead);
  ASSERT_TRUE(left.ok()) << left.status().message();
  ASSERT_EQ(left->records.at(0).at(0).AsInt(), 0) << "nodes left after clearing Neo4j";
}

}  // namespace kg::testing
