#include "shadowpipe/pg_result.hpp"

#include <cstdlib>

namespace shadowpipe::digest {

ResultDigest digest_result(const PGresult* result, const NormalizationRules& rules) {
  const int fields = PQnfields(result);
  const int rows = PQntuples(result);
  std::vector<Column> columns;
  columns.reserve(static_cast<size_t>(fields));
  for (int c = 0; c < fields; ++c) {
    const auto oid = static_cast<uint32_t>(PQftype(result, c));
    columns.push_back(Column{PQfname(result, c), oid, std::string(builtin_type_name(oid))});
  }
  DigestBuilder builder(std::move(columns), rules);
  std::vector<std::optional<std::string_view>> values(static_cast<size_t>(fields));
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < fields; ++c) {
      auto& slot = values[static_cast<size_t>(c)];
      const int length = PQgetlength(result, r, c);
      // libpq reports NULL with length 0, so only empty values need the NULL test.
      if (length == 0 && PQgetisnull(result, r, c)) {
        slot.reset();
      } else {
        slot.emplace(PQgetvalue(result, r, c), static_cast<size_t>(length));
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
