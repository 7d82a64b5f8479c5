#include "shadowpipe/proxy/protocol.hpp"

#include <algorithm>
#include <cstring>

namespace shadowpipe::proxy::protocol {

uint32_t read_u32(const char* bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

bool MessageFramer::feed(std::string_view bytes, Sink& sink) {
  if (failed_) return false;
  while (!bytes.empty()) {
    if (!in_body_) {
      const size_t take = std::min(bytes.size(), sizeof header_ - header_fill_);
      std::memcpy(header_ + header_fill_, bytes.data(), take);
      header_fill_ += take;
      bytes.remove_prefix(take);
      if (header_fill_ < sizeof header_) return true;
      header_fill_ = 0;
      type_ = header_[0];
      const uint32_t length = read_u32(header_ + 1);
      if (length < 4) {
        failed_ = true;
        return false;
      }
      body_size_ = length - 4;
      remaining_ = body_size_;
      skipping_ = body_size_ + 5 > max_message_;
      body_.clear();
      if (!skipping_) body_.reserve(body_size_);
      in_body_ = true;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), remaining_));
    if (!skipping_) body_.append(bytes.data(), take);
    remaining_ -= take;
    bytes.remove_prefix(take);
    if (remaining_ == 0) {
      in_body_ = false;
      last_type_ = type_;
      if (skipping_) {
        sink.skipped(type_, body_size_);
      } else {
        sink.message(type_, body_);
      }
    }
  }
  return true;
}

uint8_t Reader::byte() {
  if (rest_.empty()) {
    ok_ = false;
    return 0;
  }
  const auto value = static_cast<uint8_t>(rest_.front());
  rest_.remove_prefix(1);
  return value;
}

int16_t Reader::i16() {
  if (rest_.size() < 2) {
    ok_ = false;
    rest_ = {};
    return 0;
  }
  const auto* b = reinterpret_cast<const unsigned char*>(rest_.data());
  rest_.remove_prefix(2);
  return static_cast<int16_t>((b[0] << 8) | b[1]);
}

int32_t Reader::i32() {
  if (rest_.size() < 4) {
    ok_ = false;
    rest_ = {};
    return 0;
  }
  const auto value = static_cast<int32_t>(read_u32(rest_.data()));
  rest_.remove_prefix(4);
  return value;
}

std::string_view Reader::cstring() {
  const size_t end = rest_.find('\0');
  if (end == std::string_view::npos) {
    ok_ = false;
    rest_ = {};
    return {};
  }
  auto value = rest_.substr(0, end);
  rest_.remove_prefix(end + 1);
  return value;
}

std::string_view Reader::bytes(size_t count) {
  if (rest_.size() < count) {
    ok_ = false;
    rest_ = {};
    return {};
  }
  auto value = rest_.substr(0, count);
  rest_.remove_prefix(count);
  return value;
}

std::string startup_parameter(std::string_view message, std::string_view name) {
  if (message.size() < 8) return {};
  Reader reader(message.substr(8));
  while (reader.ok() && !reader.done()) {
    const auto key = reader.cstring();
    if (key.empty()) break;  // the list's terminator
    const auto value = reader.cstring();
    if (reader.ok() && key == name) return std::string(value);
  }
  return {};
}

std::string error_response(std::string_view severity, std::string_view sqlstate, std::string_view message) {
  std::string body;
  auto field = [&](char code, std::string_view text) {
    body.push_back(code);
    body.append(text);
    body.push_back('\0');
  };
  field('S', severity);
  field('V', severity);
  field('C', sqlstate);
  field('M', message);
  body.push_back('\0');
  std::string out;
  out.push_back('E');
  const auto length = static_cast<uint32_t>(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((length >> shift) & 0xFF));
  return out + body;
}

ErrorFields parse_error(std::string_view payload) {
  ErrorFields out;
  Reader reader(payload);
  while (reader.ok() && !reader.done()) {
    const char code = static_cast<char>(reader.byte());
    if (code == '\0') break;
    const auto text = reader.cstring();
    if (code == 'C') out.sqlstate.assign(text);
    if (code == 'M') out.message.assign(text);
    if (code == 'V' || (code == 'S' && out.severity.empty())) out.severity.assign(text);
  }
  return out;
}

std::optional<int64_t> command_rows(std::string_view tag) {
  static constexpr std::string_view kCounted[] = {"INSERT ", "DELETE ", "UPDATE ", "SELECT ", "MOVE ",
                                                  "FETCH ",  "COPY ",   "MERGE "};
  bool counted = false;
  for (auto prefix : kCounted) counted = counted || tag.starts_with(prefix);
  if (!counted) return std::nullopt;
  const size_t space = tag.rfind(' ');
  int64_t rows = 0;
  for (char c : tag.substr(space + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    rows = rows * 10 + (c - '0');
  }
  return rows;
}

}  // namespace shadowpipe::proxy::protocol
