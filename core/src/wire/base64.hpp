// Base64 (RFC 4648, with padding) for the bytes a wire record carries that
// are not text: binary parameters and COPY data (requests v2).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace shadowpipe::wire::base64 {

inline constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline void encode(std::string_view bytes, std::string& out) {
  out.clear();
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kAlphabet[(group >> shift) & 0x3F]);
  }
  if (const size_t rest = bytes.size() - i; rest > 0) {
    const uint32_t group = (at(i) << 16) | (rest == 2 ? at(i + 1) << 8 : 0);
    out.push_back(kAlphabet[(group >> 18) & 0x3F]);
    out.push_back(kAlphabet[(group >> 12) & 0x3F]);
    out.push_back(rest == 2 ? kAlphabet[(group >> 6) & 0x3F] : '=');
    out.push_back('=');
  }
}

// False when `text` is not canonical padded base64 (length a multiple of 4,
// only the alphabet, '=' only at the end); `out` then holds no meaning.
inline bool decode(std::string_view text, std::string& out) {
  static constexpr std::array<uint8_t, 256> kValue = [] {
    std::array<uint8_t, 256> table{};
    table.fill(0xFF);
    for (uint8_t v = 0; v < 64; ++v) table[static_cast<unsigned char>(kAlphabet[v])] = v;
    return table;
  }();
  out.clear();
  if (text.size() % 4 != 0) return false;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const size_t padding = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    if (padding == 1 && text[i + 2] == '=') return false;  // "x=y=" is not base64
    uint32_t group = 0;
    for (size_t k = 0; k < 4 - padding; ++k) {
      const uint8_t value = kValue[static_cast<unsigned char>(text[i + k])];
      if (value == 0xFF) return false;
      group |= static_cast<uint32_t>(value) << (18 - 6 * k);
    }
    out.push_back(static_cast<char>(group >> 16));
    if (padding < 2) out.push_back(static_cast<char>((group >> 8) & 0xFF));
    if (padding < 1) out.push_back(static_cast<char>(group & 0xFF));
  }
  return true;
}

}  // namespace shadowpipe::wire::base64
