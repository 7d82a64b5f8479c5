#include "shadowpipe/pg.hpp"

#include "shadowpipe/result.hpp"

#include <cstdlib>

namespace shadowpipe::pg {

bool Result::succeeded() const {
  switch (status()) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
    case PGRES_PIPELINE_SYNC:
    case PGRES_EMPTY_QUERY:
      return true;
    default:
      return false;
  }
}

std::string Result::sqlstate() const {
  const char* state = PQresultErrorField(handle_.get(), PG_DIAG_SQLSTATE);
  return state ? state : "";
}

std::string Result::error_message() const {
  const char* primary = PQresultErrorField(handle_.get(), PG_DIAG_MESSAGE_PRIMARY);
  if (primary) return primary;
  const char* whole = PQresultErrorMessage(handle_.get());
  return whole ? whole : "";
}

long Result::affected_rows() const {
  if (status() == PGRES_TUPLES_OK || status() == PGRES_SINGLE_TUPLE) return rows();
  const char* tuples = PQcmdTuples(handle_.get());
  return (tuples && *tuples) ? std::strtol(tuples, nullptr, 10) : 0;
}

namespace {
std::vector<const char*> raw_params(const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> raw;
  raw.reserve(params.size());
  for (const auto& param : params) raw.push_back(param ? param->c_str() : nullptr);
  return raw;
}
}  // namespace

Connection::Connection(const std::string& dsn) : handle_(PQconnectdb(dsn.c_str())) {
  if (!handle_) throw Failure("cannot allocate a PostgreSQL connection (out of memory?)");
  if (PQstatus(handle_.get()) != CONNECTION_OK) {
    std::string why = PQerrorMessage(handle_.get());
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Failure("cannot connect to PostgreSQL at " + describe() + ": " + why +
                  " — check the DSN and that the server is running (scripts/stack status)");
  }
}

std::string Connection::describe() const {
  const char* host = PQhost(handle_.get());
  const char* port = PQport(handle_.get());
  const char* db = PQdb(handle_.get());
  return std::string(host ? host : "?") + ":" + (port ? port : "?") + "/" + (db ? db : "?");
}

Result Connection::exec(const std::string& sql) const {
  return Result(PQexec(handle_.get(), sql.c_str()));
}

Result Connection::exec(const std::string& sql,
                        const std::vector<std::optional<std::string>>& params) const {
  auto raw = raw_params(params);
  return Result(PQexecParams(handle_.get(), sql.c_str(), static_cast<int>(raw.size()), nullptr,
                             raw.data(), nullptr, nullptr, 0));
}

namespace {
Result checked(Result result, const std::string& sql, const Connection& conn) {
  if (!result || !result.succeeded()) {
    std::string why = result ? result.error_message() : PQerrorMessage(conn.get());
    throw Failure("statement failed on " + conn.describe() + ": " + why + " (SQL: " +
                  sql.substr(0, 200) + ")");
  }
  return result;
}
}  // namespace

Result Connection::exec_checked(const std::string& sql) const {
  return checked(exec(sql), sql, *this);
}

Result Connection::exec_checked(const std::string& sql,
                                const std::vector<std::optional<std::string>>& params) const {
  return checked(exec(sql, params), sql, *this);
}

std::string Connection::parameter_status(const char* name) const {
  const char* value = PQparameterStatus(handle_.get(), name);
  return value ? value : "";
}

}  // namespace shadowpipe::pg
