#include "shadowpipe/pg_result.hpp"

#include "shadowpipe/binary_text.hpp"

#include <array>
#include <span>
#include <cstdlib>

namespace shadowpipe::digest {

ResultDigest digest_result(const PGresult* result, const NormalizationRules& rules) {
  const int fields = PQnfields(result);
  const int rows = PQntuples(result);
  const auto width = static_cast<size_t>(fields);
  std::vector<Column> columns;
  columns.reserve(width);
  // Binary columns (a statement replayed with binary results): rendered as
  // text where binary_text.hpp can, else digested over their bytes, as
  // shadow-proxy digests what the primary sent. A text result (the usual
  // one) allocates no flags for them.
  std::vector<bool> rendered;
  for (int c = 0; c < fields; ++c) {
    const auto oid = static_cast<uint32_t>(PQftype(result, c));
    Column column{PQfname(result, c), oid, std::string(builtin_type_name(oid))};
    if (PQfformat(result, c) != 0) {
      if (renders_binary(oid)) {
        rendered.resize(width, false);
        rendered[static_cast<size_t>(c)] = true;
      } else {
        column.format = 1;
      }
    }
    columns.push_back(std::move(column));
  }
  DigestBuilder builder(std::move(columns), rules);
  // A row's values: on the stack for the usual width, else on the heap.
  constexpr size_t kInlineWidth = 32;
  std::array<std::optional<std::string_view>, kInlineWidth> inline_values;
  std::vector<std::optional<std::string_view>> heap_values(width > kInlineWidth ? width : 0);
  const std::span<std::optional<std::string_view>> values =
      width > kInlineWidth ? std::span(heap_values) : std::span(inline_values).first(width);
  // Only a result with binary columns rendered as text needs their texts.
  std::vector<std::string> texts(rendered.empty() ? 0 : width);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < fields; ++c) {
      auto& slot = values[static_cast<size_t>(c)];
      const int length = PQgetlength(result, r, c);
      // libpq reports NULL with length 0, so only empty values need the NULL test.
      if (length == 0 && PQgetisnull(result, r, c)) {
        slot.reset();
        continue;
      }
      slot.emplace(PQgetvalue(result, r, c), static_cast<size_t>(length));
      if (!rendered.empty() && rendered[static_cast<size_t>(c)]) {
        // The bytes of a value the server sent as this type always render;
        // a wrong length would be a server bug, digested as the bytes.
        if (auto text = binary_to_text(PQftype(result, c), *slot)) {
          texts[static_cast<size_t>(c)] = std::move(*text);
          slot = texts[static_cast<size_t>(c)];
        }
      }
    }
    builder.add_row(values);
  }
  return std::move(builder).finish();
}

}  // namespace shadowpipe::digest

namespace shadowpipe::pg {

namespace {
std::string text_or_empty(const char* text) { return text ? std::string(text) : std::string(); }
}  // namespace

wire::StatementResult statement_result(const PGresult* result, const digest::NormalizationRules& rules) {
  wire::StatementResult out;
  switch (PQresultStatus(result)) {
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
      out.set_digest(digest::digest_result(result, rules));
      break;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_PIPELINE_SYNC: {
      out.set_digest(digest::digest_result(result, rules));
      const char* affected = PQcmdTuples(const_cast<PGresult*>(result));
      out.rows = (affected && *affected) ? std::strtoll(affected, nullptr, 10) : 0;
      break;
    }
    default: {
      out.status = wire::Status::error;
      out.sqlstate = text_or_empty(PQresultErrorField(result, PG_DIAG_SQLSTATE));
      const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
      out.message = primary ? primary : text_or_empty(PQresultErrorMessage(result));
      break;
    }
  }
  return out;
}

}  // namespace shadowpipe::pg
