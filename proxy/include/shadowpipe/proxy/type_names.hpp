// Names of the user types (enums, domains, composites, extension types such
// as citext) in the results the proxy captured, asked of the primary's own
// catalog. A user type's OID differs between databases and changes on
// restore, so the comparator compares types by name (format_type), as the
// executor reports them from the shadow's catalog; built-in types are named
// without asking anyone.
//
// OIDs belong to one database: the proxy keeps one connection of its own per
// database its sessions use (at most `max_databases`, the least recently
// used closed first), opened on first need with the operator's DSN and that
// database, and caches every answer for the connection's life. It runs on the
// recording thread only, so a slow or unreachable catalog delays recording,
// never the relay. While a database's catalog cannot be asked, its user types
// stay unnamed (the comparator then leaves those types uncompared) and the
// connection is retried after `retry_after`.
#pragma once

#include "shadowpipe/catalog.hpp"
#include "shadowpipe/digest.hpp"
#include "shadowpipe/pg.hpp"

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace shadowpipe::proxy {

class CatalogTypeNames {
 public:
  using Clock = std::chrono::steady_clock;

  // catalog_dsn: libpq keyword or URI form, for a role that may read
  // pg_type; its database is replaced by each session's. Throws Failure when
  // it does not parse. log: where a streak of failures is reported, once.
  CatalogTypeNames(const std::string& catalog_dsn, std::ostream& log,
                   std::chrono::milliseconds retry_after = std::chrono::seconds(5), size_t max_databases = 16);
  ~CatalogTypeNames();
  CatalogTypeNames(const CatalogTypeNames&) = delete;
  CatalogTypeNames& operator=(const CatalogTypeNames&) = delete;

  // Fills the empty type names of `columns`, read from a result in `database`.
  void name(const std::string& database, std::vector<digest::Column>& columns);

  uint64_t queries() const;          // catalog lookups made (each answers every OID it was asked)
  uint64_t failures() const { return failures_; }  // connections or lookups that failed

 private:
  struct Database {
    std::string name;
    std::unique_ptr<pg::Connection> conn;
    std::unique_ptr<catalog::Catalog> catalog;  // asks conn; destroyed first
    Clock::time_point retry_at{};
    bool failing = false;
  };
  Database* database(const std::string& name);
  void failed(Database& entry, const std::string& what);

  std::string catalog_dsn_;
  std::ostream& log_;
  std::chrono::milliseconds retry_after_;
  size_t max_databases_;
  std::list<Database> databases_;  // most recently used first
  uint64_t failures_ = 0;
  uint64_t retired_queries_ = 0;   // of connections closed since
};

}  // namespace shadowpipe::proxy
