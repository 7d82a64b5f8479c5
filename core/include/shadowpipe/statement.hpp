// Statement analysis on the PostgreSQL parser (libpg_query): fingerprint,
// normalized text, kind, ordering, volatility, and whether the statement
// reaches outside the database (the side-effect guard's input).
#pragma once

#include "shadowpipe/result.hpp"

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::statement {

enum class Kind { read, write, ddl, transaction_control, utility };
std::string_view to_string(Kind kind);

// One key of the top-level ORDER BY, as far as the parser can place it.
struct SortKey {
  int position = 0;          // ORDER BY n: the n-th output column (1-based); 0 otherwise
  std::string output_name;   // the output column it names (resolved against the result's
                             // column names, which must hold it exactly once); empty when the
                             // key is an expression the parser cannot tie to an output column
  std::string column;        // a plain column reference: its column name (the totality proof)
  std::string qualifier;     // and its table qualifier as written, if any
};

// One entry of the top-level select list (SELECT, not set operations).
struct OutputExpression {
  int position = 0;          // 1-based output position; 0 when a * before it hides the position
  std::string output_name;   // the name PostgreSQL gives the column
  bool star = false;         // * or t.*: expands to columns of the tables
  std::vector<std::string> volatile_calls;    // as Analysis::volatile_calls, within this entry
  std::vector<std::string> called_functions;  // as Analysis::called_functions, within this entry
};

// A change a statement makes to its session's settings, for a capture that
// follows each session's settings (shadow-proxy). Values are as set_config
// takes them (a SET list joined by ", ", identifiers quoted as the server
// quotes search_path's).
struct SettingChange {
  enum class Kind { set, reset, reset_all, discard_all, discard_temp };
  Kind kind = Kind::set;
  std::string name;      // lowercase; empty for reset_all and the DISCARDs
  std::string value;     // set: the new value (SET name TO DEFAULT is a reset)
  int name_param = 0;    // set_config($n, ...): the name is parameter n (1-based); 0: the text gives it
  int value_param = 0;   // likewise the value
  bool local = false;    // SET LOCAL, set_config(..., true): ends with the transaction
  bool known = true;     // false: the text does not fix the name, value or scope (an expression)
};

struct Analysis {
  std::string fingerprint;     // 16 hex digits, libpg_query's fingerprint
  std::string normalized_sql;  // constants replaced by $n
  Kind kind = Kind::read;      // the strongest kind across all statements in the text
  int statement_count = 1;     // statements in the text (a; b)
  bool top_level_order_by = false;           // ordered comparison only if true
  std::vector<std::string> volatile_calls;   // volatile functions called (lowercase names)
  bool calls_volatile() const { return !volatile_calls.empty(); }
  // Every function called, lowercase, except those qualified pg_catalog.: the
  // executor asks the shadow's catalog which are volatile or stable user functions.
  std::vector<std::string> called_functions;

  // How the rows of the last statement (the one whose rows a client keeps)
  // are determined; docs/COMPARISON.md says how each is used.
  std::vector<SortKey> sort_keys;             // its top-level ORDER BY, in order
  bool limited = false;                       // LIMIT, FETCH FIRST or OFFSET at the top level
  bool distinct_on = false;                   // DISTINCT ON (...)
  bool order_total_by_grouping = false;       // every GROUP BY column is an ORDER BY key: a total order
  std::string single_relation;                // FROM names exactly one table (as written, schema.name)
  std::string single_relation_alias;          // its alias, or empty
  std::vector<OutputExpression> outputs;      // its select list; empty for set operations and non-SELECTs
  // A volatile call outside the select list (WHERE, FROM, ORDER BY, a set
  // operation, a non-SELECT statement): which rows come back may differ, so
  // no value of the statement is compared.
  bool volatile_outside_outputs = false;
  std::vector<std::string> functions_outside_outputs;  // called_functions outside the select list
  std::vector<std::string> outside_reasons;  // why it reaches outside; empty if it does not
  bool reaches_outside() const { return !outside_reasons.empty(); }
  // Facts a replayer needs that `kind` (the strongest kind) hides:
  bool has_transaction_control = false;     // some statement of the text is BEGIN/COMMIT/SAVEPOINT/...
  bool copies_client_data = false;          // COPY FROM STDIN / TO STDOUT: data on the client connection
  bool copies_from_client = false;          // of which COPY FROM STDIN (a record may carry its data)
  std::vector<std::string> session_reasons;  // state it leaves in the session past its transaction
  bool makes_temporary_objects = false;      // among them: a temporary table, view or sequence
  // State an earlier statement of the session made that this one uses
  // (EXECUTE, DEALLOCATE, LISTEN / UNLISTEN, advisory unlocks): elsewhere,
  // as on the shadow's shared connection, it means something else.
  std::vector<std::string> session_uses;
  // The prepared statements it names (EXECUTE p, DEALLOCATE p; not
  // DEALLOCATE ALL): made by an earlier PREPARE of the session, so not on
  // another connection, where the name may be someone else's.
  std::vector<std::string> prepared_names_used;
  // DEALLOCATE or DISCARD ALL: drops the session's prepared statements
  // (a replayer's own among them).
  bool drops_prepared_statements = false;
  std::vector<SettingChange> setting_changes;  // SET, RESET, set_config, DISCARD ALL / TEMP, in order
  // Transaction control a replayer runs inside the unit's transaction, as the
  // primary ran it (set only for a text of one statement):
  std::string savepoint_command;  // "SAVEPOINT", "ROLLBACK TO SAVEPOINT" or "RELEASE SAVEPOINT"
  std::string savepoint_name;     // its savepoint, as the server folds it
  bool sets_constraints = false;  // SET CONSTRAINTS ... DEFERRED / IMMEDIATE
  // BEGIN / START TRANSACTION / SET TRANSACTION with modes:
  std::string isolation_level;    // "serializable", "repeatable read", ...; empty when not given
  bool read_only = false;         // READ ONLY
  bool deferrable = false;        // DEFERRABLE
  bool sets_transaction_mode() const { return !isolation_level.empty() || read_only || deferrable; }
};

// The result column a select-list entry produced: its position when known,
// else the one result column of its name; nullopt when neither places it.
std::optional<size_t> output_index(const OutputExpression& output, const std::vector<std::string>& result_names);
// The index of the one result column named `name`; nullopt when none or several.
std::optional<size_t> unique_column(std::string_view name, const std::vector<std::string>& result_names);

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
  // The cached analysis itself, shared and immutable: a hit costs a lock and
  // a reference count, not a copy of the analysis (its strings and vectors).
  Result<std::shared_ptr<const Analysis>> analyze_shared(std::string_view sql);
  size_t hits() const;
  size_t misses() const;

 private:
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace shadowpipe::statement
