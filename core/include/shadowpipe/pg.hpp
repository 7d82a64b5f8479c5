// RAII owners for libpq handles. Connection failures at start are
// environment failures and throw shadowpipe::Failure (see result.hpp); a
// statement's own error is data and stays inside its PgResult.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::pg {

struct ResultDeleter {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
struct ConnectionDeleter {
  void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};

class Result {
 public:
  Result() = default;
  explicit Result(PGresult* raw) : handle_(raw) {}

  PGresult* get() const { return handle_.get(); }
  explicit operator bool() const { return handle_ != nullptr; }
  ExecStatusType status() const { return PQresultStatus(handle_.get()); }
  // True for COMMAND_OK, TUPLES_OK, SINGLE_TUPLE and PIPELINE_SYNC.
  bool succeeded() const;
  int rows() const { return PQntuples(handle_.get()); }
  int columns() const { return PQnfields(handle_.get()); }
  bool is_null(int row, int column) const { return PQgetisnull(handle_.get(), row, column) != 0; }
  std::string_view value(int row, int column) const {
    return {PQgetvalue(handle_.get(), row, column),
            static_cast<size_t>(PQgetlength(handle_.get(), row, column))};
  }
  // SQLSTATE of an error result, empty otherwise.
  std::string sqlstate() const;
  std::string error_message() const;
  // Rows affected by INSERT/UPDATE/DELETE, or returned by SELECT.
  long affected_rows() const;

 private:
  std::unique_ptr<PGresult, ResultDeleter> handle_;
};

class Connection {
 public:
  // Connects or throws Failure naming the server (never the password).
  explicit Connection(const std::string& dsn);
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;

  PGconn* get() const { return handle_.get(); }
  bool healthy() const { return PQstatus(handle_.get()) == CONNECTION_OK; }
  std::string describe() const;  // "host:port/dbname"

  // Runs SQL with text parameters (nullopt is SQL NULL). Never throws for a
  // statement error: inspect the returned Result.
  Result exec(const std::string& sql) const;
  Result exec(const std::string& sql, const std::vector<std::optional<std::string>>& params) const;
  // Runs SQL that must succeed (setup, bookkeeping); throws Failure otherwise.
  Result exec_checked(const std::string& sql) const;
  Result exec_checked(const std::string& sql, const std::vector<std::optional<std::string>>& params) const;
  // Setting as the server rendered it for this session (TimeZone, DateStyle…).
  std::string parameter_status(const char* name) const;

 private:
  std::unique_ptr<PGconn, ConnectionDeleter> handle_;
};

}  // namespace shadowpipe::pg
