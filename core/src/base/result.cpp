#include "shadowpipe/result.hpp"

namespace shadowpipe {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::malformed: return "malformed";
    case ErrorCode::missing_field: return "missing_field";
    case ErrorCode::wrong_type: return "wrong_type";
    case ErrorCode::unsupported_version: return "unsupported_version";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::invalid_value: return "invalid_value";
    case ErrorCode::sql_syntax: return "sql_syntax";
    case ErrorCode::io: return "io";
  }
  return "unknown";
}

std::string Error::describe() const {
  std::string out(to_string(code));
  if (!field.empty()) {
    out += " at ";
    out += field;
  }
  out += ": ";
  out += message;
  return out;
}

}  // namespace shadowpipe
