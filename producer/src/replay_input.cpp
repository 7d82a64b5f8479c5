// shadow-replay's input: JSON lines and .sql files parsed into units, each bad line reported with its number.
#include "shadowpipe/replay.hpp"

#include "shadowpipe/statement.hpp"
#include "shadowpipe/statement_split.hpp"

#include <simdjson.h>

#include <cctype>
#include <optional>
#include <string>

namespace shadowpipe::replay {

namespace {

std::string lowercase_first_words(std::string_view sql, size_t words) {
  std::string out;
  size_t taken = 0;
  for (size_t i = 0; i < sql.size() && taken < words; ++i) {
    const unsigned char c = static_cast<unsigned char>(sql[i]);
    if (std::isspace(c)) {
      if (!out.empty() && out.back() != ' ') {
        out.push_back(' ');
        ++taken;
      }
    } else {
      out.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

enum class Control { none, begin, commit, rollback };

// Transaction boundaries written in a .sql file. ROLLBACK TO SAVEPOINT is not
// one: it stays a statement of its transaction.
Control control_of(std::string_view sql) {
  const std::string head = lowercase_first_words(sql, 2);
  auto first_is = [&](std::string_view word) {
    return head == word || head.rfind(std::string(word) + " ", 0) == 0 || head.rfind(std::string(word) + ";", 0) == 0;
  };
  if (first_is("begin") || head.rfind("start transaction", 0) == 0) return Control::begin;
  if (first_is("commit") || first_is("end")) return Control::commit;
  if (first_is("rollback") || first_is("abort")) {
    if (head.rfind("rollback to", 0) == 0) return Control::none;
    return Control::rollback;
  }
  return Control::none;
}

Result<ReplayStatement> parse_line(simdjson::dom::parser& parser, std::string_view line, int number,
                                   std::string& key, std::optional<std::string>& tx) {
  simdjson::dom::element document;
  if (auto error = parser.parse(line.data(), line.size()).get(document)) {
    return Error{ErrorCode::malformed, "", std::string("not JSON: ") + simdjson::error_message(error)};
  }
  simdjson::dom::object object;
  if (document.get(object)) return Error{ErrorCode::wrong_type, "", "a line must be a JSON object"};
  ReplayStatement statement;
  statement.line = number;
  bool has_sql = false;
  for (auto field : object) {
    const std::string_view name = field.key;
    if (name == "sql") {
      std::string_view sql;
      if (field.value.get(sql)) return Error{ErrorCode::wrong_type, "sql", "\"sql\" must be a string"};
      statement.sql.assign(sql);
      has_sql = true;
    } else if (name == "params") {
      simdjson::dom::array params;
      if (field.value.get(params)) return Error{ErrorCode::wrong_type, "params", "\"params\" must be an array"};
      size_t index = 0;
      for (auto param : params) {
        if (param.is_null()) {
          statement.params.emplace_back(std::nullopt);
        } else if (param.is_string()) {
          statement.params.emplace_back(std::string(param.get_string().value()));
        } else if (param.is_number() || param.is_bool()) {
          statement.params.emplace_back(simdjson::minify(param));  // as written: 42, 1.5, true
        } else {
          return Error{ErrorCode::wrong_type, "params[" + std::to_string(index) + "]",
                       "a parameter must be a string, number, boolean or null"};
        }
        ++index;
      }
    } else if (name == "key") {
      std::string_view value;
      if (field.value.get(value)) return Error{ErrorCode::wrong_type, "key", "\"key\" must be a string"};
      key.assign(value);
    } else if (name == "tx") {
      std::string_view value;
      if (field.value.is_int64()) {
        tx = simdjson::minify(field.value);
      } else if (!field.value.get(value)) {
        tx = std::string(value);
      } else {
        return Error{ErrorCode::wrong_type, "tx", "\"tx\" must be a string or an integer"};
      }
    }
    // Other fields are ignored, so richer captures can be replayed as they are.
  }
  if (!has_sql) return Error{ErrorCode::missing_field, "sql", "every line needs \"sql\""};
  return statement;
}

// A statement the PostgreSQL parser refuses is reported here, with its line,
// instead of failing on the primary and being dropped by the recorder.
std::optional<std::string> refusal(statement::Analyzer& analyzer, const std::string& sql) {
  auto analysis = analyzer.analyze(sql);
  if (!analysis.ok()) return analysis.error().message;
  if (analysis->statement_count != 1) return "one statement per line (found " + std::to_string(analysis->statement_count) + ")";
  return std::nullopt;
}

}  // namespace

ParsedInput parse_json_lines(std::string_view text, const std::string& default_key) {
  ParsedInput out;
  simdjson::dom::parser parser;
  statement::Analyzer analyzer;
  std::optional<std::string> open_tx;  // the group id of the transaction being collected
  int number = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++out.lines;
    std::string key;
    std::optional<std::string> tx;
    auto statement = parse_line(parser, line, number, key, tx);
    if (!statement.ok()) {
      out.bad.push_back({number, statement.error().describe()});
      continue;
    }
    if (auto why = refusal(analyzer, statement->sql)) {
      out.bad.push_back({number, "sql does not parse: " + *why});
      continue;
    }
    const bool continues = tx && open_tx && *tx == *open_tx && !out.units.empty();
    if (!continues) {
      ReplayUnit& unit = out.units.emplace_back();
      unit.key = key.empty() ? default_key : key;
      unit.transaction = tx.has_value();
      unit.line = number;
    }
    out.units.back().statements.push_back(std::move(statement).value());
    open_tx = tx;
  }
  return out;
}

ParsedInput parse_sql(std::string_view text, const std::string& default_key) {
  ParsedInput out;
  auto pieces = statement::split(text);
  if (!pieces.ok()) {
    out.bad.push_back({0, pieces.error().describe()});
    return out;
  }
  statement::Analyzer analyzer;
  std::optional<ReplayUnit> open;  // between BEGIN and COMMIT/ROLLBACK
  for (auto& piece : *pieces) {
    ++out.lines;
    const Control control = control_of(piece.sql);
    if (control == Control::begin) {
      if (open) out.bad.push_back({piece.line, "BEGIN inside a transaction begun at line " + std::to_string(open->line) + " (ignored)"});
      else open = ReplayUnit{default_key, true, false, {}, piece.line};
      continue;
    }
    if (control == Control::commit || control == Control::rollback) {
      if (!open) {
        out.bad.push_back({piece.line, "COMMIT or ROLLBACK without BEGIN (ignored)"});
        continue;
      }
      open->ends_in_rollback = control == Control::rollback;
      if (!open->statements.empty()) out.units.push_back(std::move(*open));
      open.reset();
      continue;
    }
    if (auto why = refusal(analyzer, piece.sql)) {
      out.bad.push_back({piece.line, "sql does not parse: " + *why});
      continue;
    }
    ReplayStatement statement{std::move(piece.sql), {}, piece.line};
    if (open) {
      open->statements.push_back(std::move(statement));
    } else {
      out.units.push_back(ReplayUnit{default_key, false, false, {}, piece.line});
      out.units.back().statements.push_back(std::move(statement));
    }
  }
  if (open) {
    out.bad.push_back({open->line, "transaction begun here never ends (not run)"});
  }
  return out;
}

}  // namespace shadowpipe::replay
