// The limits every fuzz target decodes with: the defaults, and tight ones so
// the too_large paths are reached by small inputs too.
#pragma once

#include "shadowpipe/wire.hpp"

#include <array>

namespace shadowpipe::wire::fuzzing {

inline const std::array<Limits, 2>& fuzz_limits() {
  static const std::array<Limits, 2> limits = [] {
    Limits tight;
    tight.max_sql_bytes = 64;
    tight.max_params = 3;
    tight.max_param_bytes = 16;
    tight.max_statements = 2;
    tight.max_string_bytes = 32;
    tight.max_columns = 2;
    return std::array<Limits, 2>{Limits{}, tight};
  }();
  return limits;
}

}  // namespace shadowpipe::wire::fuzzing
