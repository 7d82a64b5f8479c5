// Decoding of the wire records with simdjson's on-demand API. Each object is
// walked once, in whatever order its members come, switching on the key;
// unknown members are checked to be valid JSON and otherwise ignored. Every
// failure is a typed Error naming the JSON path of the field at fault.
#include "shadowpipe/wire.hpp"

#include "base64.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>

namespace shadowpipe::wire {
namespace {

namespace od = simdjson::ondemand;

// A JSON path kept on the stack while the decoder descends; turned into text
// only when there is an error to report.
struct Path {
  const Path* parent = nullptr;
  std::string_view name;  // member name; empty for an array element
  size_t index = 0;
  bool is_element = false;

  Path member(std::string_view member_name) const { return Path{this, member_name, 0, false}; }
  Path element(size_t element_index) const { return Path{this, {}, element_index, true}; }

  std::string render() const {
    std::vector<const Path*> chain;
    for (const Path* at = this; at != nullptr; at = at->parent) chain.push_back(at);
    std::string out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const Path& part = **it;
      if (part.is_element) {
        out += '[';
        out += std::to_string(part.index);
        out += ']';
      } else if (!part.name.empty()) {
        if (!out.empty()) out += '.';
        out += shortened(part.name);
      }
    }
    return out;
  }

 private:
  // Member names come from the input; a hostile one must not bloat error
  // texts and DLQ records. Cuts on a UTF-8 character boundary (input is
  // valid UTF-8: simdjson validated it).
  static std::string shortened(std::string_view name) {
    constexpr size_t kMaxShown = 64;
    if (name.size() <= kMaxShown) return std::string(name);
    size_t cut = kMaxShown;
    while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
    return std::string(name.substr(0, cut)) + "...";
  }
};

// Unknown members are walked to prove they are JSON; deeper nesting than any
// record of ours has is refused rather than recursed into.
constexpr int kMaxUnknownDepth = 64;

struct Decoder {
  const Limits& limits;
  Error error;

  bool fail(ErrorCode code, const Path& path, std::string message) {
    error = Error{code, path.render(), std::move(message)};
    return false;
  }

  bool fail(simdjson::error_code code, const Path& path, std::string_view expected) {
    switch (code) {
      case simdjson::INCORRECT_TYPE:
        return fail(ErrorCode::wrong_type, path, "expected " + std::string(expected));
      case simdjson::NUMBER_OUT_OF_RANGE:
        return fail(ErrorCode::invalid_value, path, "number out of range, expected " + std::string(expected));
      default:
        return fail(ErrorCode::malformed, path, std::string("not valid JSON: ") + simdjson::error_message(code));
    }
  }

  bool too_large(const Path& path, size_t size, size_t limit, std::string_view unit) {
    return fail(ErrorCode::too_large, path,
                std::to_string(size) + " " + std::string(unit) + ", over the limit of " + std::to_string(limit));
  }
};

// The key of a member without copying it when it has no escapes (the common case).
bool read_key(Decoder& decoder, od::field& field, const Path& path, std::string_view& key) {
  const char* begin = field.key().raw();
  const char* end = begin;
  // Safe: simdjson found the closing quote when it indexed the document.
  while (*end != '"' && *end != '\\') ++end;
  if (*end == '"') {
    key = std::string_view(begin, static_cast<size_t>(end - begin));
    return true;
  }
  if (auto code = field.unescaped_key().get(key)) return decoder.fail(code, path, "a member name");
  return true;
}

bool check_unknown(Decoder& decoder, od::value& value, const Path& path, int depth);

template <class OnMember>
bool for_each_member(Decoder& decoder, od::object& object, const Path& path, OnMember&& on_member) {
  for (auto member : object) {
    if (auto code = member.error()) return decoder.fail(code, path, "an object");
    od::field& field = member.value_unsafe();
    std::string_view key;
    if (!read_key(decoder, field, path, key)) return false;
    if (!on_member(key, field.value())) return false;
  }
  return true;
}

bool check_unknown(Decoder& decoder, od::value& value, const Path& path, int depth) {
  // Whatever goes wrong in a member nobody reads, the record is simply not JSON.
  auto not_json = [&](simdjson::error_code code) {
    return decoder.fail(ErrorCode::malformed, path, std::string("not valid JSON: ") + simdjson::error_message(code));
  };
  if (depth > kMaxUnknownDepth) {
    return decoder.fail(ErrorCode::malformed, path, "nested deeper than " + std::to_string(kMaxUnknownDepth) + " levels");
  }
  od::json_type type;
  if (auto code = value.type().get(type)) return not_json(code);
  switch (type) {
    case od::json_type::object: {
      od::object object;
      if (auto code = value.get_object().get(object)) return not_json(code);
      return for_each_member(decoder, object, path, [&](std::string_view key, od::value& member) {
        return check_unknown(decoder, member, path.member(key), depth + 1);
      });
    }
    case od::json_type::array: {
      od::array array;
      if (auto code = value.get_array().get(array)) return not_json(code);
      size_t index = 0;
      for (auto element : array) {
        od::value item;
        if (auto code = std::move(element).get(item)) return decoder.fail(code, path.element(index), "a JSON value");
        if (!check_unknown(decoder, item, path.element(index), depth + 1)) return false;
        ++index;
      }
      return true;
    }
    case od::json_type::number: {
      od::number number;
      if (auto code = value.get_number().get(number)) return not_json(code);
      return true;
    }
    case od::json_type::string: {
      std::string_view text;
      if (auto code = value.get_string().get(text)) return not_json(code);
      return true;
    }
    case od::json_type::boolean: {
      bool flag;
      if (auto code = value.get_bool().get(flag)) return not_json(code);
      return true;
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto code = value.is_null().get(is_null)) return not_json(code);
      if (!is_null) return not_json(simdjson::N_ATOM_ERROR);
      return true;
    }
  }
  return not_json(simdjson::TAPE_ERROR);
}

// The members an object may have: index in `names` is the member's number in
// the caller's switch; required members are a bit mask over those numbers.
// A member name with its closing quote, as little-endian words and masks, so
// a raw key in the input is compared a word at a time (see raw_key_is).
struct RawName {
  static constexpr size_t kWords = 4;  // names up to 31 bytes
  uint64_t words[kWords] = {};
  uint64_t masks[kWords] = {};
  size_t count = 0;  // words used
};

constexpr RawName raw_name(std::string_view name) {
  RawName raw;
  const size_t bytes = name.size() + 1;  // the closing quote is compared too
  raw.count = (bytes + 7) / 8;
  for (size_t j = 0; j < bytes; ++j) {
    const auto byte = static_cast<uint64_t>(static_cast<unsigned char>(j < name.size() ? name[j] : '"'));
    raw.words[j / 8] |= byte << (8 * (j % 8));
    raw.masks[j / 8] |= uint64_t{0xFF} << (8 * (j % 8));
  }
  return raw;
}

template <size_t N>
constexpr std::array<RawName, N> raw_names(const std::string_view (&names)[N]) {
  std::array<RawName, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = raw_name(names[i]);
  return out;
}

struct Shape {
  const std::string_view* names;
  const RawName* raw;
  size_t count;
  uint64_t required;

  int find(std::string_view key) const {
    for (size_t i = 0; i < count; ++i) {
      if (names[i] == key) return static_cast<int>(i);
    }
    return -1;
  }
};

template <const auto& kNames>
Shape shape(uint64_t required) {
  static constexpr size_t kCount = std::size(kNames);
  static_assert(kCount <= 64);
  static constexpr std::array<RawName, kCount> kRaw = raw_names(kNames);
  static_assert([] {
    for (const auto& name : kNames) {
      if (name.size() + 1 > 8 * RawName::kWords) return false;
    }
    return true;
  }(), "member names are at most 31 bytes");
  return Shape{kNames, kRaw.data(), kCount, required};
}

constexpr uint64_t all_of(size_t count) { return count == 64 ? ~0ULL : (1ULL << count) - 1; }
constexpr uint64_t bit(int index) { return 1ULL << index; }

// Whether the raw (still escaped) key in the padded document is exactly
// `name`. Names have no quote or backslash, so a byte match followed by the
// closing quote is equality; the read stays inside the padding.
// Compared a word at a time, without a branch per byte: the 8-byte loads
// may run past the key into the rest of the document or its padding, which
// is at least SIMDJSON_PADDING (64) bytes, more than a name's 32.
bool raw_key_is(const char* raw, const RawName& name) {
  if constexpr (std::endian::native == std::endian::little) {
    uint64_t differ = 0;
    for (size_t i = 0; i < name.count; ++i) {
      uint64_t word;
      std::memcpy(&word, raw + 8 * i, sizeof word);
      differ |= (word ^ name.words[i]) & name.masks[i];
    }
    return differ == 0;
  } else {
    for (size_t j = 0; j < 8 * name.count; ++j) {
      const auto want = static_cast<unsigned char>(name.words[j / 8] >> (8 * (j % 8)));
      if (((name.masks[j / 8] >> (8 * (j % 8))) & 0xFF) != 0 && static_cast<unsigned char>(raw[j]) != want) return false;
    }
    return true;
  }
}

// Walks an object once: known members go to on_known(number, value, path),
// unknown ones are checked and skipped, duplicates and missing required
// members are errors. Writers emit members in the shape's order, so the
// member after the previous one is tried first, without reading the key.
template <class OnKnown>
bool read_object(Decoder& decoder, od::value& value, const Path& path, const Shape& shape, OnKnown&& on_known) {
  od::object object;
  if (auto code = value.get_object().get(object)) return decoder.fail(code, path, "an object");
  uint64_t seen = 0;
  size_t expected = 0;
  for (auto entry : object) {
    if (auto code = entry.error()) return decoder.fail(code, path, "an object");
    od::field& field = entry.value_unsafe();  // by reference: copying a field costs a store-forwarding stall
    int number = -1;
    if (expected < shape.count && raw_key_is(field.key().raw(), shape.raw[expected])) {
      number = static_cast<int>(expected);
    } else {
      std::string_view key;
      if (!read_key(decoder, field, path, key)) return false;
      number = shape.find(key);
      if (number < 0) {
        if (!check_unknown(decoder, field.value(), path.member(key), 1)) return false;
        continue;
      }
    }
    expected = static_cast<size_t>(number) + 1;
    const Path member_path = path.member(shape.names[number]);
    if (seen & bit(number)) return decoder.fail(ErrorCode::malformed, member_path, "member appears twice");
    seen |= bit(number);
    if (!on_known(number, field.value(), member_path)) return false;
  }
  if (const uint64_t missing = shape.required & ~seen) {
    return decoder.fail(ErrorCode::missing_field, path.member(shape.names[__builtin_ctzll(missing)]),
                        "required member is absent");
  }
  return true;
}

template <class OnElement>
bool read_array(Decoder& decoder, od::value& value, const Path& path, size_t max_count, std::string_view unit,
                OnElement&& on_element) {
  od::array array;
  if (auto code = value.get_array().get(array)) return decoder.fail(code, path, "an array");
  size_t index = 0;
  for (auto element : array) {
    if (index == max_count) return decoder.fail(ErrorCode::too_large, path, "more than " + std::to_string(max_count) + " " + std::string(unit));
    if (auto code = element.error()) return decoder.fail(code, path.element(index), "an array element");
    od::value& item = element.value_unsafe();
    if (!on_element(item, path.element(index))) return false;
    ++index;
  }
  return true;
}

// The element slot `index` of `items`: an existing element is reused (its
// strings and vectors keep their capacity), past the end one is added.
template <class T>
T& slot(std::vector<T>& items, size_t index) {
  if (index < items.size()) return items[index];
  return items.emplace_back();
}

// read_array into a vector whose old elements are reused: on_element(item,
// path, element) fills element in place; the vector ends with exactly the
// array's elements.
template <class T, class OnElement>
bool read_array_into(Decoder& decoder, od::value& value, const Path& path, size_t max_count, std::string_view unit,
                     std::vector<T>& out, OnElement&& on_element) {
  size_t count = 0;
  const bool ok = read_array(decoder, value, path, max_count, unit, [&](od::value& item, const Path& item_path) {
    return on_element(item, item_path, slot(out, count++));
  });
  if (ok && out.size() > count) out.resize(count);
  return ok;
}

// The text of a string value with no escape in it, read straight from the
// input: `raw` is the value's token as simdjson indexed it (the opening quote
// up to the next structural character). nullopt when the value is not a
// string or has an escape; the caller then reads it the usual way, which
// unescapes or reports the error. Stage 1 has already validated the bytes
// as UTF-8 and found the closing quote, so no byte needs looking at twice.
std::optional<std::string_view> plain_string(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"') return std::nullopt;
  size_t end = raw.size() - 1;
  while (raw[end] != '"') --end;  // trailing whitespace; stops at the opening quote at worst
  if (end == 0) return std::nullopt;
  const std::string_view text = raw.substr(1, end - 1);
  if (std::memchr(text.data(), '\\', text.size()) != nullptr) return std::nullopt;
  return text;
}

// Moves past a string value whose text plain_string took.
bool skip_plain_string(od::value& value) {
  od::raw_json_string ignored;
  return value.get_raw_json_string().get(ignored) == simdjson::SUCCESS;
}

bool read_string(Decoder& decoder, od::value& value, const Path& path, size_t max_bytes, std::string& out) {
  if (const auto text = plain_string(value.raw_json_token())) {
    if (text->size() > max_bytes) return decoder.too_large(path, text->size(), max_bytes, "bytes");
    out.assign(*text);
    if (skip_plain_string(value)) return true;
  }
  std::string_view text;
  if (auto code = value.get_string().get(text)) return decoder.fail(code, path, "a string");
  if (text.size() > max_bytes) return decoder.too_large(path, text.size(), max_bytes, "bytes");
  out.assign(text);
  return true;
}

bool read_text(Decoder& decoder, od::value& value, const Path& path, std::string& out) {
  return read_string(decoder, value, path, decoder.limits.max_string_bytes, out);
}

bool read_nonempty_text(Decoder& decoder, od::value& value, const Path& path, std::string& out) {
  if (!read_text(decoder, value, path, out)) return false;
  if (out.empty()) return decoder.fail(ErrorCode::invalid_value, path, "must not be empty");
  return true;
}

bool read_int(Decoder& decoder, od::value& value, const Path& path, int64_t min, int64_t max, int64_t& out) {
  if (auto code = value.get_int64().get(out)) {
    // A failed get leaves the value unread, so a second look can tell "too big" from "not an integer".
    uint64_t above = 0;
    if (code == simdjson::INCORRECT_TYPE && value.get_uint64().get(above) == simdjson::SUCCESS) {
      return decoder.fail(ErrorCode::invalid_value, path, std::to_string(above) + " is above " + std::to_string(max));
    }
    return decoder.fail(code, path, "an integer");
  }
  if (out < min || out > max) {
    return decoder.fail(ErrorCode::invalid_value, path,
                        std::to_string(out) + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  }
  return true;
}

template <class Int>
bool read_int_as(Decoder& decoder, od::value& value, const Path& path, int64_t min, Int& out) {
  int64_t wide = 0;
  if (!read_int(decoder, value, path, min, std::numeric_limits<Int>::max(), wide)) return false;
  out = static_cast<Int>(wide);
  return true;
}

bool read_uint(Decoder& decoder, od::value& value, const Path& path, uint64_t& out) {
  if (auto code = value.get_uint64().get(out)) {
    int64_t negative = 0;
    if (code == simdjson::INCORRECT_TYPE && value.get_int64().get(negative) == simdjson::SUCCESS) {
      return decoder.fail(ErrorCode::invalid_value, path, "must not be negative");
    }
    return decoder.fail(code, path, "an unsigned integer");
  }
  return true;
}

bool read_nonnegative_number(Decoder& decoder, od::value& value, const Path& path, double& out) {
  if (auto code = value.get_double().get(out)) return decoder.fail(code, path, "a number");
  if (!(out >= 0)) return decoder.fail(ErrorCode::invalid_value, path, "must not be negative");
  return true;
}

bool read_bool(Decoder& decoder, od::value& value, const Path& path, bool& out) {
  if (auto code = value.get_bool().get(out)) return decoder.fail(code, path, "true or false");
  return true;
}

// Value of each byte as a lowercase hex digit, 0xFF for every other byte.
constexpr std::array<uint8_t, 256> kHexDigit = [] {
  std::array<uint8_t, 256> table{};
  for (auto& entry : table) entry = 0xFF;
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[static_cast<size_t>(c)] = static_cast<uint8_t>(c - 'a' + 10);
  return table;
}();

// 16 lowercase hex digits to their value, without a branch per digit: the
// digits are looked up, any invalid one shows in the OR of the lookups.
bool parse_lower_hex16(std::string_view text, uint64_t& out) {
  if (text.size() != 16) return false;
  uint64_t high = 0, low = 0;  // two independent chains
  unsigned invalid = 0;
  for (size_t i = 0; i < 8; ++i) {
    const uint8_t a = kHexDigit[static_cast<uint8_t>(text[i])];
    const uint8_t b = kHexDigit[static_cast<uint8_t>(text[i + 8])];
    invalid |= a | b;
    high = (high << 4) | (a & 0xF);
    low = (low << 4) | (b & 0xF);
  }
  if (invalid & 0xF0) return false;
  out = (high << 32) | low;
  return true;
}

bool is_lower_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool read_digest(Decoder& decoder, od::value& value, const Path& path, uint64_t& out) {
  // The common case, "<16 hex digits>", straight from the input.
  const std::string_view raw = value.raw_json_token();
  if (raw.size() >= 18 && raw[0] == '"' && raw[17] == '"' && parse_lower_hex16(raw.substr(1, 16), out) &&
      skip_plain_string(value)) {
    return true;
  }
  std::string_view text;
  if (auto code = value.get_string().get(text)) return decoder.fail(code, path, "a string of 16 hex digits");
  if (!parse_lower_hex16(text, out)) return decoder.fail(ErrorCode::invalid_value, path, "expected 16 lowercase hex digits");
  return true;
}

// A statement fingerprint: 16 lowercase hex digits, or empty when none was taken.
bool read_fingerprint(Decoder& decoder, od::value& value, const Path& path, std::string& out) {
  if (!read_text(decoder, value, path, out)) return false;
  if (!out.empty() && !(out.size() == 16 && is_lower_hex(out))) {
    return decoder.fail(ErrorCode::invalid_value, path, "expected 16 lowercase hex digits or an empty string");
  }
  return true;
}

bool read_sqlstate(Decoder& decoder, od::value& value, const Path& path, std::string& out) {
  if (!read_text(decoder, value, path, out)) return false;
  bool valid = out.empty() || out.size() == 5;
  for (char c : out) valid = valid && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'));
  if (!valid) return decoder.fail(ErrorCode::invalid_value, path, "expected 5 characters [0-9A-Z] or an empty string");
  return true;
}

template <class Enum, size_t N>
bool read_enum(Decoder& decoder, od::value& value, const Path& path, const std::pair<std::string_view, Enum> (&domain)[N],
               Enum& out) {
  std::string_view text;
  if (auto code = value.get_string().get(text)) return decoder.fail(code, path, "a string");
  for (const auto& [name, member] : domain) {
    if (name == text) {
      out = member;
      return true;
    }
  }
  std::string expected;
  for (const auto& [name, member] : domain) expected += (expected.empty() ? "" : ", ") + std::string(name);
  return decoder.fail(ErrorCode::invalid_value, path, "expected one of " + expected);
}

constexpr std::pair<std::string_view, Status> kStatuses[] = {
    {"ok", Status::ok}, {"error", Status::error}, {"refused", Status::refused}};
constexpr std::pair<std::string_view, TxMode> kTxModes[] = {
    {"autocommit", TxMode::autocommit}, {"commit", TxMode::commit}, {"rollback", TxMode::rollback}};

bool read_strings(Decoder& decoder, od::value& value, const Path& path, size_t max_count, std::vector<std::string>& out) {
  return read_array_into(decoder, value, path, max_count, "entries", out,
                         [&](od::value& item, const Path& item_path, std::string& entry) {
                           return read_text(decoder, item, item_path, entry);
                         });
}

bool read_params(Decoder& decoder, od::value& value, const Path& path, std::vector<std::optional<std::string>>& out) {
  const Limits& limits = decoder.limits;
  return read_array_into(decoder, value, path, limits.max_params, "parameters", out,
                         [&](od::value& item, const Path& item_path, std::optional<std::string>& param) {
    od::json_type type;
    if (auto code = item.type().get(type)) return decoder.fail(code, item_path, "a string or null");
    if (type == od::json_type::null) {
      param.reset();
      bool is_null = false;
      if (auto code = item.is_null().get(is_null)) return decoder.fail(code, item_path, "a string or null");
      if (!is_null) return decoder.fail(ErrorCode::malformed, item_path, "not valid JSON: bad literal");
      return true;
    }
    if (!param) param.emplace();  // a reused string keeps its capacity
    return read_string(decoder, item, item_path, limits.max_param_bytes, *param);
  });
}

// A protocol format code: 0 text, 1 binary.
bool read_format(Decoder& decoder, od::value& value, const Path& path, int16_t& out) {
  int64_t code = 0;
  if (!read_int(decoder, value, path, 0, 1, code)) return false;
  out = static_cast<int16_t>(code);
  return true;
}

constexpr std::string_view kColumnMembers[] = {"name", "type", "type_name", "format"};

bool read_columns(Decoder& decoder, od::value& value, const Path& path, std::vector<digest::Column>& out) {
  return read_array_into(decoder, value, path, decoder.limits.max_columns, "columns", out,
                         [&](od::value& item, const Path& item_path, digest::Column& column) {
    column.type_name.clear();  // optional: a reused element must not keep an old name
    column.format = 0;
    return read_object(decoder, item, item_path, shape<kColumnMembers>(all_of(2)), [&](int number, od::value& member, const Path& at) {
      if (number == 0) return read_text(decoder, member, at, column.name);
      if (number == 2) return read_text(decoder, member, at, column.type_name);
      if (number == 3) return read_format(decoder, member, at, column.format);
      return read_int_as(decoder, member, at, 0, column.type_oid);
    });
  });
}

constexpr std::string_view kDigestMembers[] = {"ordered", "unordered", "columns", "ordered_columns", "value_columns"};

bool read_digests(Decoder& decoder, od::value& value, const Path& path, StatementResult& out) {
  out.column_ordered.clear();  // optional members
  out.column_values.clear();
  return read_object(decoder, value, path, shape<kDigestMembers>(all_of(3)), [&](int number, od::value& member, const Path& at) {
    const auto digest_array = [&](std::vector<uint64_t>& into) {
      return read_array_into(decoder, member, at, decoder.limits.max_columns, "column digests", into,
                             [&](od::value& item, const Path& item_path, uint64_t& digest) {
                               return read_digest(decoder, item, item_path, digest);
                             });
    };
    switch (number) {
      case 0: return read_digest(decoder, member, at, out.ordered);
      case 1: return read_digest(decoder, member, at, out.unordered);
      case 2: return digest_array(out.column_digests);
      case 3: return digest_array(out.column_ordered);
      default: return digest_array(out.column_values);
    }
  });
}

constexpr std::string_view kVolatileColumnMembers[] = {"column", "reason"};

bool read_volatile_columns(Decoder& decoder, od::value& value, const Path& path, std::vector<VolatileColumn>& out) {
  return read_array_into(decoder, value, path, decoder.limits.max_columns, "volatile columns", out,
                         [&](od::value& item, const Path& item_path, VolatileColumn& column) {
    return read_object(decoder, item, item_path, shape<kVolatileColumnMembers>(all_of(2)),
                       [&](int number, od::value& member, const Path& at) {
                         if (number == 0) return read_int_as(decoder, member, at, 0, column.index);
                         return read_text(decoder, member, at, column.reason);
                       });
  });
}

constexpr std::string_view kResultMembers[] = {"status",     "sqlstate",         "message",
                                               "rows",       "columns",          "digests",
                                               "latency_us", "volatile_columns", "volatile_statement",
                                               "order_total"};

bool read_result(Decoder& decoder, od::value& value, const Path& path, StatementResult& out) {
  constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
  out.volatile_columns.clear();  // optional members
  out.volatile_statement.clear();
  out.order_total.reset();
  const bool ok = read_object(decoder, value, path, shape<kResultMembers>(all_of(7)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_enum(decoder, member, at, kStatuses, out.status);
      case 1: return read_sqlstate(decoder, member, at, out.sqlstate);
      case 2: return read_text(decoder, member, at, out.message);
      case 3: return read_int(decoder, member, at, 0, kMaxInt, out.rows);
      case 4: return read_columns(decoder, member, at, out.columns);
      case 5: return read_digests(decoder, member, at, out);
      case 6: return read_int(decoder, member, at, 0, kMaxInt, out.latency_us);
      case 7: return read_volatile_columns(decoder, member, at, out.volatile_columns);
      case 8: return read_text(decoder, member, at, out.volatile_statement);
      default: return read_bool(decoder, member, at, out.order_total.emplace());
    }
  });
  if (!ok) return false;
  const auto parallel = [&](const std::vector<uint64_t>& digests, std::string_view member, bool optional) {
    if (digests.size() == out.columns.size() || (optional && digests.empty())) return true;
    return decoder.fail(ErrorCode::invalid_value, path.member("digests").member(member),
                        std::to_string(digests.size()) + " column digests for " +
                            std::to_string(out.columns.size()) + " columns; there is one per column");
  };
  if (!parallel(out.column_digests, "columns", false) || !parallel(out.column_ordered, "ordered_columns", true) ||
      !parallel(out.column_values, "value_columns", true)) {
    return false;
  }
  for (const auto& column : out.volatile_columns) {
    if (column.index >= out.columns.size()) {
      return decoder.fail(ErrorCode::invalid_value, path.member("volatile_columns"),
                          "column " + std::to_string(column.index) + " of " + std::to_string(out.columns.size()));
    }
  }
  return true;
}

constexpr std::string_view kPlanMembers[] = {"node_types", "seq_scans", "total_cost", "plan_rows"};

bool read_plan(Decoder& decoder, od::value& value, const Path& path, std::optional<PlanSummary>& out) {
  auto& plan = out.emplace();
  const size_t max_nodes = decoder.limits.max_record_bytes;  // bounded by the record itself
  return read_object(decoder, value, path, shape<kPlanMembers>(all_of(4)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_strings(decoder, member, at, max_nodes, plan.node_types);
      case 1: return read_strings(decoder, member, at, max_nodes, plan.seq_scans);
      case 2: return read_nonnegative_number(decoder, member, at, plan.total_cost);
      default: return read_nonnegative_number(decoder, member, at, plan.plan_rows);
    }
  });
}

Error unsupported_version(int64_t version, int64_t highest) {
  return Error{ErrorCode::unsupported_version, "v",
               "major version " + std::to_string(version) + "; this build reads major version" +
                   (highest > 1 ? "s 1 to " : " ") + std::to_string(highest) +
                   " (upgrade this consumer to read newer records)"};
}

// `highest`: the newest major version of this record this build reads.
bool read_version(Decoder& decoder, od::value& value, const Path& path, int64_t highest = kVersion,
                  int64_t* read = nullptr) {
  int64_t version = 0;
  if (auto code = value.get_int64().get(version)) return decoder.fail(code, path, "an integer major version");
  if (version < 1 || version > highest) {
    decoder.error = unsupported_version(version, highest);
    return false;
  }
  if (read != nullptr) *read = version;
  return true;
}

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxStalls = 100'000;  // partitions in one summary

constexpr std::string_view kSessionMembers[] = {"time_zone", "date_style", "interval_style", "search_path", "extra"};

bool read_session(Decoder& decoder, od::value& value, const Path& path, Session& out) {
  return read_object(decoder, value, path, shape<kSessionMembers>(all_of(5)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_text(decoder, member, at, out.time_zone);
      case 1: return read_text(decoder, member, at, out.date_style);
      case 2: return read_text(decoder, member, at, out.interval_style);
      case 3: return read_text(decoder, member, at, out.search_path);
      default: {
        od::object object;
        if (auto code = member.get_object().get(object)) return decoder.fail(code, at, "an object");
        size_t count = 0;
        const bool ok = for_each_member(decoder, object, at, [&](std::string_view name, od::value& setting) {
          const Path setting_path = at.member(name);
          if (name.empty() || name.size() > decoder.limits.max_string_bytes) {
            return decoder.fail(ErrorCode::invalid_value, setting_path, "a setting name is 1 to max_string_bytes bytes");
          }
          auto& entry = slot(out.extra, count++);
          entry.first.assign(name);
          return read_text(decoder, setting, setting_path, entry.second);
        });
        if (ok && out.extra.size() > count) out.extra.resize(count);
        return ok;
      }
    }
  });
}

constexpr std::string_view kStatementMembers[] = {"sql",         "params",        "fingerprint", "result",
                                                  "param_types", "param_formats", "result_format", "copy_data"};

// The v2 members of a statement, checked against its parameters once all
// its members are read (they may come in any order): binary values decoded
// from base64, lengths parallel to the parameters.
bool finish_binding(Decoder& decoder, const Path& path, Statement& out, std::string& scratch) {
  Binding& binding = out.binding;
  const auto parallel = [&](size_t size, std::string_view member) {
    if (size == 0 || size == out.params.size()) return true;
    return decoder.fail(ErrorCode::invalid_value, path.member(member),
                        std::to_string(size) + " entries for " + std::to_string(out.params.size()) +
                            " parameters; there is one per parameter");
  };
  if (!parallel(binding.param_types.size(), "param_types") || !parallel(binding.param_formats.size(), "param_formats")) {
    return false;
  }
  for (size_t i = 0; i < out.params.size(); ++i) {
    if (!binding.binary_param(i) || !out.params[i]) continue;
    if (!base64::decode(*out.params[i], scratch)) {
      return decoder.fail(ErrorCode::invalid_value, path.member("params").element(i),
                          "a binary parameter (param_formats 1) is padded base64");
    }
    out.params[i]->swap(scratch);
  }
  return true;
}

bool read_statement(Decoder& decoder, od::value& value, const Path& path, Statement& out) {
  out.binding.param_types.clear();  // optional members
  out.binding.param_formats.clear();
  out.binding.result_format = 0;
  out.copy_data.reset();
  std::string copy_text;
  const bool ok = read_object(decoder, value, path, shape<kStatementMembers>(all_of(4)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_string(decoder, member, at, decoder.limits.max_sql_bytes, out.sql);
      case 1: return read_params(decoder, member, at, out.params);
      case 2: return read_fingerprint(decoder, member, at, out.fingerprint);
      case 3: return read_result(decoder, member, at, out.result);
      case 4:
        return read_array_into(decoder, member, at, decoder.limits.max_params, "parameter types", out.binding.param_types,
                               [&](od::value& item, const Path& item_path, uint32_t& type) {
                                 return read_int_as(decoder, item, item_path, 0, type);
                               });
      case 5:
        return read_array_into(decoder, member, at, decoder.limits.max_params, "parameter formats", out.binding.param_formats,
                               [&](od::value& item, const Path& item_path, int16_t& format) {
                                 return read_format(decoder, item, item_path, format);
                               });
      case 6: return read_format(decoder, member, at, out.binding.result_format);
      default: {
        if (!read_string(decoder, member, at, decoder.limits.max_record_bytes, copy_text)) return false;
        if (!base64::decode(copy_text, out.copy_data.emplace())) {
          return decoder.fail(ErrorCode::invalid_value, at, "COPY data is padded base64");
        }
        return true;
      }
    }
  });
  std::string scratch;
  return ok && finish_binding(decoder, path, out, scratch);
}

constexpr std::string_view kRequestMembers[] = {"v", "request_id", "ts", "key", "source", "session", "tx", "statements"};

bool read_request(Decoder& decoder, od::value& root, Request& out) {
  const Path path;
  int64_t version = 0;
  const bool ok = read_object(decoder, root, path, shape<kRequestMembers>(all_of(8)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_version(decoder, member, at, kRequestVersion, &version);
      case 1: return read_nonempty_text(decoder, member, at, out.request_id);
      case 2: return read_int(decoder, member, at, 0, kMaxInt64, out.ts_us);
      case 3: return read_nonempty_text(decoder, member, at, out.key);
      case 4: return read_text(decoder, member, at, out.source);
      case 5: return read_session(decoder, member, at, out.session);
      case 6: return read_enum(decoder, member, at, kTxModes, out.tx);
      default: {
        out.statements.reserve(4);  // typical units are small; saves the 1-2-4 regrowth of large elements
        const bool ok = read_array_into(decoder, member, at, decoder.limits.max_statements, "statements", out.statements,
                                        [&](od::value& item, const Path& item_path, Statement& statement) {
                                          return read_statement(decoder, item, item_path, statement);
                                        });
        if (ok && out.statements.empty()) return decoder.fail(ErrorCode::invalid_value, at, "a request has at least one statement");
        return ok;
      }
    }
  });
  if (!ok) return false;
  // A v1 reader ignores members it does not know: binary values or COPY data
  // in a v1 record would be replayed wrong by it, so they are v2 only.
  for (size_t i = 0; version == 1 && i < out.statements.size(); ++i) {
    if (out.statements[i].needs_v2()) {
      return decoder.fail(ErrorCode::invalid_value, path.member("statements").element(i),
                          "binary parameters, result formats and COPY data need \"v\": 2");
    }
  }
  return true;
}

constexpr std::string_view kShadowStatementMembers[] = {"fingerprint", "result", "plan"};
constexpr std::string_view kShadowResultMembers[] = {"v", "request_id", "ts", "key", "executor", "source_partition",
                                                     "source_offset", "statements", "published_below"};

bool read_shadow_result(Decoder& decoder, od::value& root, ShadowResult& out) {
  const Path path;
  out.published_below = -1;  // optional: a reused record must not keep an old stamp
  return read_object(decoder, root, path, shape<kShadowResultMembers>(all_of(8)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_version(decoder, member, at);
      case 1: return read_nonempty_text(decoder, member, at, out.request_id);
      case 2: return read_int(decoder, member, at, 0, kMaxInt64, out.ts_us);
      case 3: return read_nonempty_text(decoder, member, at, out.key);
      case 4: return read_text(decoder, member, at, out.executor);
      case 5: return read_int_as(decoder, member, at, -1, out.source_partition);
      case 6: return read_int(decoder, member, at, -1, kMaxInt64, out.source_offset);
      case 8: return read_int(decoder, member, at, -1, kMaxInt64, out.published_below);
      default:
        return read_array_into(decoder, member, at, decoder.limits.max_statements, "statements", out.statements,
                               [&](od::value& item, const Path& item_path, ShadowStatement& statement) {
          statement.plan.reset();  // optional
          return read_object(decoder, item, item_path, shape<kShadowStatementMembers>(bit(0) | bit(1)),
                             [&](int statement_member, od::value& field, const Path& field_path) {
                               switch (statement_member) {
                                 case 0: return read_fingerprint(decoder, field, field_path, statement.fingerprint);
                                 case 1: return read_result(decoder, field, field_path, statement.result);
                                 default: return read_plan(decoder, field, field_path, statement.plan);
                               }
                             });
        });
    }
  });
}

constexpr std::string_view kMismatchMembers[] = {"v",        "kind",          "request_id",     "key",
                                                 "ts",       "fingerprint",   "normalized_sql", "statement_index",
                                                 "primary",  "shadow",        "columns_differ", "latency_ratio",
                                                 "plan",     "first_divergence_on_key", "detail", "params"};
constexpr uint64_t kMismatchRequired = all_of(16) & ~(bit(8) | bit(9) | bit(12) | bit(15));

bool read_mismatch(Decoder& decoder, od::value& root, Mismatch& out) {
  const Path path;
  return read_object(decoder, root, path, shape<kMismatchMembers>(kMismatchRequired), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_version(decoder, member, at);
      case 1:
        if (!read_text(decoder, member, at, out.kind)) return false;
        if (!is_mismatch_kind(out.kind)) return decoder.fail(ErrorCode::invalid_value, at, "not a discrepancy kind of DESIGN.md");
        return true;
      case 2: return read_nonempty_text(decoder, member, at, out.request_id);
      case 3: return read_nonempty_text(decoder, member, at, out.key);
      case 4: return read_int(decoder, member, at, 0, kMaxInt64, out.ts_us);
      case 5: return read_fingerprint(decoder, member, at, out.fingerprint);
      case 6: return read_string(decoder, member, at, decoder.limits.max_sql_bytes, out.normalized_sql);
      case 7: return read_int_as(decoder, member, at, -1, out.statement_index);
      case 8: return read_result(decoder, member, at, out.primary.emplace());
      case 9: return read_result(decoder, member, at, out.shadow.emplace());
      case 10: return read_strings(decoder, member, at, decoder.limits.max_columns, out.columns_differ);
      case 11: return read_nonnegative_number(decoder, member, at, out.latency_ratio);
      case 12: return read_plan(decoder, member, at, out.plan);
      case 13: return read_bool(decoder, member, at, out.first_divergence_on_key);
      case 14: return read_text(decoder, member, at, out.detail);
      default: return read_params(decoder, member, at, out.params.emplace());
    }
  });
}

constexpr std::string_view kLatencyMembers[] = {"count", "p50_us", "p95_us", "p99_us", "max_us"};

bool read_latency(Decoder& decoder, od::value& value, const Path& path, LatencySummary& out) {
  return read_object(decoder, value, path, shape<kLatencyMembers>(all_of(5)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_uint(decoder, member, at, out.count);
      case 1: return read_nonnegative_number(decoder, member, at, out.p50_us);
      case 2: return read_nonnegative_number(decoder, member, at, out.p95_us);
      case 3: return read_nonnegative_number(decoder, member, at, out.p99_us);
      default: return read_nonnegative_number(decoder, member, at, out.max_us);
    }
  });
}

// A counter name: lowercase snake_case, as the discrepancy kinds are.
bool is_counter_name(std::string_view name) {
  if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z')) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

constexpr std::string_view kSummaryMembers[] = {"v",        "ts",            "comparator",      "fingerprint",   "normalized_sql",
                                                "compared", "discrepancies", "primary_latency", "shadow_latency", "stalled"};
constexpr std::string_view kStallMembers[] = {"partition", "since", "undecided"};

bool read_summary(Decoder& decoder, od::value& root, Summary& out) {
  const Path path;
  return read_object(decoder, root, path, shape<kSummaryMembers>(all_of(9)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_version(decoder, member, at);
      case 1: return read_int(decoder, member, at, 0, kMaxInt64, out.ts_us);
      case 2: return read_text(decoder, member, at, out.comparator);
      case 3: return read_fingerprint(decoder, member, at, out.fingerprint);
      case 4: return read_string(decoder, member, at, decoder.limits.max_sql_bytes, out.normalized_sql);
      case 5: return read_uint(decoder, member, at, out.compared);
      case 6: {
        od::object object;
        if (auto code = member.get_object().get(object)) return decoder.fail(code, at, "an object");
        return for_each_member(decoder, object, at, [&](std::string_view kind, od::value& count) {
          const Path count_path = at.member(kind);
          if (kind.size() > decoder.limits.max_string_bytes || !is_counter_name(kind)) {
            return decoder.fail(ErrorCode::invalid_value, count_path, "a counter name is lowercase snake_case");
          }
          uint64_t value = 0;
          if (!read_uint(decoder, count, count_path, value)) return false;
          if (!out.discrepancies.emplace(std::string(kind), value).second) {
            return decoder.fail(ErrorCode::malformed, count_path, "member appears twice");
          }
          return true;
        });
      }
      case 7: return read_latency(decoder, member, at, out.primary_latency);
      case 8: return read_latency(decoder, member, at, out.shadow_latency);
      default:
        return read_array(decoder, member, at, kMaxStalls, "partitions", [&](od::value& item, const Path& item_path) {
          auto& stall = out.stalled.emplace_back();
          return read_object(decoder, item, item_path, shape<kStallMembers>(all_of(3)),
                             [&](int stall_member, od::value& field, const Path& field_path) {
                               switch (stall_member) {
                                 case 0: return read_int_as(decoder, field, field_path, 0, stall.partition);
                                 case 1: return read_int(decoder, field, field_path, 0, kMaxInt64, stall.since_us);
                                 default: return read_uint(decoder, field, field_path, stall.undecided);
                               }
                             });
        });
    }
  });
}

constexpr std::string_view kGapMembers[] = {"v",           "record",    "ts",    "source",      "reason",
                                            "partition",   "from_offset", "to_offset", "units", "write_units",
                                            "detail"};
constexpr std::pair<std::string_view, bool> kGapTags[] = {{kGapRecordTag, true}};
constexpr std::string_view kGapReasons[] = {"retention", "producer_dropped"};

bool read_gap(Decoder& decoder, od::value& root, Gap& out) {
  const Path path;
  constexpr uint64_t required = all_of(11) & ~(bit(6) | bit(7) | bit(9) | bit(10));
  return read_object(decoder, root, path, shape<kGapMembers>(required), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_version(decoder, member, at);
      case 1: {
        bool tagged = false;
        return read_enum(decoder, member, at, kGapTags, tagged);
      }
      case 2: return read_int(decoder, member, at, 0, kMaxInt64, out.ts_us);
      case 3: return read_text(decoder, member, at, out.source);
      case 4: {
        if (!read_text(decoder, member, at, out.reason)) return false;
        if (std::find(std::begin(kGapReasons), std::end(kGapReasons), out.reason) == std::end(kGapReasons)) {
          return decoder.fail(ErrorCode::invalid_value, at, "a gap reason is retention or producer_dropped");
        }
        return true;
      }
      case 5: return read_int_as(decoder, member, at, 0, out.partition);
      case 6: return read_int(decoder, member, at, -1, kMaxInt64, out.from_offset);
      case 7: return read_int(decoder, member, at, -1, kMaxInt64, out.to_offset);
      case 8: return read_uint(decoder, member, at, out.units);
      case 9: return read_uint(decoder, member, at, out.write_units);
      default: return read_text(decoder, member, at, out.detail);
    }
  });
}

constexpr std::string_view kDeadLetterMembers[] = {"v",      "ts",           "consumer",         "error_code",
                                                   "field",  "reason",       "source_topic",     "source_partition",
                                                   "source_offset", "payload", "payload_bytes"};

bool read_dead_letter(Decoder& decoder, od::value& root, DeadLetter& out) {
  const Path path;
  return read_object(decoder, root, path, shape<kDeadLetterMembers>(all_of(11)), [&](int number, od::value& member, const Path& at) {
    switch (number) {
      case 0: return read_version(decoder, member, at);
      case 1: return read_int(decoder, member, at, 0, kMaxInt64, out.ts_us);
      case 2: return read_text(decoder, member, at, out.consumer);
      case 3: {
        if (!read_text(decoder, member, at, out.error_code)) return false;
        for (int code = 0; code <= static_cast<int>(ErrorCode::io); ++code) {
          if (to_string(static_cast<ErrorCode>(code)) == out.error_code) return true;
        }
        return decoder.fail(ErrorCode::invalid_value, at, "not an error code name");
      }
      case 4: return read_text(decoder, member, at, out.field);
      case 5: return read_text(decoder, member, at, out.reason);
      case 6: return read_text(decoder, member, at, out.source_topic);
      case 7: return read_int_as(decoder, member, at, -1, out.source_partition);
      case 8: return read_int(decoder, member, at, -1, kMaxInt64, out.source_offset);
      case 9: return read_text(decoder, member, at, out.payload);
      default: return read_uint(decoder, member, at, out.payload_bytes);
    }
  });
}

// Per-thread parser and padded copy of the input: simdjson reads up to
// SIMDJSON_PADDING bytes past the end, which a caller's string_view does not promise.
class Scratch {
 public:
  simdjson::padded_string_view load(std::string_view json) {
    const size_t needed = json.size() + simdjson::SIMDJSON_PADDING;
    if (capacity_ < needed) {
      capacity_ = std::max<size_t>(needed, 4096);
      bytes_ = std::make_unique<char[]>(capacity_);
    }
    std::memcpy(bytes_.get(), json.data(), json.size());
    std::memset(bytes_.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    return simdjson::padded_string_view(bytes_.get(), json.size(), capacity_);
  }

  od::parser& parser() { return parser_; }

  // A rare huge record must not pin its memory in the thread for good.
  void trim() {
    if (capacity_ <= kKeptCapacity) return;
    bytes_.reset();
    capacity_ = 0;
    parser_ = od::parser();
  }

 private:
  static constexpr size_t kKeptCapacity = 1 << 20;
  od::parser parser_;
  std::unique_ptr<char[]> bytes_;
  size_t capacity_ = 0;
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// The "v" of a record that failed, if it has a readable one: a record of a
// newer major version is reported as such, whatever else it broke.
std::optional<int64_t> peek_version(od::parser& parser, simdjson::padded_string_view json) {
  od::document document;
  if (parser.iterate(json).get(document)) return std::nullopt;
  od::object root;
  if (document.get_object().get(root)) return std::nullopt;
  int64_t version = 0;
  if (root.find_field_unordered("v").get_int64().get(version)) return std::nullopt;
  return version;
}

// Decodes into `record`, which may hold an earlier record: every member a
// reader fills is either required (so always overwritten) or reset by it,
// and vectors reuse their elements in place.
template <class Record, class ReadRoot>
Result<void> decode_record_into(std::string_view json, Record& record, const Limits& limits, ReadRoot read_root,
                                int64_t highest = kVersion) {
  if (json.size() > limits.max_record_bytes) {
    return Error{ErrorCode::too_large, "",
                 "record of " + std::to_string(json.size()) + " bytes, over the limit of " +
                     std::to_string(limits.max_record_bytes)};
  }
  Scratch& scratch = thread_scratch();
  const simdjson::padded_string_view padded = scratch.load(json);
  Decoder decoder{limits, {}};
  const Path root_path;
  const bool ok = [&] {
    od::document document;
    if (auto code = scratch.parser().iterate(padded).get(document)) return decoder.fail(code, root_path, "a JSON object");
    od::value root;
    if (auto code = document.get_value().get(root)) return decoder.fail(code, root_path, "a JSON object");
    od::json_type type;
    if (auto code = root.type().get(type)) return decoder.fail(code, root_path, "a JSON object");
    if (type != od::json_type::object) return decoder.fail(ErrorCode::malformed, root_path, "a record is a JSON object");
    if (!read_root(decoder, root, record)) return false;
    if (document.current_location().error() != simdjson::OUT_OF_BOUNDS) {
      return decoder.fail(ErrorCode::malformed, root_path, "content after the end of the record");
    }
    return true;
  }();
  if (!ok && decoder.error.code != ErrorCode::unsupported_version) {
    const auto version = peek_version(scratch.parser(), padded);
    if (version && (*version < 1 || *version > highest)) decoder.error = unsupported_version(*version, highest);
  }
  scratch.trim();
  if (!ok) return std::move(decoder.error);
  return {};
}

template <class Record, class ReadRoot>
Result<Record> decode_record(std::string_view json, const Limits& limits, ReadRoot read_root, int64_t highest = kVersion) {
  Record record;
  if (auto decoded = decode_record_into(json, record, limits, read_root, highest); !decoded) return decoded.error();
  return record;
}

}  // namespace

Result<Request> decode_request(std::string_view json, const Limits& limits) {
  return decode_record<Request>(json, limits, read_request, kRequestVersion);
}
Result<void> decode_request_into(std::string_view json, Request& out, const Limits& limits) {
  return decode_record_into(json, out, limits, read_request, kRequestVersion);
}
Result<ShadowResult> decode_result(std::string_view json, const Limits& limits) {
  return decode_record<ShadowResult>(json, limits, read_shadow_result);
}
Result<void> decode_result_into(std::string_view json, ShadowResult& out, const Limits& limits) {
  return decode_record_into(json, out, limits, read_shadow_result);
}
Result<Mismatch> decode_mismatch(std::string_view json, const Limits& limits) {
  return decode_record<Mismatch>(json, limits, read_mismatch);
}
Result<Summary> decode_summary(std::string_view json, const Limits& limits) {
  return decode_record<Summary>(json, limits, read_summary);
}
Result<DeadLetter> decode_dead_letter(std::string_view json, const Limits& limits) {
  return decode_record<DeadLetter>(json, limits, read_dead_letter);
}
Result<Gap> decode_gap(std::string_view json, const Limits& limits) {
  return decode_record<Gap>(json, limits, read_gap);
}
bool is_gap_record(std::string_view json) {
  // The encoder writes "record" right after "v"; a cheap textual look first,
  // the real decode decides.
  constexpr std::string_view kMarker = "\"record\":\"gap\"";
  return json.substr(0, 64).find(kMarker) != std::string_view::npos;
}

}  // namespace shadowpipe::wire
