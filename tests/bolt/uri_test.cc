// NEO4J_URI parsing and how an endpoint is named in logs (pure units).
#include <gtest/gtest.h>

#include "bolt/bolt.h"
#include "bolt/codes.h"

namespace kg::bolt {
namespace {

// Verifies bolt:// and neo4j:// with and without a port, IPv6 in brackets, and Describe.
TEST(ParseUri, AcceptsBoltAndNeo4j) {
  Neo4jEndpoint e;
  ASSERT_TRUE(ParseUri("bolt://db.example:7999", e).ok());
  EXPECT_EQ(e.scheme, "bolt");
  EXPECT_EQ(e.host, "db.example");
  EXPECT_EQ(e.port, 7999);
  EXPECT_EQ(Describe(e), "bolt://db.example:7999");
  ASSERT_TRUE(ParseUri("neo4j://10.0.0.5", e).ok());
  EXPECT_EQ(e.scheme, "neo4j");
  EXPECT_EQ(e.host, "10.0.0.5");
  EXPECT_EQ(e.port, 7687);
  ASSERT_TRUE(ParseUri("NEO4J://[::1]:7700/", e).ok());
  EXPECT_EQ(e.scheme, "neo4j");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 7700);
  EXPECT_EQ(Describe(e), "neo4j://[::1]:7700");
  ASSERT_TRUE(ParseUri("bolt://[fe80::2]", e).ok());
  EXPECT_EQ(e.port, 7687);
}

// Verifies TLS schemes, bad ports, credentials, paths and garbage are refused with
// kInvalidArgument, and a password in the URI never appears in the message.
TEST(ParseUri, RefusesClearly) {
  Neo4jEndpoint e;
  e.host = "unchanged";
  for (const char* tls : {"bolt+s://h", "bolt+ssc://h:1", "neo4j+s://h", "neo4j+ssc://h"}) {
    Status s = ParseUri(tls, e);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << tls;
    EXPECT_NE(s.message().find("TLS"), std::string::npos) << s.message();
  }
  for (const char* bad : {"", "localhost:7687", "http://h:7474", "bolt://", "bolt://:7687", "bolt://h:", "bolt://h:0",
                          "bolt://h:65536", "bolt://h:12x", "bolt://::1:7687", "bolt://[::1", "bolt://[::1]x",
                          "bolt://h:7687/db", "neo4j://h?policy=x"}) {
    Status s = ParseUri(bad, e);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(s.message().rfind("NEO4J_URI: ", 0), 0u) << s.message();
  }
  Status s = ParseUri("bolt://neo4j:Sup3rSecret@h:7687", e);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message().find("Sup3rSecret"), std::string::npos) << s.message();
  for (const char* with_credentials : {"bolt://neo4j:Sup3rSecret@h:7687", "neo4j://Sup3rSecret@h", "bolt://u:Sup3rSecret@[::1]"}) {
    s = ParseUri(with_credentials, e);
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find("NEO4J_USER and NEO4J_PASSWORD"), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find("Sup3rSecret"), std::string::npos) << s.message();
  }
  EXPECT_EQ(e.host, "unchanged");  // a refused URI changes nothing
}

// Verifies Neo4jCode finds the code of a FAILURE-made message, and nothing in others.
TEST(Neo4jCode, ReadsTheCode) {
  EXPECT_EQ(Neo4jCode(Status::Unavailable("neo4j 127.0.0.1:7687: run: Neo.TransientError.Transaction.DeadlockDetected: "
                                          "ForsetiClient[1] can't acquire ...: Neo.X.Y.Z: no")),
            "Neo.TransientError.Transaction.DeadlockDetected");
  EXPECT_EQ(Neo4jCode(Status::Unavailable("neo4j 127.0.0.1:7687: read: timed out after 300 ms")), "");
  EXPECT_EQ(Neo4jCode(Status::Ok()), "");
}

// Verifies how a server is named in the routing context (HELLO, ROUTE) and the pool: an IPv6
// literal keeps its brackets, so that the port stays separable.
TEST(HostPort, BracketsIpv6) {
  EXPECT_EQ(HostPort("db.example", 7687), "db.example:7687");
  EXPECT_EQ(HostPort("10.0.0.5", 7999), "10.0.0.5:7999");
  EXPECT_EQ(HostPort("::1", 7700), "[::1]:7700");
  EXPECT_EQ(HostPort("fe80::2", 7687), "[fe80::2]:7687");
}

// Verifies the Neo4j code mapping (bolt.h): expired credentials are retryable on a fresh
// connection (kUnavailable, and the connection is closed), other security errors are
// configuration errors.
TEST(Neo4jCodes, Mapping) {
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Security.AuthorizationExpired"), Code::kUnavailable);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Security.TokenExpired"), Code::kUnavailable);
  EXPECT_TRUE(ClosesConnection("Neo.ClientError.Security.AuthorizationExpired"));
  EXPECT_TRUE(ClosesConnection("Neo.ClientError.Security.TokenExpired"));
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Security.Unauthorized"), Code::kInvalidArgument);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Security.Forbidden"), Code::kInvalidArgument);
  EXPECT_FALSE(ClosesConnection("Neo.ClientError.Security.Unauthorized"));
  EXPECT_FALSE(ClosesConnection("Neo.TransientError.Transaction.DeadlockDetected"));
  EXPECT_EQ(CodeForNeo4j("Neo.TransientError.Transaction.DeadlockDetected"), Code::kUnavailable);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Cluster.NotALeader"), Code::kUnavailable);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.General.ForbiddenOnReadOnlyDatabase"), Code::kUnavailable);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Database.DatabaseNotFound"), Code::kInvalidArgument);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Schema.ConstraintValidationFailed"), Code::kConflict);
  EXPECT_EQ(CodeForNeo4j("Neo.ClientError.Statement.SyntaxError"), Code::kInternal);
}

}  // namespace
}  // namespace kg::bolt
