#pragma once
// SQL the SQLite and MySQL task stores share (the same ledger table in both).

#include <cstddef>
#include <string>

namespace kg::store_sql {

// How many chunk ids one statement binds: a short IN list per round trip, far below either
// backend's limit on placeholders.
inline constexpr size_t kIdsPerStatement = 500;

// The ledger rows of one task's chunks among `n` ids: binds the task id, then the n chunk ids.
inline std::string ChunkUsageOfSql(size_t n) {
  std::string sql =
      "SELECT chunk_id,prompt_tokens,completion_tokens,requests,cached_chunks,cost FROM llm_usage "
      "WHERE task_id=? AND chunk_id IN (?";
  for (size_t i = 1; i < n; ++i) sql += ",?";
  return sql + ")";
}

}  // namespace kg::store_sql
