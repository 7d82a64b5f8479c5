// Classification of one joined request: pure functions over what each side
// observed, so every discrepancy rule is unit-testable without Kafka.
#pragma once

#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::comparator {

// One side's outcome of one statement, without its SQL text (the normalized
// SQL lives once per fingerprint, see FingerprintStats).
struct SideStatement {
  std::string fingerprint;
  wire::StatementResult result;
};

// What the statement analysis says about how to compare a fingerprint
// (docs/COMPARISON.md). The shadow's catalog adds to it per result
// (StatementResult::volatile_columns, volatile_statement, order_total).
struct StatementTraits {
  bool top_level_order_by = false;  // row order is part of the answer, as far as the sort keys decide it
  bool calls_volatile = false;      // a volatile call decides which rows come back: errors and row counts only
  std::vector<statement::SortKey> sort_keys = {};
  bool limited = false;             // LIMIT / FETCH / OFFSET: which rows is unspecified without a total order
  bool distinct_on = false;         // DISTINCT ON: which row of a group is unspecified without a total order
  bool order_total_by_grouping = false;
  std::vector<statement::OutputExpression> volatile_outputs = {};  // select-list entries calling volatile functions
};

// The traits of an analyzed statement.
StatementTraits traits_of(const statement::Analysis& analysis);

struct Finding {
  std::string kind;  // one of wire::kMismatchKinds
  int32_t statement_index = -1;  // -1: the whole request
  std::vector<std::string> columns_differ;
  std::string detail;  // the one line a human reads first
};

// Discrepancies of one statement, one Finding per kind found.
std::vector<Finding> classify_statement(const wire::StatementResult& primary, const wire::StatementResult& shadow,
                                        const StatementTraits& traits, int32_t index);

// The traits of a fingerprint, or nullptr when none are known (compared with
// the defaults). A pointer, not a copy: a lookup runs for every statement
// compared, and the traits hold vectors.
using TraitsLookup = std::function<const StatementTraits*(const std::string& fingerprint)>;

// Discrepancies of a whole request. Statements are compared pairwise over the
// common prefix. A different statement count is a schema_mismatch of the whole
// request (statement_index -1) unless the shadow stopped at a failed statement
// that is itself reported (a failed statement aborts the rest of a transaction,
// so the missing tail is the echo of that failure, not a second cause).
std::vector<Finding> classify_request(std::span<const SideStatement> primary, std::span<const SideStatement> shadow,
                                      const TraitsLookup& traits);

}  // namespace shadowpipe::comparator
