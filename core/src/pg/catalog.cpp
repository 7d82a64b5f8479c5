#include "shadowpipe/catalog.hpp"

#include <algorithm>
#include <cstdlib>

namespace shadowpipe::catalog {

namespace {

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// {a,b,c} as a PostgreSQL array literal of quoted elements.
std::string array_literal(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(separator, start), text.size());
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

pg::Result Catalog::query(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  ++queries_;
  return conn_.exec_checked(sql, params);
}

void Catalog::name_types(std::vector<digest::Column>& columns) {
  std::vector<std::string> unknown;
  for (const auto& column : columns) {
    if (column.type_name.empty() && !type_names_.contains(column.type_oid)) {
      unknown.push_back(std::to_string(column.type_oid));
    }
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
    auto found = query("SELECT t.oid::int8, format_type(t.oid, NULL) FROM pg_type t WHERE t.oid = ANY($1::oid[])",
                       {array_literal(unknown)});
    for (const auto& oid : unknown) type_names_[static_cast<uint32_t>(std::stoul(oid))] = "";  // asked once
    for (int row = 0; row < found.rows(); ++row) {
      type_names_[static_cast<uint32_t>(std::strtoul(std::string(found.value(row, 0)).c_str(), nullptr, 10))] =
          std::string(found.value(row, 1));
    }
  }
  for (auto& column : columns) {
    if (column.type_name.empty()) column.type_name = type_names_[column.type_oid];
  }
}

bool Catalog::volatile_user_function(const std::string& name) {
  if (auto found = functions_.find(name); found != functions_.end()) return found->second;
  // Any overload that is not IMMUTABLE counts: the parser cannot tell which
  // overload a call resolves to, and a false "volatile" only leaves a column
  // out, where a false "immutable" would report differences that are not.
  auto found = query("SELECT count(*) FROM pg_proc WHERE proname = $1 AND pronamespace <> 'pg_catalog'::regnamespace "
                     "AND provolatile <> 'i'",
                     {name});
  const bool result = found.value(0, 0) != "0";
  functions_.emplace(name, result);
  return result;
}

const Catalog::TableFacts& Catalog::table(uint32_t oid) {
  if (auto found = tables_.find(oid); found != tables_.end()) return found->second;
  TableFacts facts;
  const std::string table_oid = std::to_string(oid);

  auto columns = query(
      "SELECT a.attnum, a.attidentity, a.attgenerated, coalesce(pg_get_expr(d.adbin, d.adrelid), '') "
      "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped",
      {table_oid});
  for (int row = 0; row < columns.rows(); ++row) {
    const int attnum = std::atoi(std::string(columns.value(row, 0)).c_str());
    const std::string_view identity = columns.value(row, 1);
    const std::string_view generated = columns.value(row, 2);
    const std::string default_expression(columns.value(row, 3));
    if (!identity.empty()) {
      facts.volatile_columns[attnum] = "identity column";
      continue;
    }
    // A generated column's expression is immutable by rule: deterministic.
    if (!generated.empty() || default_expression.empty()) continue;
    auto analysis = statement::analyze("SELECT " + default_expression);
    if (!analysis.ok()) continue;
    bool differs = analysis->calls_volatile();
    for (const auto& function : analysis->called_functions) differs = differs || volatile_user_function(function);
    if (differs) facts.volatile_columns[attnum] = "default " + default_expression;
  }

  auto triggers = query(
      "SELECT coalesce(string_agg(tgname::text, ', ' ORDER BY tgname), '') FROM pg_trigger WHERE tgrelid = $1::oid "
      "AND NOT tgisinternal AND tgenabled <> 'D' AND (tgtype & 1) = 1 AND (tgtype & 2) = 2 AND (tgtype & 20) <> 0",
      {table_oid});
  if (!triggers.value(0, 0).empty()) facts.writing_trigger = std::string(triggers.value(0, 0));

  auto keys = query(
      "SELECT bool_and(a.attnotnull), string_agg(a.attname::text, chr(1)) "
      "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL "
      "AND i.indexprs IS NULL AND k.n <= i.indnkeyatts GROUP BY i.indexrelid",
      {table_oid});
  for (int row = 0; row < keys.rows(); ++row) {
    // A unique index lets NULLs repeat: only NOT NULL columns make a key.
    if (keys.value(row, 0) != "t") continue;
    const auto names = split(keys.value(row, 1), '\x01');
    facts.unique_keys.emplace_back(names.begin(), names.end());
  }
  return tables_.emplace(oid, std::move(facts)).first->second;
}

std::optional<uint32_t> Catalog::relation_oid(const statement::Analysis& analysis, const PGresult*) {
  const std::string& name = analysis.single_relation;
  if (auto found = relations_.find(name); found != relations_.end()) return found->second;
  const size_t dot = name.find('.');
  const std::string schema = dot == std::string::npos ? "" : name.substr(0, dot);
  const std::string relation = dot == std::string::npos ? name : name.substr(dot + 1);
  // Only a table (plain or partitioned): a view or a function may repeat rows.
  auto found = query(
      "SELECT c.oid::int8 FROM pg_class c WHERE c.relkind IN ('r', 'p') AND c.oid = to_regclass("
      "CASE WHEN $1 = '' THEN quote_ident($2) ELSE quote_ident($1) || '.' || quote_ident($2) END)",
      {schema, relation});
  std::optional<uint32_t> oid;
  if (found.rows() == 1) oid = static_cast<uint32_t>(std::strtoul(std::string(found.value(0, 0)).c_str(), nullptr, 10));
  relations_.emplace(name, oid);
  return oid;
}

bool Catalog::proves_total_order(const statement::Analysis& analysis, const PGresult* result) {
  if (analysis.order_total_by_grouping) return true;
  if (analysis.single_relation.empty() || analysis.sort_keys.empty()) return false;
  const auto oid = relation_oid(analysis, result);
  if (!oid) return false;
  const std::string& table_name = analysis.single_relation.substr(analysis.single_relation.find('.') + 1);
  const std::string& own_name = analysis.single_relation_alias.empty() ? table_name : analysis.single_relation_alias;
  std::set<std::string> key_columns;
  for (const auto& key : analysis.sort_keys) {
    if (key.column.empty()) continue;
    if (!key.qualifier.empty() && key.qualifier != own_name) continue;
    key_columns.insert(key.column);
  }
  for (const auto& unique : table(*oid).unique_keys) {
    if (std::includes(key_columns.begin(), key_columns.end(), unique.begin(), unique.end())) return true;
  }
  return false;
}

void Catalog::describe(const statement::Analysis& analysis, const PGresult* result, wire::StatementResult& out) {
  out.volatile_columns.clear();
  out.volatile_statement.clear();
  out.order_total.reset();
  if (result == nullptr) return;

  std::vector<std::string> outside;
  for (const auto& function : analysis.functions_outside_outputs) {
    if (volatile_user_function(function)) outside.push_back(function + "()");
  }
  if (!outside.empty()) {
    out.volatile_statement = "calls the volatile or stable function" + std::string(outside.size() > 1 ? "s " : " ") +
                             join(outside, ", ") + " outside the select list";
  }

  const int fields = PQnfields(result);
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(fields));
  for (int c = 0; c < fields; ++c) names.emplace_back(PQfname(result, c));
  std::map<size_t, std::string> reasons;
  for (int c = 0; c < fields; ++c) {
    const Oid table_oid = PQftable(result, c);
    const int attnum = PQftablecol(result, c);
    if (table_oid == InvalidOid || attnum <= 0) continue;
    const TableFacts& facts = table(table_oid);
    if (auto found = facts.volatile_columns.find(attnum); found != facts.volatile_columns.end()) {
      reasons[static_cast<size_t>(c)] = found->second;
    } else if (!facts.writing_trigger.empty()) {
      reasons[static_cast<size_t>(c)] = "its table has BEFORE row triggers that may write it (" + facts.writing_trigger + ")";
    }
  }
  for (const auto& output : analysis.outputs) {
    std::vector<std::string> calls;
    for (const auto& function : output.called_functions) {
      if (volatile_user_function(function)) calls.push_back(function + "()");
    }
    if (calls.empty()) continue;
    const auto index = statement::output_index(output, names);
    if (!index) {
      // The entry cannot be placed (behind a *): nothing of it is comparable.
      out.volatile_statement = "calls " + join(calls, ", ") + " in a select-list entry that cannot be placed";
      continue;
    }
    reasons.emplace(*index, "calls " + join(calls, ", "));
  }
  for (auto& [index, reason] : reasons) {
    out.volatile_columns.push_back(wire::VolatileColumn{static_cast<uint32_t>(index), std::move(reason)});
  }

  if ((analysis.limited || analysis.distinct_on) && analysis.top_level_order_by) {
    out.order_total = proves_total_order(analysis, result);
  }
}

}  // namespace shadowpipe::catalog
