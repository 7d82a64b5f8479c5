// The records the comparator's benchmarks feed it (comparator_throughput
// through the broker, pair_state_bench without one), so both measure the
// same work: a typical read of five columns, one statement of three kinds.
#pragma once

#include "shadowpipe/wire.hpp"

#include <cstdint>

namespace shadowpipe::bench {

inline constexpr const char* kComparatorSql[] = {
    "select id, name, price, stock, updated_at from items where id = $1",
    "select id, customer, total, status, created_at from orders where customer = $1 order by id",
    "update items set stock = stock - 1 where id = $1"};

// The result of pair i; `differ` changes one column's values (the bench's
// one pair in a hundred). Like the recorder's (digest_result), every column
// has its three digests: of its values, of their sequence in row order, and
// of its canonical values.
inline wire::StatementResult comparator_result(int64_t i, bool differ) {
  wire::StatementResult result;
  result.rows = 1 + i % 5;
  result.columns = {{"id", 20}, {"name", 25}, {"price", 1700}, {"stock", 23}, {"updated_at", 1184}};
  result.ordered = 0x1000 + static_cast<uint64_t>(i);
  result.unordered = 0x2000 + static_cast<uint64_t>(i) + (differ ? 1 : 0);
  const uint64_t changed = differ ? 1 : 0;
  result.column_digests = {1, 2, 3 + changed, 4, 5};
  result.column_ordered = {11, 12, 13 + changed, 14, 15};
  result.column_values = {21, 22, 23 + changed, 24, 25};
  result.latency_us = 300 + i % 700;
  return result;
}

}  // namespace shadowpipe::bench
