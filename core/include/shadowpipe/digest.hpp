// The result digest: one function, used by the producer on the primary's
// result and by the executor on the shadow's, so the two cannot drift apart.
//
// Over the libpq text rendering of each value, with XXH3:
//  * ordered   — the rows as a stream, in order;
//  * unordered — a commutative combination of per-row hashes (a multiset),
//                which with `rows` ignores row order;
//  * columns[] — one unordered digest per column, to name the columns that differ;
//  * column_ordered[] — per column, the sequence of its values in row order,
//                so the comparator can check the sequence of ORDER BY keys
//                alone and compare the rows within ties as a multiset;
//  * column_values[] — per column, an unordered digest of the values in a
//                canonical form (numbers without trailing fractional zeros,
//                char(n) without its padding), to tell "same value,
//                different representation" from a changed value.
// NULL and the empty string hash differently, and every value is hashed with
// its length, so no two different rows collide by concatenation.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shadowpipe::digest {

struct Column {
  std::string name;
  uint32_t type_oid = 0;
  // format_type() of the type, without modifier ("integer", "character
  // varying", "public.mood"); empty when unknown (a user type the side could
  // not look up). Types compare by name: OIDs of user types change on restore.
  std::string type_name = {};
  // 1: the values are digested over their binary-format bytes (a binary
  // result of a type binary_text.hpp does not render); 0: over their text.
  int16_t format = 0;
  bool operator==(const Column&) const = default;
};

// The name PostgreSQL gives a built-in type (OID below 10000, fixed in every
// cluster), or empty for any other OID.
std::string_view builtin_type_name(uint32_t oid);

struct ResultDigest {
  // Ignored columns (NormalizationRules::ignored_columns) are left out of
  // columns and column_digests alike, so the two stay parallel.
  std::vector<Column> columns;
  uint64_t rows = 0;
  uint64_t ordered = 0;
  uint64_t unordered = 0;
  std::vector<uint64_t> column_digests;  // parallel to columns
  std::vector<uint64_t> column_ordered;  // parallel to columns: each column's values in row order
  std::vector<uint64_t> column_values;   // parallel to columns: canonical values, unordered
  bool operator==(const ResultDigest&) const = default;
};

// The default relative tolerance for floats, as significant decimal digits:
// float8 values are compared rounded to 12 significant digits (a relative
// difference below about 5e-13 is absorbed, enough for sums and averages
// taken in another order), float4 values to 6 (float4 carries about 7).
inline constexpr int kDefaultFloatDigits = 12;
inline constexpr int kFloat4Digits = 6;

// How values are normalized before hashing, identically on both sides. Rules
// apply by the column's type oid. Only the float rule is on by default.
struct NormalizationRules {
  std::optional<int> numeric_scale;        // numeric: round half away from zero to this many decimals
  // float8: this many significant digits; float4: at most kFloat4Digits.
  // nullopt compares floats exactly as rendered ("float_digits": null).
  std::optional<int> float_digits = kDefaultFloatDigits;
  std::optional<int> timestamp_precision;  // timestamp[tz]/time[tz]: fractional-second digits kept (truncated)
  std::set<std::string> ignored_columns;   // by column name: excluded from every digest

  bool operator==(const NormalizationRules&) const = default;
};

// Default rules plus overrides per statement fingerprint, from configuration.
class NormalizationConfig {
 public:
  NormalizationConfig() = default;
  explicit NormalizationConfig(NormalizationRules defaults) : defaults_(std::move(defaults)) {}

  void set_for_fingerprint(const std::string& fingerprint, NormalizationRules rules);
  const NormalizationRules& for_fingerprint(std::string_view fingerprint) const;
  const NormalizationRules& defaults() const { return defaults_; }
  // Whether any fingerprint has rules of its own (else every statement gets
  // the defaults, and no caller needs the fingerprint to pick its rules).
  bool has_overrides() const { return !by_fingerprint_.empty(); }

  // Parses the JSON configuration file format documented in docs/CONFIGURATION.md:
  //   {"default": {"numeric_scale": 2, "float_digits": 12, "timestamp_precision": 3,
  //                "ignored_columns": ["updated_at"]},
  //    "fingerprints": {"<fingerprint>": {...same keys...}}}
  // Throws shadowpipe::Failure naming the file and the offending key.
  static NormalizationConfig load_file(const std::string& path);
  static NormalizationConfig parse(std::string_view json, const std::string& origin);

 private:
  NormalizationRules defaults_;
  std::map<std::string, NormalizationRules, std::less<>> by_fingerprint_;
};

// Streaming builder: any row source (a PGresult, a test table, a cursor).
class DigestBuilder {
 public:
  DigestBuilder(std::vector<Column> columns, const NormalizationRules& rules);
  // One value per column, nullopt for SQL NULL. Values are libpq text form.
  void add_row(std::span<const std::optional<std::string_view>> values);
  ResultDigest finish() &&;

 private:
  std::vector<Column> columns_;        // the kept (not ignored) columns, in input order
  size_t input_columns_ = 0;           // values add_row expects, ignored columns included
  std::vector<int> kept_;              // input index of each kept column
  std::vector<uint8_t> value_kind_;    // per kept column: which normalization applies
  // Copied, not referenced: a builder must not dangle when given temporary rules.
  int numeric_scale_ = 0;
  int float_digits_ = 0;
  int timestamp_precision_ = 0;
  std::vector<uint64_t> column_sums_;  // per kept column: wrapping sum of value hashes
  std::vector<uint64_t> column_sequences_;  // per kept column: polynomial over its value hashes in row order
  std::vector<uint64_t> value_sums_;   // per kept column: wrapping sum of canonical value hashes
  std::vector<uint8_t> canonical_kind_;  // per kept column: which canonical form applies
  std::string canonical_scratch_;
  std::vector<uint64_t> value_hashes_; // the current row's value hashes, reused
  std::array<uint64_t, 64> pending_{}; // row hashes batched for the ordered stream
  size_t pending_count_ = 0;
  std::string scratch_;                // normalization output buffer, reused
  void* ordered_state_ = nullptr;      // XXH3_state_t*, owned; made when the first batch is full
  bool rules_active_ = false;          // some kept column has a normalization rule
  template <bool kRules, bool kDense>
  void add_row_as(const std::optional<std::string_view>* values);
  void flush_pending();
  uint64_t unordered_ = 0;             // wrapping sum of row hashes
  uint64_t rows_ = 0;
 public:
  ~DigestBuilder();
  DigestBuilder(const DigestBuilder&) = delete;
  DigestBuilder& operator=(const DigestBuilder&) = delete;
};

// 16 lowercase hex digits, the wire form of a digest.
std::string to_hex(uint64_t value);
// The same 16 characters into `out`, for a writer that must not allocate (a
// 16-character std::string is one byte past the short-string buffer).
void to_hex(uint64_t value, std::span<char, 16> out);
std::optional<uint64_t> from_hex(std::string_view text);

}  // namespace shadowpipe::digest
