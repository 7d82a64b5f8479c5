// What a side's catalog says about a result, asked once and cached per
// connection: the names of the result's types (format_type), which output
// columns legitimately differ between primary and shadow (volatile or stable
// user functions, volatile defaults, identity and sequence columns, tables
// whose BEFORE row triggers may write them), and whether an ORDER BY is a
// total order (a unique key of NOT NULL columns among the sort keys).
// docs/COMPARISON.md states the rules; the comparator applies them.
//
// The caches hold for the life of the connection: a catalog changed by a
// migration later is seen by a new connection (the executor reconnects on
// restart). Staleness can only keep a column out of the comparison or a
// LIMIT at row counts; it never claims a total order the catalog did not
// prove when it was asked.
#pragma once

#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <libpq-fe.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace shadowpipe::catalog {

class Catalog {
 public:
  // Asks `conn` (not owned; it must outlive this object). The connection must
  // be idle between statements when a method is called: each lookup is one
  // query of its own.
  explicit Catalog(const pg::Connection& conn) : conn_(conn) {}

  // Fills the empty type_name of columns (user types: enums, domains,
  // composites, extension types) from pg_type: one query for all the OIDs not
  // seen before, none when every OID is known.
  void name_types(std::vector<digest::Column>& columns);

  // Fills out.volatile_columns, out.volatile_statement and out.order_total
  // for `result`, the answer to the statement `analysis` describes.
  void describe(const statement::Analysis& analysis, const PGresult* result, wire::StatementResult& out);

  // Lookups made so far (a test proves they are cached).
  uint64_t queries() const { return queries_; }

 private:
  struct TableFacts {
    std::map<int, std::string> volatile_columns;  // attnum -> why its stored values differ between sides
    std::string writing_trigger;                   // a BEFORE row trigger that may write any column
    std::vector<std::set<std::string>> unique_keys;  // NOT NULL unique keys (column names)
  };

  const TableFacts& table(uint32_t oid);
  bool volatile_user_function(const std::string& name);
  std::optional<uint32_t> relation_oid(const statement::Analysis& analysis, const PGresult* result);
  bool proves_total_order(const statement::Analysis& analysis, const PGresult* result);
  pg::Result query(const std::string& sql, const std::vector<std::optional<std::string>>& params);

  const pg::Connection& conn_;
  std::map<uint32_t, std::string> type_names_;
  std::map<uint32_t, TableFacts> tables_;
  std::map<std::string, bool, std::less<>> functions_;
  std::map<std::string, std::optional<uint32_t>> relations_;
  uint64_t queries_ = 0;
};

}  // namespace shadowpipe::catalog
