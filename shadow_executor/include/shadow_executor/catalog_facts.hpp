// What the shadow's catalog says about a statement's result (catalog.hpp):
// the names of its user types, its volatile columns, whether its order is
// total. Read over a connection of its own so no lookup ever runs inside a
// unit's transaction or pipeline; cached per fingerprint and result width.
#pragma once

#include "shadowpipe/catalog.hpp"
#include "shadowpipe/pg.hpp"
#include "shadowpipe/statement.hpp"
#include "shadowpipe/wire.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace shadowpipe::executor {

class CatalogFacts {
 public:
  // `connect` opens the catalog connection when first needed (null: none).
  using Connect = std::function<std::unique_ptr<pg::Connection>()>;
  CatalogFacts(Connect connect, statement::Analyzer& analyzer)
      : connect_(std::move(connect)), analyzer_(analyzer) {}

  // Adds the catalog's facts to `out`, the result of `sql` (`executed`).
  // Without the catalog the comparison falls back to what the statement
  // text shows: user types unnamed (not compared), no catalog exclusions.
  void describe(const std::string& fingerprint, const std::string& sql, const PGresult* executed,
                wire::StatementResult& out);

 private:
  struct Facts {
    std::vector<wire::VolatileColumn> volatile_columns;
    std::string volatile_statement;
    std::optional<bool> order_total;
  };
  static constexpr size_t kMaxFacts = 4096;  // fingerprints; the cache starts over beyond

  Connect connect_;
  statement::Analyzer& analyzer_;
  std::unique_ptr<pg::Connection> conn_;
  std::unique_ptr<catalog::Catalog> catalog_;
  bool unavailable_ = false;
  std::unordered_map<std::string, Facts> facts_;  // by fingerprint and result width
  std::string key_;                               // the lookup's key, its capacity kept
};

}  // namespace shadowpipe::executor
