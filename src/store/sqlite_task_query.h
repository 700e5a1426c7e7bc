#pragma once
// The SQL of the embedded task store's ListFiltered, apart so a test can ask SQLite how it runs
// it (EXPLAIN QUERY PLAN) without copying it.

#include <string>
#include <vector>

#include "store/task_store.h"

namespace kg {

struct SqliteTaskListQuery {
  // The page: `args` bound to ?1..?n, then the limit (?n+1) and the offset (?n+2).
  std::string page_sql;
  // How many rows match: `args` bound to ?1..?n.
  std::string count_sql;
  std::vector<std::string> args;
};

// Only the filters `f` sets are in the WHERE (a `(?='' OR status=?)` test would keep SQLite from
// using the status index); every value is bound, never spliced.
SqliteTaskListQuery BuildSqliteTaskListQuery(const TaskFilter& f);

}  // namespace kg
