#pragma once
// How a Neo4j status code maps to ours (bolt.h lists the mapping), and which codes close the
// connection. Internal to kg_bolt; a header of its own so that the mapping is unit-tested.
#include <string_view>

#include "common/status.h"

namespace kg::bolt {

Code CodeForNeo4j(std::string_view neo4j_code);
// True for a FAILURE after which the connection is closed instead of RESET: expired
// credentials (Neo.ClientError.Security.AuthorizationExpired, .TokenExpired), retried on a
// fresh connection that logs in again.
bool ClosesConnection(std::string_view neo4j_code);

}  // namespace kg::bolt
