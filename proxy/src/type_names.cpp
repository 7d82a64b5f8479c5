#include "shadowpipe/proxy/type_names.hpp"

#include "shadowpipe/conninfo.hpp"
#include "shadowpipe/result.hpp"

#include <algorithm>

namespace shadowpipe::proxy {

namespace {

bool has_unnamed(const std::vector<digest::Column>& columns) {
  return std::any_of(columns.begin(), columns.end(), [](const auto& column) { return column.type_name.empty(); });
}

}  // namespace

CatalogTypeNames::CatalogTypeNames(const std::string& catalog_dsn, std::ostream& log,
                                   std::chrono::milliseconds retry_after, size_t max_databases)
    : catalog_dsn_(catalog_dsn), log_(log), retry_after_(retry_after), max_databases_(std::max<size_t>(1, max_databases)) {
  (void)pg::Conninfo::parse(catalog_dsn_, "the --catalog-dsn DSN");  // refuse a DSN that cannot work, at start
}

CatalogTypeNames::~CatalogTypeNames() {
  for (auto& entry : databases_) entry.catalog.reset();
}

uint64_t CatalogTypeNames::queries() const {
  uint64_t total = retired_queries_;
  for (const auto& entry : databases_) total += entry.catalog ? entry.catalog->queries() : 0;
  return total;
}

CatalogTypeNames::Database* CatalogTypeNames::database(const std::string& name) {
  auto found = std::find_if(databases_.begin(), databases_.end(), [&](const auto& entry) { return entry.name == name; });
  if (found != databases_.end()) {
    databases_.splice(databases_.begin(), databases_, found);
  } else {
    if (databases_.size() >= max_databases_) {
      auto& oldest = databases_.back();
      if (oldest.catalog) retired_queries_ += oldest.catalog->queries();
      databases_.pop_back();
    }
    databases_.emplace_front();
    databases_.front().name = name;
  }
  Database& entry = databases_.front();
  if (entry.catalog) return &entry;
  if (Clock::now() < entry.retry_at) return nullptr;
  try {
    entry.conn = std::make_unique<pg::Connection>(pg::with_database(catalog_dsn_, name));
    entry.catalog = std::make_unique<catalog::Catalog>(*entry.conn);
    if (entry.failing) log_ << "shadow-proxy: type names from the catalog of database " << name << " again" << std::endl;
    entry.failing = false;
    return &entry;
  } catch (const std::exception& error) {
    failed(entry, std::string("cannot connect for type names: ") + error.what());
    return nullptr;
  }
}

void CatalogTypeNames::failed(Database& entry, const std::string& what) {
  ++failures_;
  if (entry.catalog) retired_queries_ += entry.catalog->queries();
  entry.catalog.reset();
  entry.conn.reset();
  entry.retry_at = Clock::now() + retry_after_;
  if (!entry.failing) {
    // Once per streak: a catalog that stays away must not flood the log.
    log_ << "shadow-proxy: database " << entry.name << ": " << what
         << "; user types are recorded without names (not compared) until it answers, retried every "
         << retry_after_.count() << " ms" << std::endl;
  }
  entry.failing = true;
}

void CatalogTypeNames::name(const std::string& database_name, std::vector<digest::Column>& columns) {
  if (!has_unnamed(columns) || database_name.empty()) return;
  Database* entry = database(database_name);
  if (entry == nullptr) return;
  try {
    entry->catalog->name_types(columns);
  } catch (const std::exception& error) {
    failed(*entry, std::string("type names not read: ") + error.what());
  }
}

}  // namespace shadowpipe::proxy
