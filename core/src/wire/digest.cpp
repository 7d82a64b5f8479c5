#include "shadowpipe/digest.hpp"

#include "shadowpipe/result.hpp"

#include <simdjson.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace shadowpipe::digest {
namespace {

// Hash layout (a wire contract: producer and executor must agree):
//  * value hash  = XXH3_64(text), or kNullHash for SQL NULL. XXH3 folds the
//                  input length into every result, so separately hashed values
//                  are length-delimited; NULL is a marker no text maps to
//                  (short of a 64-bit collision), so NULL != "".
//  * row hash    = XXH3_64 over the row's value hashes (8 bytes each, little
//                  endian): fixed-width fields, so ("ab","c") != ("a","bc").
//                  Each value's bytes are hashed once, which keeps the cost
//                  near raw XXH3 for long values.
//  * ordered     = streaming XXH3 over the row hashes in order.
//  * unordered   = XXH3_64(wrapping sum of row hashes, row count). A sum, not
//                  XOR: XOR cancels pairs, so {a,a,b} and {b} would collide.
//  * column[i]   = XXH3_64(wrapping sum of column i's value hashes, row count).
//  * column_ordered[i] = XXH3_64(s, row count) where s = s * kSequenceMultiplier
//                  + value hash over column i's values in row order (wrapping):
//                  a polynomial hash, so a swap of two different values
//                  changes it (the multiplier minus one has a single factor
//                  of two: a swap collides with probability about 2^-63).
//  * column_values[i] = as column[i], over each value's canonical text
//                  (canonical_number, canonical_padded); the value hash
//                  itself wherever the canonical text is the rendered one.
constexpr uint64_t kNullHash = 0x4e554c4c'76616c75ULL;  // "NULLvalu"
constexpr uint64_t kSequenceMultiplier = 0x9e3779b97f4a7c17ULL;  // odd; minus one is 2 mod 4
static_assert(kSequenceMultiplier % 4 == 3);

enum ValueKind : uint8_t { kPlain, kNumeric, kFloat, kFloat4, kTime };
enum CanonicalKind : uint8_t { kAsRendered, kNumber, kPadded };

constexpr uint32_t kNumericOid = 1700;
constexpr uint32_t kFloat4Oid = 700;
constexpr uint32_t kFloat8Oid = 701;
constexpr uint32_t kTimestampOid = 1114;
constexpr uint32_t kTimestamptzOid = 1184;
constexpr uint32_t kTimeOid = 1083;
constexpr uint32_t kTimetzOid = 1266;
constexpr uint32_t kInt2Oid = 21;
constexpr uint32_t kInt4Oid = 23;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kBpcharOid = 1042;

struct BuiltinType {
  uint32_t oid;
  const char* name;
};
constexpr BuiltinType kBuiltinTypes[] = {
#include "builtin_types.inc"
};

// Ranges accepted from configuration: beyond them a rule is meaningless
// (a double has 17 significant digits, PostgreSQL keeps 6 fractional digits).
constexpr int kMaxNumericScale = 1000;
constexpr int kMaxFloatDigits = 17;
constexpr int kMaxTimestampPrecision = 6;

uint64_t to_little_endian(uint64_t value) {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap64(value);
  return value;
}

uint64_t finish_multiset(uint64_t sum, uint64_t count) {
  const uint64_t words[2] = {to_little_endian(sum), to_little_endian(count)};
  return XXH3_64bits(words, sizeof words);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// numeric text ("-12.345") rounded half away from zero to `scale` decimals,
// written as [-]digits[.exactly scale digits]. Done on the text: a numeric
// has up to 131072 digits, no binary type holds it. Anything that is not a
// plain decimal (NaN, Infinity, -Infinity) is returned unchanged.
std::string_view normalize_numeric(std::string_view text, int scale, std::string& out) {
  size_t pos = 0;
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    pos = 1;
  }
  size_t int_begin = pos;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  const size_t int_end = pos;
  size_t frac_begin = pos;
  size_t frac_end = pos;
  if (pos < text.size() && text[pos] == '.') {
    frac_begin = ++pos;
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    frac_end = pos;
  }
  if (pos != text.size() || (int_end == int_begin && frac_end == frac_begin)) return text;
  while (int_end - int_begin > 1 && text[int_begin] == '0') ++int_begin;

  const size_t wanted = static_cast<size_t>(scale);
  const size_t frac_len = frac_end - frac_begin;
  const size_t kept_frac = std::min(frac_len, wanted);
  // Digits without the point; out[0] is a spare slot for a carry out.
  out.assign(1, '0');
  if (int_end == int_begin) {
    out.push_back('0');
  } else {
    out.append(text.substr(int_begin, int_end - int_begin));
  }
  out.append(text.substr(frac_begin, kept_frac));
  out.append(wanted - kept_frac, '0');
  if (frac_len > wanted && text[frac_begin + wanted] >= '5') {
    size_t i = out.size();
    while (i > 0) {
      --i;
      if (out[i] == '9') {
        out[i] = '0';
      } else {
        ++out[i];
        break;
      }
    }
  }
  const size_t first = out[0] == '0' ? 1 : 0;  // keep the slot only if the carry used it
  // PostgreSQL numeric has no negative zero: -0.001 rounds to 0.00.
  if (out.find_first_not_of('0', first) == std::string::npos) negative = false;
  const size_t int_digits = out.size() - first - wanted;
  if (scale > 0) out.insert(out.begin() + static_cast<std::ptrdiff_t>(first + int_digits), '.');
  if (negative) {
    if (first == 1) {
      out[0] = '-';
      return out;
    }
    out.insert(out.begin(), '-');
    return out;
  }
  return std::string_view(out).substr(first);
}

// float4/float8 text to `digits` significant digits, as printf's %.*g but
// independent of the C locale. NaN and ±Infinity are unchanged; -0 becomes 0
// because PostgreSQL treats them as equal.
std::string_view normalize_float(std::string_view text, int digits, std::string& out) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto parsed = std::from_chars(text.data(), end, value);
  if (parsed.ec != std::errc{} || parsed.ptr != end || !std::isfinite(value)) return text;
  if (value == 0) return "0";
  char buffer[64];
  auto written = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general, digits);
  out.assign(buffer, written.ptr);
  return out;
}

// time/timetz/timestamp/timestamptz text with fractional seconds truncated to
// `precision` digits and trailing zeros dropped (PostgreSQL's own style), so
// "05.120" and "05.12" agree; the zone or era suffix is kept.
std::string_view normalize_time(std::string_view text, int precision, std::string& out) {
  const size_t hours_colon = text.find(':');
  if (hours_colon == std::string_view::npos) return text;  // infinity, -infinity
  const size_t seconds_colon = text.find(':', hours_colon + 1);
  if (seconds_colon == std::string_view::npos) return text;
  const size_t dot = seconds_colon + 3;
  if (dot >= text.size() || text[dot] != '.' || !is_digit(text[seconds_colon + 1]) ||
      !is_digit(text[seconds_colon + 2])) {
    return text;
  }
  const size_t frac_begin = dot + 1;
  size_t frac_end = frac_begin;
  while (frac_end < text.size() && is_digit(text[frac_end])) ++frac_end;
  size_t keep = std::min(frac_end - frac_begin, static_cast<size_t>(precision));
  while (keep > 0 && text[frac_begin + keep - 1] == '0') --keep;
  if (keep == frac_end - frac_begin) return text;
  out.assign(text.substr(0, keep > 0 ? frac_begin + keep : dot));
  out.append(text.substr(frac_end));
  return out;
}

ValueKind kind_for(uint32_t oid, const NormalizationRules& rules) {
  switch (oid) {
    case kNumericOid: return rules.numeric_scale ? kNumeric : kPlain;
    case kFloat4Oid: return rules.float_digits ? kFloat4 : kPlain;
    case kFloat8Oid: return rules.float_digits ? kFloat : kPlain;
    case kTimestampOid:
    case kTimestamptzOid:
    case kTimeOid:
    case kTimetzOid: return rules.timestamp_precision ? kTime : kPlain;
    default: return kPlain;
  }
}

CanonicalKind canonical_kind_for(uint32_t oid) {
  switch (oid) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kNumericOid:
    case kFloat4Oid:
    case kFloat8Oid: return kNumber;
    case kBpcharOid: return kPadded;
    default: return kAsRendered;
  }
}

// A number's text as a plain decimal with no redundant digit: no sign for
// zero, no '+', no leading zeros, no trailing fractional zeros, no exponent
// ("300.00" -> "300", "-0.50" -> "-0.5", "1e+20" -> "100000000000000000000").
// Texts that are not plain numbers (NaN, Infinity) and exponents beyond any
// float's range are returned unchanged. An integer's text is already
// canonical and costs one scan.
std::string_view canonical_number(std::string_view text, std::string& out) {
  if (text.empty()) return text;
  bool simple = text[0] != '+' && !(text[0] == '0' && text.size() > 1) && !(text.size() > 1 && text[0] == '-' && text[1] == '0');
  for (char c : text) simple = simple && c != '.' && c != 'e' && c != 'E';
  if (simple) return text;

  size_t pos = 0;
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') negative = text[pos++] == '-';
  std::string digits;  // all mantissa digits, the point dropped
  long point = -1;     // digits before the decimal point
  size_t mantissa_digits = 0;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (is_digit(c)) {
      digits.push_back(c);
      ++mantissa_digits;
    } else if (c == '.' && point < 0) {
      point = static_cast<long>(digits.size());
    } else {
      break;
    }
  }
  if (mantissa_digits == 0) return text;
  if (point < 0) point = static_cast<long>(digits.size());
  if (pos < text.size()) {
    if (text[pos] != 'e' && text[pos] != 'E') return text;
    size_t exponent_begin = pos + 1;
    if (exponent_begin < text.size() && text[exponent_begin] == '+') ++exponent_begin;
    if (exponent_begin >= text.size()) return text;  // "1e", "1e+": not a number
    long exponent = 0;
    auto parsed = std::from_chars(text.data() + exponent_begin, text.data() + text.size(), exponent);
    if (parsed.ec != std::errc{} || parsed.ptr != text.data() + text.size() || exponent > 400 || exponent < -400) {
      return text;
    }
    point += exponent;
  }
  // Place the point inside the digit string, padding with zeros as needed.
  if (point < 0) {
    digits.insert(0, static_cast<size_t>(-point), '0');
    point = 0;
  }
  if (point > static_cast<long>(digits.size())) digits.append(static_cast<size_t>(point) - digits.size(), '0');
  std::string_view whole(digits.data(), static_cast<size_t>(point));
  std::string_view fraction(digits.data() + point, digits.size() - static_cast<size_t>(point));
  while (!whole.empty() && whole.front() == '0') whole.remove_prefix(1);
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  out.clear();
  if (negative && !(whole.empty() && fraction.empty())) out.push_back('-');
  if (whole.empty()) {
    out.push_back('0');
  } else {
    out.append(whole);
  }
  if (!fraction.empty()) {
    out.push_back('.');
    out.append(fraction);
  }
  return out;
}

// char(n) renders with its blank padding; the value is the text without it.
std::string_view canonical_padded(std::string_view text) {
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

XXH3_state_t* ordered_state(void* state) { return static_cast<XXH3_state_t*>(state); }

// XXH3_64bits(data, size), same value, with the short and mid-size paths
// (every typical value, and a row of up to 16 value hashes) inlined into the
// row loop: no call, and the length tests are predicted per column.
[[gnu::always_inline]] inline uint64_t xxh3(const void* data, size_t size) {
  const auto* input = static_cast<const xxh_u8*>(data);
  if (XXH_likely(size <= 16)) return XXH3_len_0to16_64b(input, size, XXH3_kSecret, 0);
  if (XXH_likely(size <= 128)) return XXH3_len_17to128_64b(input, size, XXH3_kSecret, sizeof XXH3_kSecret, 0);
  return XXH3_64bits(data, size);
}

// --- configuration -------------------------------------------------------

[[noreturn]] void config_failure(const std::string& origin, const std::string& key, const std::string& problem) {
  throw Failure("normalization config " + origin + ": key '" + key + "': " + problem);
}

std::optional<int> parse_limit(simdjson::dom::element value, const std::string& origin, const std::string& key,
                               int low, int high) {
  if (value.is_null()) return std::nullopt;
  int64_t number = 0;
  if (value.get_int64().get(number) != simdjson::SUCCESS) {
    config_failure(origin, key, "expected an integer or null");
  }
  if (number < low || number > high) {
    config_failure(origin, key,
                   "must be between " + std::to_string(low) + " and " + std::to_string(high) + ", got " +
                       std::to_string(number));
  }
  return static_cast<int>(number);
}

// Reads the keys present in `object` over `rules`: a fingerprint's rules
// start from the defaults and override only what they name (null clears).
void parse_rules(simdjson::dom::element element, const std::string& origin, const std::string& path,
                 NormalizationRules& rules) {
  simdjson::dom::object object;
  if (element.get_object().get(object) != simdjson::SUCCESS) config_failure(origin, path, "expected an object");
  for (auto field : object) {
    const std::string name(field.key);
    const std::string key = path + "." + name;
    if (name == "numeric_scale") {
      rules.numeric_scale = parse_limit(field.value, origin, key, 0, kMaxNumericScale);
    } else if (name == "float_digits") {
      rules.float_digits = parse_limit(field.value, origin, key, 1, kMaxFloatDigits);
    } else if (name == "timestamp_precision") {
      rules.timestamp_precision = parse_limit(field.value, origin, key, 0, kMaxTimestampPrecision);
    } else if (name == "ignored_columns") {
      simdjson::dom::array columns;
      if (field.value.get_array().get(columns) != simdjson::SUCCESS) {
        config_failure(origin, key, "expected an array of column names");
      }
      rules.ignored_columns.clear();
      size_t index = 0;
      for (auto column : columns) {
        std::string_view column_name;
        if (column.get_string().get(column_name) != simdjson::SUCCESS || column_name.empty()) {
          config_failure(origin, key + "[" + std::to_string(index) + "]", "expected a non-empty column name");
        }
        rules.ignored_columns.emplace(column_name);
        ++index;
      }
    } else {
      config_failure(origin, key,
                     "unknown key (expected numeric_scale, float_digits, timestamp_precision, ignored_columns)");
    }
  }
}

}  // namespace

// --- NormalizationConfig ---------------------------------------------------

void NormalizationConfig::set_for_fingerprint(const std::string& fingerprint, NormalizationRules rules) {
  by_fingerprint_.insert_or_assign(fingerprint, std::move(rules));
}

const NormalizationRules& NormalizationConfig::for_fingerprint(std::string_view fingerprint) const {
  auto found = by_fingerprint_.find(fingerprint);
  return found == by_fingerprint_.end() ? defaults_ : found->second;
}

NormalizationConfig NormalizationConfig::parse(std::string_view json, const std::string& origin) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (auto error = parser.parse(padded).get(root); error != simdjson::SUCCESS) {
    throw Failure("normalization config " + origin + ": not valid JSON: " + simdjson::error_message(error));
  }
  simdjson::dom::object top;
  if (root.get_object().get(top) != simdjson::SUCCESS) {
    throw Failure("normalization config " + origin + ": expected a JSON object at the top level");
  }
  for (auto field : top) {
    if (field.key != "default" && field.key != "fingerprints") {
      config_failure(origin, std::string(field.key), "unknown key (expected default, fingerprints)");
    }
  }
  NormalizationConfig config;
  simdjson::dom::element defaults;
  if (top["default"].get(defaults) == simdjson::SUCCESS) parse_rules(defaults, origin, "default", config.defaults_);

  simdjson::dom::element fingerprints_element;
  if (top["fingerprints"].get(fingerprints_element) == simdjson::SUCCESS) {
    simdjson::dom::object fingerprints;
    if (fingerprints_element.get_object().get(fingerprints) != simdjson::SUCCESS) {
      config_failure(origin, "fingerprints", "expected an object keyed by statement fingerprint");
    }
    for (auto field : fingerprints) {
      const std::string fingerprint(field.key);
      if (fingerprint.empty()) config_failure(origin, "fingerprints", "empty fingerprint");
      NormalizationRules rules = config.defaults_;
      parse_rules(field.value, origin, "fingerprints." + fingerprint, rules);
      config.by_fingerprint_.insert_or_assign(fingerprint, std::move(rules));
    }
  }
  return config;
}

NormalizationConfig NormalizationConfig::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Failure("normalization config " + path + ": cannot open: " + std::strerror(errno) +
                  " (check the path given for the normalization config)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Failure("normalization config " + path + ": read failed: " + std::strerror(errno));
  return parse(text.str(), path);
}

// --- DigestBuilder -----------------------------------------------------------

DigestBuilder::DigestBuilder(std::vector<Column> columns, const NormalizationRules& rules)
    : input_columns_(columns.size()),
      numeric_scale_(rules.numeric_scale.value_or(0)),
      float_digits_(rules.float_digits.value_or(0)),
      timestamp_precision_(rules.timestamp_precision.value_or(0)) {
  // Built once per result, on the application's thread when recording:
  // one allocation per member, no regrowth, no lookup without ignored columns.
  kept_.reserve(columns.size());
  value_kind_.reserve(columns.size());
  canonical_kind_.reserve(columns.size());
  const bool ignoring = !rules.ignored_columns.empty();
  // Every column kept (no ignore rule): the given vector is taken whole.
  if (ignoring) {
    columns_.reserve(columns.size());
  } else {
    columns_ = std::move(columns);
  }
  const std::vector<Column>& given = ignoring ? columns : columns_;
  for (size_t i = 0; i < given.size(); ++i) {
    if (ignoring && rules.ignored_columns.contains(given[i].name)) continue;
    kept_.push_back(static_cast<int>(i));
    // Binary bytes are not text: no normalization or canonical form applies.
    const bool binary = given[i].format != 0;
    value_kind_.push_back(binary ? kPlain : kind_for(given[i].type_oid, rules));
    canonical_kind_.push_back(binary ? kAsRendered : canonical_kind_for(given[i].type_oid));
    if (ignoring) columns_.push_back(std::move(columns[i]));
  }
  column_sums_.assign(columns_.size(), 0);
  column_sequences_.assign(columns_.size(), 0);
  value_sums_.assign(columns_.size(), 0);
  value_hashes_.assign(columns_.size(), 0);
  rules_active_ = std::any_of(value_kind_.begin(), value_kind_.end(), [](uint8_t kind) { return kind != kPlain; }) ||
                  std::any_of(canonical_kind_.begin(), canonical_kind_.end(), [](uint8_t kind) { return kind != kAsRendered; });
  if (rules_active_) scratch_.reserve(128);
}

DigestBuilder::~DigestBuilder() {
  if (ordered_state_ != nullptr) XXH3_freeState(ordered_state(ordered_state_));
}

void DigestBuilder::add_row(std::span<const std::optional<std::string_view>> values) {
  if (values.size() != input_columns_) {
    throw Failure("digest: row has " + std::to_string(values.size()) + " values for " +
                  std::to_string(input_columns_) + " columns");
  }
  // One well-predicted branch per row picks a loop with no per-value rule
  // dispatch and no column indirection when neither is needed.
  if (rules_active_) {
    add_row_as<true, false>(values.data());
  } else if (kept_.size() == input_columns_) {
    add_row_as<false, true>(values.data());
  } else {
    add_row_as<false, false>(values.data());
  }
}

template <bool kRules, bool kDense>
void DigestBuilder::add_row_as(const std::optional<std::string_view>* values) {
  const size_t kept = kept_.size();
  uint64_t* const sums = column_sums_.data();
  uint64_t* const sequences = column_sequences_.data();
  uint64_t* const value_sums = value_sums_.data();
  uint64_t* const hashes = value_hashes_.data();
  for (size_t k = 0; k < kept; ++k) {
    const std::optional<std::string_view>& value = values[kDense ? k : static_cast<size_t>(kept_[k])];
    uint64_t hash = kNullHash;
    uint64_t canonical_hash = kNullHash;
    if (value) {
      std::string_view text = *value;
      if constexpr (kRules) {
        switch (value_kind_[k]) {
          case kPlain: break;
          case kNumeric: text = normalize_numeric(text, numeric_scale_, scratch_); break;
          case kFloat: text = normalize_float(text, float_digits_, scratch_); break;
          case kFloat4: text = normalize_float(text, std::min(float_digits_, kFloat4Digits), scratch_); break;
          case kTime: text = normalize_time(text, timestamp_precision_, scratch_); break;
        }
      }
      hash = xxh3(text.data(), text.size());
      canonical_hash = hash;
      if constexpr (kRules) {
        std::string_view canonical = text;
        switch (canonical_kind_[k]) {
          case kAsRendered: break;
          case kNumber: canonical = canonical_number(text, canonical_scratch_); break;
          case kPadded: canonical = canonical_padded(text); break;
        }
        if (canonical.size() != text.size() || canonical.data() != text.data()) {
          canonical_hash = xxh3(canonical.data(), canonical.size());
        }
      }
    }
    sums[k] += hash;
    sequences[k] = sequences[k] * kSequenceMultiplier + hash;
    value_sums[k] += canonical_hash;
    hashes[k] = to_little_endian(hash);
  }
  const uint64_t row_hash = xxh3(hashes, kept * sizeof(uint64_t));
  unordered_ += row_hash;
  pending_[pending_count_++] = to_little_endian(row_hash);
  if (pending_count_ == pending_.size()) flush_pending();
  ++rows_;
}

// The ordered stream is XXH3 over every row hash in order. The streaming
// state (an allocation) is made only once a result outgrows one batch; a
// smaller one is hashed in one call, which gives the same value.
void DigestBuilder::flush_pending() {
  if (ordered_state_ == nullptr) {
    XXH3_state_t* state = XXH3_createState();
    if (state == nullptr) throw Failure("digest: out of memory creating the XXH3 state");
    XXH3_64bits_reset(state);
    ordered_state_ = state;
  }
  XXH3_64bits_update(ordered_state(ordered_state_), pending_.data(), pending_count_ * sizeof(uint64_t));
  pending_count_ = 0;
}

ResultDigest DigestBuilder::finish() && {
  ResultDigest digest;
  digest.rows = rows_;
  if (ordered_state_ == nullptr) {
    digest.ordered = xxh3(pending_.data(), pending_count_ * sizeof(uint64_t));
  } else {
    flush_pending();
    digest.ordered = XXH3_64bits_digest(ordered_state(ordered_state_));
  }
  digest.unordered = finish_multiset(unordered_, rows_);
  // Finished in place and handed over: the builder is done with its sums,
  // so the digest's vectors cost no allocation of their own.
  for (uint64_t& sum : column_sums_) sum = finish_multiset(sum, rows_);
  digest.column_digests = std::move(column_sums_);
  for (uint64_t& sequence : column_sequences_) sequence = finish_multiset(sequence, rows_);
  digest.column_ordered = std::move(column_sequences_);
  for (uint64_t& sum : value_sums_) sum = finish_multiset(sum, rows_);
  digest.column_values = std::move(value_sums_);
  digest.columns = std::move(columns_);
  return digest;
}

std::string_view builtin_type_name(uint32_t oid) {
  const auto* end = std::end(kBuiltinTypes);
  const auto* found = std::lower_bound(std::begin(kBuiltinTypes), end, oid,
                                       [](const BuiltinType& type, uint32_t wanted) { return type.oid < wanted; });
  return found != end && found->oid == oid ? std::string_view(found->name) : std::string_view();
}

// --- hex -------------------------------------------------------------------

void to_hex(uint64_t value, std::span<char, 16> out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[value & 0xF];
    value >>= 4;
  }
}

std::string to_hex(uint64_t value) {
  std::string out(16, '0');
  to_hex(value, std::span<char, 16>(out.data(), 16));
  return out;
}

std::optional<uint64_t> from_hex(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    uint64_t nibble = 0;
    if (c >= '0' && c <= '9') {
      nibble = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      nibble = static_cast<uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      nibble = static_cast<uint64_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    value = (value << 4) | nibble;
  }
  return value;
}

}  // namespace shadowpipe::digest
