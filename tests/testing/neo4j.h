#pragma once
// The shared Neo4j's one database, emptied for a test that uses it (tests registered with
// kg_test(... NEO4J), which never run at the same time).
#include "testing/servers.h"

namespace kg::testing {

// Deletes every node and relationship of `server`'s database, in batches (schema rules stay).
// Fails the calling test when it cannot.
void ClearNeo4j(const ServerProcess& server);

}  // namespace kg::testing
