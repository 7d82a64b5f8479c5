// Text the capture reads from statements: UnitDrop names, a Query split into its statements, whether a tag wrote, the shadow_key tag, the digest rules.
#include "capture_internal.hpp"

#include "shadowpipe/statement.hpp"
#include "shadowpipe/statement_split.hpp"

#include <cctype>

namespace shadowpipe::proxy {

std::string_view to_string(UnitDrop drop) {
  switch (drop) {
    case UnitDrop::client_gone: return "client_gone";
    case UnitDrop::primary_gone: return "primary_gone";
    case UnitDrop::binary_parameters: return "binary_parameters";
    case UnitDrop::binary_results: return "binary_results";
    case UnitDrop::copy_data: return "copy_data";
    case UnitDrop::function_call: return "function_call";
    case UnitDrop::oversized: return "oversized";
    case UnitDrop::row_limited: return "row_limited";
    case UnitDrop::unmatched: return "unmatched";
    case UnitDrop::queue_full: return "queue_full";
    case UnitDrop::session_state: return "session_state";
  }
  return "unknown";
}

namespace capture_text {

// The statements of a simple Query, in the order the server runs them. A
// text the scanner cannot split is one statement (the server will refuse
// it with the error the client sees).
std::vector<std::string> pieces_of(std::string_view sql) {
  std::vector<std::string> out;
  // Most texts are one statement: no semicolon before the trailing ones, no
  // leading comment. They skip the scanner (on the relay's thread), and are
  // trimmed as split() trims.
  std::string_view one = sql;
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!one.empty() && space(one.front())) one.remove_prefix(1);
  while (!one.empty() && (space(one.back()) || one.back() == ';')) one.remove_suffix(1);
  if (one.find(';') == std::string_view::npos && !one.starts_with("--") && !one.starts_with("/*")) {
    if (!one.empty()) out.emplace_back(one);
    return out;
  }
  auto pieces = statement::split(sql);
  if (!pieces.ok()) {
    out.emplace_back(sql);
    return out;
  }
  out.reserve(pieces->size());
  for (auto& piece : *pieces) out.push_back(std::move(piece.sql));
  return out;
}

// Whether a statement that completed with this tag wrote (conservatively:
// a wrong "yes" only announces a gap that was not one). Tags of statements
// that never write, except SELECT with a data-modifying WITH or INTO.
bool wrote(std::string_view tag, std::string_view sql, bool copy_out) {
  static constexpr std::string_view kReadTags[] = {
      "SELECT", "SHOW", "FETCH", "MOVE", "BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT",
      "RELEASE", "SET", "RESET", "DECLARE CURSOR", "CLOSE CURSOR", "PREPARE", "DEALLOCATE", "DISCARD",
      "LISTEN", "UNLISTEN"};
  if (tag.starts_with("COPY")) return !copy_out;
  bool read = false;
  for (auto candidate : kReadTags) {
    read = read || tag == candidate ||
           (tag.starts_with(candidate) && tag.size() > candidate.size() && tag[candidate.size()] == ' ');
  }
  if (!read) return true;
  if (!tag.starts_with("SELECT")) return false;
  std::string lowered(sql);
  for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view lock : {"for no key update", "for update"}) {
    for (size_t at = lowered.find(lock); at != std::string::npos; at = lowered.find(lock, at)) {
      lowered.replace(at, lock.size(), lock.size(), ' ');
    }
  }
  for (std::string_view verb : {"insert", "update", "delete", "merge", "into", "create"}) {
    if (lowered.find(verb) != std::string::npos) return true;
  }
  return false;
}

// The value of a sqlcommenter-style tag shadow_key='...' in a statement's
// comments (URL-encoded, as sqlcommenter writes values), or empty.
std::string shadow_key_tag(std::string_view sql) {
  static constexpr std::string_view kTag = "shadow_key='";
  const size_t comment = sql.find("/*");
  if (comment == std::string_view::npos) return {};
  const size_t at = sql.find(kTag, comment);
  if (at == std::string_view::npos) return {};
  const size_t end = sql.find('\'', at + kTag.size());
  if (end == std::string_view::npos) return {};
  const std::string_view encoded = sql.substr(at + kTag.size(), end - at - kTag.size());
  std::string key;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size() && std::isxdigit(static_cast<unsigned char>(encoded[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(encoded[i + 2]))) {
      key.push_back(static_cast<char>(std::stoi(std::string(encoded.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      key.push_back(encoded[i]);
    }
  }
  return key;
}

// The recorder's rules for a statement: by its fingerprint only when some
// fingerprint has rules of its own (else no parse on the relay's thread).
const digest::NormalizationRules& rules_for(const digest::NormalizationConfig& normalization, std::string_view sql) {
  if (!normalization.has_overrides()) return normalization.defaults();
  auto analysis = statement::analyze(sql);
  return analysis.ok() ? normalization.for_fingerprint(analysis->fingerprint) : normalization.defaults();
}

}  // namespace capture_text

}  // namespace shadowpipe::proxy
