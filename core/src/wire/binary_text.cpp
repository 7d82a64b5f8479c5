#include "shadowpipe/binary_text.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

namespace shadowpipe::digest {

namespace {

enum : uint32_t {
  kBool = 16, kBytea = 17, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23, kText = 25, kOid = 26,
  kFloat4 = 700, kFloat8 = 701, kBpchar = 1042, kVarchar = 1043, kUuid = 2950,
};

uint64_t big_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

template <class Number>
std::string decimal(Number value) {
  char buffer[32];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

// float4out/float8out with extra_float_digits > 0 (PostgreSQL 12+): the
// shortest digits that read back as the same value, written plainly when the
// decimal exponent is in [-4, precision) (precision 6 for float4, 15 for
// float8) and as d.ddde±XX otherwise; the special values as the server
// spells them.
template <class Float>
std::string float_text(Float value, int precision) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  std::string_view text(buffer, static_cast<size_t>(end - buffer));
  std::string sign;
  if (text.front() == '-') {
    sign = "-";
    text.remove_prefix(1);
  }
  const size_t e = text.find('e');
  int exponent = 0;
  std::from_chars(text.data() + e + (text[e + 1] == '+' ? 2 : 1), text.data() + text.size(), exponent);
  if (exponent < -4 || exponent >= precision) return sign + std::string(text);
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  if (exponent < 0) return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  const auto point = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= point) return sign + digits + std::string(point - digits.size(), '0');
  return sign + digits.substr(0, point) + "." + digits.substr(point);
}

}  // namespace

bool renders_binary(uint32_t type_oid) {
  switch (type_oid) {
    case kBool: case kBytea: case kName: case kInt8: case kInt2: case kInt4: case kText: case kOid:
    case kFloat4: case kFloat8: case kBpchar: case kVarchar: case kUuid:
      return true;
    default:
      return false;
  }
}

std::optional<std::string> binary_to_text(uint32_t type_oid, std::string_view bytes) {
  switch (type_oid) {
    case kBool:
      if (bytes.size() != 1) return std::nullopt;
      return std::string(bytes[0] != 0 ? "t" : "f");
    case kInt2:
      if (bytes.size() != 2) return std::nullopt;
      return decimal(static_cast<int16_t>(big_endian(bytes)));
    case kInt4:
      if (bytes.size() != 4) return std::nullopt;
      return decimal(static_cast<int32_t>(big_endian(bytes)));
    case kOid:
      if (bytes.size() != 4) return std::nullopt;
      return decimal(static_cast<uint32_t>(big_endian(bytes)));
    case kInt8:
      if (bytes.size() != 8) return std::nullopt;
      return decimal(static_cast<int64_t>(big_endian(bytes)));
    case kFloat4:
      if (bytes.size() != 4) return std::nullopt;
      return float_text(std::bit_cast<float>(static_cast<uint32_t>(big_endian(bytes))), 6);
    case kFloat8:
      if (bytes.size() != 8) return std::nullopt;
      return float_text(std::bit_cast<double>(big_endian(bytes)), 15);
    case kText: case kVarchar: case kBpchar: case kName:
      return std::string(bytes);  // the same bytes, in the client encoding, as the text form
    case kBytea: {
      static constexpr char kDigits[] = "0123456789abcdef";
      std::string out = "\\x";
      out.reserve(2 + 2 * bytes.size());
      for (char c : bytes) {
        out.push_back(kDigits[static_cast<unsigned char>(c) >> 4]);
        out.push_back(kDigits[static_cast<unsigned char>(c) & 0xF]);
      }
      return out;
    }
    case kUuid: {
      if (bytes.size() != 16) return std::nullopt;
      static constexpr char kDigits[] = "0123456789abcdef";
      std::string out;
      for (size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(kDigits[static_cast<unsigned char>(bytes[i]) >> 4]);
        out.push_back(kDigits[static_cast<unsigned char>(bytes[i]) & 0xF]);
      }
      return out;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace shadowpipe::digest
