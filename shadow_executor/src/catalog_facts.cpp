#include "shadow_executor/catalog_facts.hpp"

#include <iostream>

namespace shadowpipe::executor {

void CatalogFacts::describe(const std::string& fingerprint, const std::string& sql, const PGresult* executed,
                            wire::StatementResult& out) {
  if (unavailable_ || PQresultStatus(executed) != PGRES_TUPLES_OK) return;
  try {
    if (!catalog_) {
      conn_ = connect_();
      if (!conn_) {
        unavailable_ = true;
        return;
      }
      catalog_ = std::make_unique<catalog::Catalog>(*conn_);
    }
    catalog_->name_types(out.columns);
    // A statement's facts depend on its text and the catalog, not on its
    // parameters: worked out once per fingerprint and result width, so the
    // steady state costs one lookup per statement.
    // The key is built in a buffer kept between statements: one allocation
    // a statement otherwise.
    key_.assign(fingerprint);
    key_ += '/';
    key_ += std::to_string(out.columns.size());
    auto known = facts_.find(key_);
    if (known == facts_.end()) {
      wire::StatementResult facts;
      auto analysis = analyzer_.analyze_shared(sql);
      if (analysis.ok()) catalog_->describe(*analysis.value(), executed, facts);
      if (facts_.size() >= kMaxFacts) facts_.clear();
      known = facts_.emplace(key_, Facts{std::move(facts.volatile_columns), std::move(facts.volatile_statement),
                                        facts.order_total})
                  .first;
    }
    out.volatile_columns = known->second.volatile_columns;
    out.volatile_statement = known->second.volatile_statement;
    out.order_total = known->second.order_total;
  } catch (const std::exception& failure) {
    std::cerr << "shadow-executor: the shadow's catalog cannot be read, results go without its facts: "
              << failure.what() << "\n";
    unavailable_ = true;
    catalog_.reset();
    conn_.reset();
  }
}

}  // namespace shadowpipe::executor
