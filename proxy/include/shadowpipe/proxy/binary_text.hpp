// Values a client sent or asked for in binary format, rendered as PostgreSQL
// renders them in text, for the types whose text form is fixed by the value
// alone (integers, bool, floats, strings, bytea, uuid). The wire record and
// the digest are in text; for any other type (numeric, dates and times, whose
// text depends on the session or is not trivially the same) there is no
// rendering, and the statement is announced as not recordable instead of
// recorded wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shadowpipe::proxy {

// Whether values of this type oid have a text rendering here.
bool renders_binary(uint32_t type_oid);

// The text form of a binary value of that type; nullopt when the type has
// none here or the bytes are not a value of it (wrong length).
std::optional<std::string> binary_to_text(uint32_t type_oid, std::string_view bytes);

}  // namespace shadowpipe::proxy
