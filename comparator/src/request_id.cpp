#include "comparator/request_id.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <tuple>

namespace shadowpipe::comparator {

namespace {

constexpr size_t kUuidText = 36;
constexpr bool is_dash_position(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }
constexpr char kDigits[] = "0123456789abcdef";

int lower_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase too: it would not come back as it came
}

// The 16 bytes of a UUID in its canonical text (lowercase, dashes at 8, 13,
// 18 and 23), nullopt for any other text.
std::optional<std::array<char, 16>> parse_uuid(std::string_view text) {
  if (text.size() != kUuidText) return std::nullopt;
  std::array<char, 16> bytes{};
  size_t out = 0;
  for (size_t i = 0; i < kUuidText;) {
    if (is_dash_position(i)) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    const int high = lower_hex(text[i]);
    const int low = lower_hex(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes[out++] = static_cast<char>((high << 4) | low);
    i += 2;
  }
  return bytes;
}

}  // namespace

RequestId::RequestId(std::string_view id) {
  if (auto bytes = parse_uuid(id)) {
    kind_ = Kind::uuid;
    std::copy(bytes->begin(), bytes->end(), inline_.begin());
  } else if (id.size() <= kInlineText) {
    kind_ = Kind::inline_text;
    size_ = static_cast<uint8_t>(id.size());
    std::copy(id.begin(), id.end(), inline_.begin());
  } else {
    kind_ = Kind::heap_text;
    const size_t size = id.size();
    heap_ = std::make_unique_for_overwrite<char[]>(size);
    std::copy(id.begin(), id.end(), heap_.get());
    std::memcpy(inline_.data(), &size, sizeof size);
  }
}

RequestId::RequestId(RequestId&& other) noexcept
    : heap_(std::move(other.heap_)), inline_(other.inline_), size_(other.size_), kind_(other.kind_) {
  other.size_ = 0;
  other.kind_ = Kind::inline_text;
}

RequestId& RequestId::operator=(RequestId&& other) noexcept {
  if (this != &other) {
    heap_ = std::move(other.heap_);
    inline_ = other.inline_;
    size_ = other.size_;
    kind_ = other.kind_;
    other.size_ = 0;
    other.kind_ = Kind::inline_text;
  }
  return *this;
}

size_t RequestId::heap_size() const {
  size_t size = 0;
  std::memcpy(&size, inline_.data(), sizeof size);
  return size;
}

std::string_view RequestId::text() const {
  return kind_ == Kind::heap_text ? std::string_view(heap_.get(), heap_size()) : std::string_view(inline_.data(), size_);
}

std::array<char, kUuidText> RequestId::uuid_text() const {
  std::array<char, kUuidText> out;
  size_t in = 0;
  for (size_t i = 0; i < kUuidText;) {
    if (is_dash_position(i)) {
      out[i++] = '-';
      continue;
    }
    const auto byte = static_cast<unsigned char>(inline_[in++]);
    out[i] = kDigits[byte >> 4];
    out[i + 1] = kDigits[byte & 0xF];
    i += 2;
  }
  return out;
}

std::string RequestId::str() const {
  if (kind_ != Kind::uuid) return std::string(text());
  const auto uuid = uuid_text();
  return std::string(uuid.data(), uuid.size());
}

uint64_t RequestId::text_hash() const {
  if (kind_ != Kind::uuid) return std::hash<std::string_view>{}(text());
  const auto uuid = uuid_text();
  return std::hash<std::string_view>{}(std::string_view(uuid.data(), uuid.size()));
}

bool RequestId::operator==(std::string_view id) const {
  if (kind_ != Kind::uuid) return text() == id;
  const auto bytes = parse_uuid(id);
  return bytes && std::equal(bytes->begin(), bytes->end(), inline_.begin());
}

bool RequestId::operator==(const RequestId& other) const {
  if (kind_ != other.kind_) return false;
  if (kind_ == Kind::uuid) return std::equal(inline_.begin(), inline_.begin() + 16, other.inline_.begin());
  return text() == other.text();
}

bool RequestId::operator<(const RequestId& other) const {
  if (kind_ != other.kind_) return kind_ < other.kind_;
  if (kind_ == Kind::uuid) {
    return std::lexicographical_compare(inline_.begin(), inline_.begin() + 16, other.inline_.begin(),
                                        other.inline_.begin() + 16);
  }
  return text() < other.text();
}

size_t RequestId::heap_bytes_for(std::string_view id) {
  return parse_uuid(id) || id.size() <= kInlineText ? 0 : allocation_bytes(id.size());
}

}  // namespace shadowpipe::comparator
