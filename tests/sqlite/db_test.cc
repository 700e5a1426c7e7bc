// The SQLite layer turns every failure into a Status: a prepare error fails one call, it
// never aborts the process (the API, the guard and the workers share it).
#include "sqlite/db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/task_store.h"
#include "testing/testing.h"

namespace kg {
namespace {

// Verifies a prepare error is returned as a Status (kInternal, with the SQL and SQLite's reason), not an abort.
TEST(SqliteDb, PrepareErrorIsAValue) {
  testing::TempDir dir;
  auto db = sqlite::Db::Open(dir.File("x.db"));
  ASSERT_TRUE(db.ok()) << db.status().message();
  auto st = (*db)->Prepare("SELECT nope FROM missing_table");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kInternal);
  EXPECT_NE(st.status().message().find("no such table"), std::string::npos) << st.status().message();
  // The connection still works afterwards.
  auto ok = (*db)->Prepare("SELECT 1");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE((*ok)->Step());
}

// Verifies the SQLite result codes worth retrying map to kUnavailable (what RetryTransient retries), extended
// codes included, and the rest to kInternal.
TEST(SqliteDb, TransientCodesAreUnavailable) {
  for (int rc : {SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_NOMEM, SQLITE_FULL, SQLITE_BUSY_SNAPSHOT,
                 SQLITE_IOERR_READ, SQLITE_LOCKED_SHAREDCACHE}) {
    EXPECT_EQ(sqlite::CodeFor(rc), Code::kUnavailable) << rc;
  }
  for (int rc : {SQLITE_ERROR, SQLITE_CORRUPT, SQLITE_CONSTRAINT, SQLITE_MISUSE, SQLITE_NOTADB}) {
    EXPECT_EQ(sqlite::CodeFor(rc), Code::kInternal) << rc;
  }
}

// Verifies the schema migration: a column is added once to an existing table that lacks it, and a
// missing table is left for the schema to create.
TEST(SqliteDb, AddColumnIfMissing) {
  testing::TempDir dir;
  auto db = sqlite::Db::Open(dir.File("x.db"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->AddColumnIfMissing("t", "g", "INTEGER NOT NULL DEFAULT 0").ok()) << "no table: nothing to do";
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t(a TEXT); INSERT INTO t(a) VALUES('old row')").ok());
  ASSERT_TRUE((*db)->AddColumnIfMissing("t", "g", "INTEGER NOT NULL DEFAULT 7").ok());
  ASSERT_TRUE((*db)->AddColumnIfMissing("t", "g", "INTEGER NOT NULL DEFAULT 7").ok()) << "twice is fine";
  auto q = (*db)->Prepare("SELECT a, g FROM t");
  ASSERT_TRUE(q.ok()) << q.status().message();
  ASSERT_TRUE((*q)->Step());
  EXPECT_EQ((*q)->Text(0), "old row");
  EXPECT_EQ((*q)->Int(1), 7);
}

// Verifies a store whose table vanished (a damaged or foreign database) fails the one call
// with a clear error and keeps working for calls that can succeed.
TEST(SqliteDb, StoreSurvivesAMissingTable) {
  testing::TempDir dir;
  auto store = OpenSqliteTaskStore(dir.File("tasks.db"));
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE((*store)->PutSetting("k", "v").ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("tasks.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "DROP TABLE tasks", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  auto t = (*store)->Get("t1");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tasks"), std::string::npos) << t.status().message();
  auto l = (*store)->List("", 10);
  EXPECT_FALSE(l.ok());
  auto v = (*store)->GetSetting("k");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->value_or(""), "v");
}

}  // namespace
}  // namespace kg
