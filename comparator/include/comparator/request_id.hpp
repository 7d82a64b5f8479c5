// A request id as the join state keeps it while its request or result waits.
// Recorders make canonical UUIDs (36 characters of text): kept as their 16
// bytes, such an id needs no allocation where a std::string of it needs one
// of 48 bytes beside its own 32. Any other id is kept as text, up to 22
// characters inline. Given back exactly: str() is the id it was made from.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace shadowpipe::comparator {

class RequestId {
 public:
  static constexpr size_t kInlineText = 22;

  RequestId() = default;
  explicit RequestId(std::string_view id);
  RequestId(RequestId&& other) noexcept;
  RequestId& operator=(RequestId&& other) noexcept;
  RequestId(const RequestId&) = delete;
  RequestId& operator=(const RequestId&) = delete;
  ~RequestId() = default;

  std::string str() const;
  // std::hash of the text, as of a std::string_view of it: an entry found
  // by the hash of the record's id is found by this one (no allocation).
  uint64_t text_hash() const;
  // Equal exactly when the ids' text is: each text has one form here.
  bool operator==(std::string_view id) const;
  bool operator==(const RequestId& other) const;
  // A total order for ordered indexes (not the text's order).
  bool operator<(const RequestId& other) const;

  bool uuid() const { return kind_ == Kind::uuid; }
  // Heap bytes it holds beyond itself (malloc's header included), and what
  // one made from `id` would.
  size_t heap_bytes() const { return kind_ == Kind::heap_text ? allocation_bytes(heap_size()) : 0; }
  static size_t heap_bytes_for(std::string_view id);

 private:
  enum class Kind : uint8_t { inline_text, heap_text, uuid };
  // Counted as malloc's 16-byte granularity plus a 16-byte header: an upper
  // bound (glibc takes max(32, the size plus 8 rounded up to 16)).
  static size_t allocation_bytes(size_t size) { return (size + 15) / 16 * 16 + 16; }
  size_t heap_size() const;
  std::string_view text() const;  // inline_text or heap_text only
  std::array<char, 36> uuid_text() const;

  std::unique_ptr<char[]> heap_;            // heap_text: the text
  std::array<char, kInlineText> inline_{};  // inline_text: the text; uuid: its 16 bytes; heap_text: its size
  uint8_t size_ = 0;                        // inline_text: the text's size
  Kind kind_ = Kind::inline_text;
};

static_assert(sizeof(RequestId) == 32, "as small as the std::string it replaces");

}  // namespace shadowpipe::comparator
