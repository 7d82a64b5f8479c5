#include "shadowpipe/statement_split.hpp"

#include <pg_query.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace shadowpipe::statement {

namespace {
struct SplitResultDeleter {
  void operator()(PgQuerySplitResult* result) const noexcept {
    pg_query_free_split_result(*result);
    delete result;
  }
};

int line_at(std::string_view text, size_t offset) {
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

// Leading whitespace and comments are not part of a statement; a piece made
// only of them is empty.
size_t skip_space_and_comments(std::string_view text, size_t at, size_t end) {
  while (at < end) {
    const char c = text[at];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++at;
    } else if (c == '-' && at + 1 < end && text[at + 1] == '-') {
      const size_t newline = text.find('\n', at);
      at = newline == std::string_view::npos || newline >= end ? end : newline + 1;
    } else if (c == '/' && at + 1 < end && text[at + 1] == '*') {
      const size_t close = text.find("*/", at + 2);  // the scanner already vetted nesting
      at = close == std::string_view::npos || close + 2 > end ? end : close + 2;
    } else {
      break;
    }
  }
  return at;
}
}  // namespace

Result<std::vector<Piece>> split(std::string_view text) {
  const std::string terminated(text);  // libpg_query reads a NUL-terminated string
  std::unique_ptr<PgQuerySplitResult, SplitResultDeleter> result(
      new PgQuerySplitResult(pg_query_split_with_scanner(terminated.c_str())));
  if (result->error) {
    const size_t cursor = result->error->cursorpos > 0 ? static_cast<size_t>(result->error->cursorpos - 1) : 0;
    return Error{ErrorCode::sql_syntax, "",
                 std::string(result->error->message) + " at line " +
                     std::to_string(line_at(text, std::min(cursor, text.size())))};
  }
  std::vector<Piece> pieces;
  auto add_piece = [&](size_t begin, size_t end) {
    const size_t first = skip_space_and_comments(text, begin, end);
    while (end > first && (text[end - 1] == ';' || std::isspace(static_cast<unsigned char>(text[end - 1])))) --end;
    if (first >= end) return;
    pieces.push_back(Piece{std::string(text.substr(first, end - first)), first, line_at(text, first)});
  };
  // The scanner leaves out any stretch without a keyword ("SELEC x;", a bare
  // 'literal';). Such text is still a statement the user wrote; it is kept,
  // split at its semicolons, so the caller can report it instead of losing it.
  auto add_gap = [&](size_t begin, size_t end) {
    while (begin < end) {
      size_t semicolon = text.find(';', begin);
      if (semicolon == std::string_view::npos || semicolon >= end) semicolon = end;
      add_piece(begin, semicolon);
      begin = semicolon + 1;
    }
  };
  size_t cursor = 0;
  for (int i = 0; i < result->n_stmts; ++i) {
    const auto* statement = result->stmts[i];
    const size_t begin = std::min(static_cast<size_t>(statement->stmt_location), text.size());
    // stmt_len 0 means "to the end of the text" (a last statement without ';').
    size_t end = statement->stmt_len == 0 ? text.size() : begin + static_cast<size_t>(statement->stmt_len);
    end = std::min(end, text.size());
    if (begin > cursor) add_gap(cursor, begin);
    add_piece(begin, end);
    cursor = std::max(cursor, end);
  }
  if (cursor < text.size()) add_gap(cursor, text.size());
  return pieces;
}

}  // namespace shadowpipe::statement
