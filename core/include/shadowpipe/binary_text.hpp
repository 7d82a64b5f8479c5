// Values in the protocol's binary format, as the result digest reads them.
// For the types whose text form is fixed by the value alone (integers, bool,
// floats, strings, bytea, uuid) a binary value is rendered as PostgreSQL
// renders it in text, so it digests exactly as the text value would. Any
// other type (numeric, dates and times, arrays, ...) has no rendering here:
// its text depends on the session or is not trivially the same. A binary
// column of such a type is digested over its binary bytes instead, on both
// sides alike (digest::Column::format 1): shadow-proxy over the bytes it
// relayed, the executor over the bytes the shadow returned when it asked for
// binary results as the primary's client did.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shadowpipe::digest {

// Whether values of this type oid have a text rendering here.
bool renders_binary(uint32_t type_oid);

// The text form of a binary value of that type; nullopt when the type has
// none here or the bytes are not a value of it (wrong length).
std::optional<std::string> binary_to_text(uint32_t type_oid, std::string_view bytes);

// The first OID of objects a database creates (FirstNormalObjectId): below
// it the built-in types, whose OIDs are the same on every server; at or
// above it user types, whose OIDs differ between primary and shadow.
inline constexpr uint32_t kFirstUserOid = 16384;

}  // namespace shadowpipe::digest
