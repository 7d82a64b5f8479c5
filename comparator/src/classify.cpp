#include "comparator/classify.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace shadowpipe::comparator {

StatementTraits traits_of(const statement::Analysis& analysis) {
  StatementTraits traits;
  traits.top_level_order_by = analysis.top_level_order_by;
  traits.calls_volatile = analysis.volatile_outside_outputs;
  traits.sort_keys = analysis.sort_keys;
  traits.limited = analysis.limited;
  traits.distinct_on = analysis.distinct_on;
  traits.order_total_by_grouping = analysis.order_total_by_grouping;
  for (const auto& output : analysis.outputs) {
    if (!output.volatile_calls.empty()) traits.volatile_outputs.push_back(output);
  }
  return traits;
}

namespace {

bool failed(const wire::StatementResult& result) { return result.status != wire::Status::ok; }

std::string describe_failure(const wire::StatementResult& result) {
  std::string text(wire::to_string(result.status));
  if (!result.sqlstate.empty()) text += " " + result.sqlstate;
  if (!result.message.empty()) text += ": " + result.message;
  return text;
}

// A type as a reader knows it: its name, or its OID when the side that
// recorded it had no name (a user type in an older record).
std::string type_label(const digest::Column& column) {
  return column.type_name.empty() ? "oid " + std::to_string(column.type_oid) : column.type_name;
}

std::string describe_columns(const std::vector<digest::Column>& columns) {
  std::string text = "(";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) text += ", ";
    text += columns[i].name + " " + type_label(columns[i]);
  }
  return text + ")";
}

std::string list(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + items[i];
  return text;
}

// Whether the two sides' types of a column differ. By name; OIDs only when
// neither side has a name (records of older writers). When one side has no
// name the types cannot be compared and are not reported.
bool type_differs(const digest::Column& primary, const digest::Column& shadow) {
  if (!primary.type_name.empty() && !shadow.type_name.empty()) return primary.type_name != shadow.type_name;
  if (primary.type_name.empty() && shadow.type_name.empty()) return primary.type_oid != shadow.type_oid;
  return false;
}

// Names present on only one side, or at another position.
std::vector<std::string> differing_names(const std::vector<digest::Column>& primary,
                                         const std::vector<digest::Column>& shadow) {
  std::set<std::string> names;
  const size_t common = std::min(primary.size(), shadow.size());
  for (size_t i = 0; i < common; ++i) {
    if (primary[i].name != shadow[i].name) {
      names.insert(primary[i].name);
      names.insert(shadow[i].name);
    }
  }
  for (size_t i = common; i < primary.size(); ++i) names.insert(primary[i].name);
  for (size_t i = common; i < shadow.size(); ++i) names.insert(shadow[i].name);
  return {names.begin(), names.end()};
}

bool parallel(const std::vector<uint64_t>& digests, const std::vector<digest::Column>& columns) {
  return digests.size() == columns.size();
}

}  // namespace

std::vector<Finding> classify_statement(const wire::StatementResult& primary, const wire::StatementResult& shadow,
                                        const StatementTraits& traits, int32_t index) {
  std::vector<Finding> found;
  auto add = [&](std::string kind, std::string detail, std::vector<std::string> columns = {}) {
    found.push_back(Finding{std::move(kind), index, std::move(columns), std::move(detail)});
  };

  if (failed(primary) || failed(shadow)) {
    if (!failed(primary)) {
      add("shadow_error", "primary ok, shadow " + describe_failure(shadow));
    } else if (!failed(shadow)) {
      add("primary_error_only", "primary " + describe_failure(primary) + ", shadow ok");
    } else if (primary.sqlstate != shadow.sqlstate || primary.status != shadow.status) {
      add("error_mismatch", "primary " + describe_failure(primary) + ", shadow " + describe_failure(shadow));
    }
    // Both failed the same way: the migration did not change the outcome.
    return found;
  }

  // Columns by name and position: without the same columns there is nothing
  // to pair values with.
  const auto renamed = differing_names(primary.columns, shadow.columns);
  if (!renamed.empty()) {
    add("schema_mismatch",
        "columns differ: primary " + describe_columns(primary.columns) + ", shadow " + describe_columns(shadow.columns),
        renamed);
  }
  // Types by name: a notice, and the values are still compared under it.
  if (renamed.empty()) {
    std::vector<std::string> retyped;
    std::string detail;
    for (size_t i = 0; i < primary.columns.size(); ++i) {
      if (!type_differs(primary.columns[i], shadow.columns[i])) continue;
      retyped.push_back(primary.columns[i].name);
      detail += (detail.empty() ? "" : "; ") + primary.columns[i].name + ": " + type_label(primary.columns[i]) +
                " on the primary, " + type_label(shadow.columns[i]) + " on the shadow";
    }
    if (!retyped.empty()) add("type_changed", "type changed: " + detail, std::move(retyped));
  }
  if (primary.rows != shadow.rows) {
    add("row_count_mismatch",
        "primary " + std::to_string(primary.rows) + " rows, shadow " + std::to_string(shadow.rows) + " rows");
  }
  // With other columns or another row count the digests differ for a reason already reported.
  if (!renamed.empty() || primary.rows != shadow.rows) return found;

  const auto& columns = primary.columns;
  // The output names, made only when a rule needs them: most statements
  // compare equal without.
  std::optional<std::vector<std::string>> made_names;
  auto names = [&]() -> const std::vector<std::string>& {
    if (!made_names) {
      made_names.emplace();
      made_names->reserve(columns.size());
      for (const auto& column : columns) made_names->push_back(column.name);
    }
    return *made_names;
  };

  // Which rows come back is decided by a volatile call: errors and row counts only.
  std::string whole_statement_volatile;
  if (traits.calls_volatile) whole_statement_volatile = "a volatile call outside the select list decides which rows come back";
  if (!shadow.volatile_statement.empty()) whole_statement_volatile = "the shadow's catalog says the statement " + shadow.volatile_statement;

  // Output columns that legitimately differ: the select-list entries calling
  // volatile functions, and what the shadow's catalog found.
  std::map<size_t, std::string> excluded;
  for (const auto& output : traits.volatile_outputs) {
    if (auto column = statement::output_index(output, names())) {
      excluded.emplace(*column, "calls " + list(output.volatile_calls));
    } else {
      whole_statement_volatile = "a select-list entry calling " + list(output.volatile_calls) + " cannot be placed";
    }
  }
  for (const auto& column : shadow.volatile_columns) {
    if (column.index < columns.size()) excluded.emplace(column.index, column.reason);
  }
  if (!whole_statement_volatile.empty()) {
    add("columns_not_compared", "values not compared: " + whole_statement_volatile + "; errors and row counts are",
        names());
    return found;
  }

  // LIMIT, FETCH, OFFSET, DISTINCT ON pick rows by an order that must be total.
  if (traits.limited || traits.distinct_on) {
    const bool total = traits.top_level_order_by && (traits.order_total_by_grouping || shadow.order_total.value_or(false));
    if (!total) {
      const std::string what = traits.distinct_on ? "DISTINCT ON" : "LIMIT/OFFSET";
      add("nondeterministic_result",
          what + (traits.top_level_order_by ? " under an ORDER BY not proven total by a unique key"
                                            : " without ORDER BY") +
              ": which rows come back is unspecified, so only row counts are compared");
      return found;
    }
  }

  if (!excluded.empty()) {
    std::vector<std::string> left_out;
    std::string detail = "not compared: ";
    for (const auto& [column, reason] : excluded) {
      left_out.push_back(columns[column].name);
      detail += (left_out.size() > 1 ? "; " : "") + columns[column].name + " (" + reason + ")";
    }
    add("columns_not_compared", detail + "; the other columns are compared column by column", std::move(left_out));
  }

  // Values, per column: a rendered digest that differs is a changed value,
  // or the same value rendered differently when the canonical digests agree.
  std::vector<std::string> changed, represented;
  const bool per_column = parallel(primary.column_digests, columns) && parallel(shadow.column_digests, columns);
  const bool canonical = parallel(primary.column_values, columns) && parallel(shadow.column_values, columns);
  if (per_column) {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (excluded.contains(i) || primary.column_digests[i] == shadow.column_digests[i]) continue;
      if (canonical && primary.column_values[i] == shadow.column_values[i]) {
        represented.push_back(columns[i].name);
      } else {
        changed.push_back(columns[i].name);
      }
    }
  }
  const bool rows_differ = excluded.empty() ? primary.unordered != shadow.unordered : !changed.empty() || !represented.empty();
  if (rows_differ) {
    const std::string rows = std::to_string(primary.rows) + " rows on both sides";
    if (!changed.empty()) {
      add("value_mismatch", rows + ", values differ in column" + (changed.size() > 1 ? "s " : " ") + list(changed),
          changed);
    }
    if (!represented.empty()) {
      add("representation_mismatch",
          rows + ", same value, different representation in column" + (represented.size() > 1 ? "s " : " ") +
              list(represented) + " (as numbers or without padding they are equal)",
          represented);
    }
    if (changed.empty() && represented.empty()) {
      // Every column holds the same multiset, but the rows pair them differently.
      add("value_mismatch", rows + ", values differ: each column has the same values, combined into different rows");
    }
    return found;
  }

  if (!traits.top_level_order_by) return found;
  const bool sequences = parallel(primary.column_ordered, columns) && parallel(shadow.column_ordered, columns);
  if (!sequences) {
    // A record of an older writer: only the whole ordered stream to go by.
    if (excluded.empty() && primary.ordered != shadow.ordered) {
      add("order_mismatch", "same " + std::to_string(primary.rows) +
                                " rows, returned in a different order under the statement's ORDER BY");
    }
    return found;
  }
  // The sort keys that are output columns, up to the first that is not: the
  // rows are in the same order as far as ORDER BY decides it when these
  // keys' sequences agree (rows within ties are a multiset, compared above).
  std::vector<size_t> checked;
  for (const auto& key : traits.sort_keys) {
    std::optional<size_t> column;
    if (key.position > 0 && static_cast<size_t>(key.position) <= columns.size()) {
      column = static_cast<size_t>(key.position - 1);
    } else if (key.position == 0) {
      column = statement::unique_column(key.output_name, names());
    }
    if (!column || excluded.contains(*column)) break;
    checked.push_back(*column);
  }
  if (checked.empty()) {
    add("order_not_checked",
        "ORDER BY keys are not output columns (or not comparable): order not checked, rows compared as a multiset");
    return found;
  }
  std::vector<std::string> out_of_order;
  for (size_t column : checked) {
    if (primary.column_ordered[column] != shadow.column_ordered[column]) out_of_order.push_back(columns[column].name);
  }
  if (!out_of_order.empty()) {
    add("order_mismatch",
        "same " + std::to_string(primary.rows) + " rows, the ORDER BY key" + (out_of_order.size() > 1 ? "s " : " ") +
            list(out_of_order) + " come back in a different sequence",
        out_of_order);
  } else if (checked.size() < traits.sort_keys.size()) {
    std::vector<std::string> checked_names;
    for (size_t column : checked) checked_names.push_back(columns[column].name);
    add("order_not_checked", "ORDER BY keys after " + list(checked_names) +
                                 " are not output columns: order checked on those, rows within their ties compared as a multiset");
  }
  return found;
}

namespace {
const StatementTraits& traits_or_defaults(const StatementTraits* traits) {
  static const StatementTraits kDefaults;
  return traits ? *traits : kDefaults;
}
}  // namespace

std::vector<Finding> classify_request(std::span<const SideStatement> primary, std::span<const SideStatement> shadow,
                                      const TraitsLookup& traits) {
  std::vector<Finding> found;
  const size_t common = std::min(primary.size(), shadow.size());
  for (size_t i = 0; i < common; ++i) {
    auto statement_found =
        classify_statement(primary[i].result, shadow[i].result, traits_or_defaults(traits(primary[i].fingerprint)),
                           static_cast<int32_t>(i));
    for (auto& finding : statement_found) found.push_back(std::move(finding));
  }
  if (primary.size() != shadow.size()) {
    const bool shadow_stopped_at_reported_failure =
        shadow.size() < primary.size() && !shadow.empty() && failed(shadow.back().result) &&
        std::any_of(found.begin(), found.end(), [&](const Finding& finding) {
          return finding.statement_index == static_cast<int32_t>(shadow.size() - 1);
        });
    if (!shadow_stopped_at_reported_failure) {
      found.push_back(Finding{"schema_mismatch", -1, {},
                              "primary ran " + std::to_string(primary.size()) + " statements, shadow reported " +
                                  std::to_string(shadow.size())});
    }
  }
  return found;
}

}  // namespace shadowpipe::comparator
