// Statement analysis on the PostgreSQL parser (libpg_query): fingerprint,
// normalized text, kind, ordering, volatility, and whether the statement
// reaches outside the database (the side-effect guard's input).
#pragma once

#include "shadowpipe/result.hpp"

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::statement {

enum class Kind { read, write, ddl, transaction_control, utility };
std::string_view to_string(Kind kind);

struct Analysis {
  std::string fingerprint;     // 16 hex digits, libpg_query's fingerprint
  std::string normalized_sql;  // constants replaced by $n
  Kind kind = Kind::read;      // the strongest kind across all statements in the text
  int statement_count = 1;     // statements in the text (a; b)
  bool top_level_order_by = false;           // ordered comparison only if true
  std::vector<std::string> volatile_calls;   // volatile functions called (lowercase names)
  bool calls_volatile() const { return !volatile_calls.empty(); }
  std::vector<std::string> outside_reasons;  // why it reaches outside; empty if it does not
  bool reaches_outside() const { return !outside_reasons.empty(); }
  // Facts a replayer needs that `kind` (the strongest kind) hides:
  bool has_transaction_control = false;     // some statement of the text is BEGIN/COMMIT/SAVEPOINT/...
  bool copies_client_data = false;          // COPY FROM STDIN / TO STDOUT: data on the client connection
  std::vector<std::string> session_reasons;  // state it leaves in the session past its transaction
};

// Analyzes SQL; an Error with code sql_syntax carries the parser's message and
// the cursor position ("syntax error at or near \"FORM\" at position 10").
Result<Analysis> analyze(std::string_view sql);

// analyze() with a bounded cache keyed by statement text, so the same
// statement text is parsed once. Safe to share between threads.
class Analyzer {
 public:
  explicit Analyzer(size_t capacity = 4096);
  ~Analyzer();
  Result<Analysis> analyze(std::string_view sql);
  size_t hits() const;
  size_t misses() const;

 private:
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace shadowpipe::statement
