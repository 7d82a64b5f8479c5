// The project's error rule, in one place:
//  * Input that arrives at run time from outside (wire records, SQL text,
//    statement files) is expected to be bad sometimes; its functions return
//    Result<T>, and the caller routes the Error (DLQ, skip, count).
//  * Failures of the environment or of configuration (cannot connect at
//    start, bad option, a broken invariant) throw shadowpipe::Failure; main()
//    catches it, prints what failed, with what input, and what to do.
//  * Faults that waiting cures throw shadowpipe::Transient, the one
//    retryable error, caught by the program's retry loop.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace shadowpipe {

enum class ErrorCode {
  malformed,            // not JSON, or not the shape the schema requires
  missing_field,        // a required field is absent
  wrong_type,           // a field has the wrong JSON type
  unsupported_version,  // "v" has a major version this build does not read
  too_large,            // a field is over its configured size limit
  invalid_value,        // right type, value out of its domain
  sql_syntax,           // the PostgreSQL parser refused the statement
  io,                   // reading a local file failed
};

std::string_view to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::malformed;
  std::string field;    // JSON path of the offending field, e.g. statements[2].sql
  std::string message;  // human-readable, says what to do where it can

  // "missing_field at statements[2].sql: ..." — the form used in DLQ records.
  std::string describe() const;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const Error& error() const { return std::get<1>(state_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

// The outcome of an operation that yields no value (it fills an argument,
// or only checks): ok, or an Error. Truthy when ok, like Result<T>.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

// The one retryable error: a fault that waiting — and, for a lost
// connection, reconnecting — can cure (a server restarting, a serialization
// failure, a broker away). Thrown where it interrupts work deep in a call
// chain; caught by exactly one retry loop per program, which backs off, logs
// once per streak and runs the work again. Never a unit's result, never seen
// by main().
class Transient : public std::runtime_error {
 public:
  enum class Cause {
    refused_for_now,  // the server answered with a passing refusal (40001, 57P03, ...), or Kafka did not answer
    connection_lost,  // the connection broke; what it ran has an unknown outcome until checked
  };
  Transient(Cause cause, const std::string& what) : std::runtime_error(what), cause_(cause) {}
  Cause cause() const { return cause_; }

 private:
  Cause cause_;
};

// Thrown for environment and configuration failures (see the rule above).
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace shadowpipe
