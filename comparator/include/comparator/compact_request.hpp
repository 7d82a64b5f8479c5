// A waiting request in the form it waits in: what deciding it takes, with the
// parts every request of a statement repeats (its fingerprint and its column
// layout) shared instead of copied. A request waits in this form and is given
// back exactly as it came (expand(compact(x)) == x) when it joins or is
// passed, so classification and the mismatch records see what they saw
// before; a request this form cannot hold exactly (parameters kept for the
// operator, the catalog's notes, an unusual SQLSTATE) waits as it came.
#pragma once

#include "comparator/classify.hpp"
#include "shadowpipe/digest.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace shadowpipe::comparator {

struct RequestSide;

// A fingerprint and a column layout, as one statement's results repeat them.
struct Layout {
  std::string fingerprint;
  std::vector<digest::Column> columns;
  size_t references = 0;  // waiting statements that hold it
  size_t bytes = 0;       // heap bytes it holds, its node included
};

// The layouts of one partition pair's waiting requests (a pair is owned by one
// worker: no lock). A layout no waiting request holds is kept for the next
// request of its statement and is not counted in live_bytes(): at most
// kKeptUnused of them, or as many as are held when more are (the sweep that
// drops them must find half the table unused to cost O(1) per release).
class LayoutTable {
 public:
  static constexpr size_t kKeptUnused = 256;
  LayoutTable() = default;
  LayoutTable(const LayoutTable&) = delete;
  LayoutTable& operator=(const LayoutTable&) = delete;

  // The layout equal to (fingerprint, columns), made when new; one more reference.
  Layout* acquire(const std::string& fingerprint, const std::vector<digest::Column>& columns);
  void release(Layout* layout);
  // Bytes of the layouts some waiting request holds.
  size_t live_bytes() const { return live_bytes_; }
  size_t size() const { return layouts_.size(); }

 private:
  void drop_unused();
  std::unordered_multimap<uint64_t, Layout> layouts_;  // by hash of fingerprint and columns
  size_t live_bytes_ = 0;
  size_t unused_ = 0;
};

// Heap bytes a layout of these parts holds on its own (its table node included).
size_t layout_bytes(const std::string& fingerprint, const std::vector<digest::Column>& columns);

// One statement's result without its fingerprint and columns (in the layout)
// and without its digests (they follow the request's statements in its one
// allocation). Trivially destructible: it lives in that allocation.
struct CompactStatement {
  static constexpr size_t kSqlstateCapacity = 8;  // SQLSTATEs have five characters
  static constexpr size_t kMaxDigests = UINT16_MAX;  // per vector; a result has at most 1,664 columns
  Layout* layout = nullptr;
  int64_t rows = 0;
  int64_t latency_us = 0;
  uint64_t ordered = 0;
  uint64_t unordered = 0;
  uint16_t column_digests = 0;
  uint16_t column_ordered = 0;
  uint16_t column_values = 0;
  uint8_t status = 0;  // a wire::Status
  uint8_t sqlstate_size = 0;
  char sqlstate[kSqlstateCapacity] = {};

  size_t digest_count() const { return size_t{column_digests} + column_ordered + column_values; }
};

// A waiting request: in compact form when it fits one, else as it came. A
// default-constructed one holds no request (an entry that is a result only).
class PendingRequest {
 public:
  PendingRequest() = default;
  // Moves out of `side`; acquires its layouts from `layouts`.
  PendingRequest(RequestSide&& side, LayoutTable& layouts);
  PendingRequest(PendingRequest&& other) noexcept
      : ts_us_(other.ts_us_), offset_(other.offset_), held_(std::exchange(other.held_, 0)) {}
  PendingRequest& operator=(PendingRequest&& other) noexcept;
  // Its layouts are released by take(); one dropped without take() leaves
  // its layouts referenced in the table (which frees them with itself).
  ~PendingRequest() { drop(); }

  // Whether it holds a request (until take()).
  explicit operator bool() const { return held_ != 0; }
  // The request exactly as it came; releases its layouts. Once only: it
  // holds no request after.
  RequestSide take(LayoutTable& layouts);

  int64_t ts_us() const { return ts_us_; }
  int64_t offset() const { return offset_; }
  bool compact() const { return held_ != 0 && (held_ & kWhole) == 0; }
  // Heap bytes it holds beyond itself, its layouts not included.
  size_t heap_bytes() const;

  // Whether a request can wait in compact form and come back exactly.
  static bool fits(const RequestSide& side);
  // The bytes of the one allocation a request that fits() waits in.
  static size_t storage_bytes(const RequestSide& side);

 private:
  // The compact form's one allocation: this header, the statements, every
  // statement's digests in statement order, then the key's characters.
  struct Header {
    uint32_t statement_count = 0;
    uint32_t key_size = 0;
  };
  // One word holds either form: the compact form's allocation, or (with
  // the low bit set; both are aligned) the request as it came.
  static constexpr std::uintptr_t kWhole = 1;
  std::byte* storage() const { return reinterpret_cast<std::byte*>(held_); }
  RequestSide* whole() const { return reinterpret_cast<RequestSide*>(held_ & ~kWhole); }
  Header& header() const { return *reinterpret_cast<Header*>(storage()); }
  CompactStatement* statements() const { return reinterpret_cast<CompactStatement*>(storage() + sizeof(Header)); }
  size_t storage_size() const;
  void drop() noexcept;

  int64_t ts_us_ = 0;
  int64_t offset_ = -1;
  std::uintptr_t held_ = 0;
};

}  // namespace shadowpipe::comparator
