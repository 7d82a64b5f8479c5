// Splitting SQL text into statements with PostgreSQL's own scanner
// (libpg_query), so semicolons inside quotes, dollar quotes, identifiers and
// comments never split a statement. Used by shadow-replay for .sql files.
#pragma once

#include "shadowpipe/result.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::statement {

struct Piece {
  std::string sql;    // the statement, without its terminating semicolon, trimmed
  size_t offset = 0;  // byte offset of its first character in the text
  int line = 1;       // 1-based line of its first character
};

// Statements in order; empty statements (";;", comments only) are left out.
// An Error with code sql_syntax when the scanner cannot tokenize the text
// (an unterminated quote, for example), naming the line.
Result<std::vector<Piece>> split(std::string_view text);

}  // namespace shadowpipe::statement
