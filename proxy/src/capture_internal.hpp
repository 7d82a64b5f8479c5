// What the parts of SessionCapture share: the Execution of a statement and the text helpers (statement pieces, writes, keys, rules).
#pragma once

#include "shadowpipe/proxy/capture.hpp"
#include "shadowpipe/proxy/protocol.hpp"

#include <cstdlib>

namespace shadowpipe::proxy {

// SHADOW_PROXY_TRACE=1: every message's type and each drop's reason on
// stderr, to find where the capture lost its place with a new driver.
inline const bool kTrace = std::getenv("SHADOW_PROXY_TRACE") != nullptr;

// One statement on its way through the server: the rows are digested as
// they pass, nothing of them is kept.
struct SessionCapture::Execution {
  std::string sql;
  std::vector<std::optional<std::string>> params;
  std::vector<digest::Column> columns;
  std::vector<int16_t> formats;  // per column: 0 text, 1 binary (rendered as text for the digest where it can be)
  wire::Binding binding;         // result_format 1: binary columns without a rendering digested over their bytes
  std::optional<std::string> copy_data;  // a COPY FROM STDIN under way: what the client sent so far
  bool described = false;  // columns known (RowDescription seen, or from a Describe)
  std::unique_ptr<digest::DigestBuilder> builder;
  std::vector<std::optional<std::string_view>> row;
  std::vector<std::string> rendered;  // text of this row's binary values
  Clock::time_point start;
  std::optional<UnitDrop> problem;
};

namespace capture_text {

using protocol::Reader;

inline int64_t micros(SessionCapture::Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

// The statements of a simple Query, in the order the server runs them. A
// text the scanner cannot split is one statement (the server will refuse
// it with the error the client sees).
std::vector<std::string> pieces_of(std::string_view sql);

// Whether a statement that completed with this tag wrote (conservatively:
// a wrong "yes" only announces a gap that was not one).
bool wrote(std::string_view tag, std::string_view sql, bool copy_out);

// The value of a sqlcommenter-style tag shadow_key='...' in a statement's
// comments (URL-encoded, as sqlcommenter writes values), or empty.
std::string shadow_key_tag(std::string_view sql);

// The recorder's rules for a statement: by its fingerprint only when some
// fingerprint has rules of its own (else no parse on the relay's thread).
const digest::NormalizationRules& rules_for(const digest::NormalizationConfig& normalization, std::string_view sql);

}  // namespace capture_text

}  // namespace shadowpipe::proxy
