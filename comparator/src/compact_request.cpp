#include "comparator/compact_request.hpp"

#include "comparator/pending.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace shadowpipe::comparator {

namespace {

// malloc's bookkeeping per allocation (glibc: a 16-byte header, 16-byte granularity).
constexpr size_t kAllocationOverhead = 16;

size_t string_heap_bytes(const std::string& text) {
  return text.capacity() > 15 ? text.capacity() + 1 + kAllocationOverhead : 0;
}

uint64_t mix(uint64_t seed, uint64_t value) {
  return seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

uint64_t layout_hash(const std::string& fingerprint, const std::vector<digest::Column>& columns) {
  const std::hash<std::string_view> hash;
  uint64_t seed = hash(fingerprint);
  for (const auto& column : columns) {
    seed = mix(seed, hash(column.name));
    seed = mix(seed, hash(column.type_name));
    seed = mix(seed, column.type_oid);
    seed = mix(seed, static_cast<uint16_t>(column.format));
  }
  return seed;
}

bool statement_fits(const SideStatement& statement) {
  const auto& result = statement.result;
  return result.message.empty() && result.volatile_columns.empty() && result.volatile_statement.empty() &&
         !result.order_total && result.sqlstate.size() <= CompactStatement::kSqlstateCapacity;
}

std::vector<uint64_t> slice(const uint64_t* from, uint32_t count) {
  return count ? std::vector<uint64_t>(from, from + count) : std::vector<uint64_t>{};
}

static_assert(std::is_trivially_destructible_v<CompactStatement>);
static_assert(sizeof(CompactStatement) % alignof(uint64_t) == 0, "the digests follow the statements");

size_t digest_count(const wire::StatementResult& result) {
  return result.column_digests.size() + result.column_ordered.size() + result.column_values.size();
}

}  // namespace

size_t layout_bytes(const std::string& fingerprint, const std::vector<digest::Column>& columns) {
  // An unordered_multimap node: link, hash key, the Layout; and its bucket slot.
  size_t bytes = sizeof(void*) + sizeof(uint64_t) + sizeof(Layout) + kAllocationOverhead + sizeof(void*);
  bytes += string_heap_bytes(fingerprint);
  if (!columns.empty()) bytes += columns.size() * sizeof(digest::Column) + kAllocationOverhead;
  for (const auto& column : columns) bytes += string_heap_bytes(column.name) + string_heap_bytes(column.type_name);
  return bytes;
}

Layout* LayoutTable::acquire(const std::string& fingerprint, const std::vector<digest::Column>& columns) {
  const uint64_t hash = layout_hash(fingerprint, columns);
  auto [first, last] = layouts_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    Layout& layout = it->second;
    if (layout.fingerprint != fingerprint || layout.columns != columns) continue;
    if (layout.references++ == 0) {
      --unused_;
      live_bytes_ += layout.bytes;
    }
    return &layout;
  }
  auto it = layouts_.emplace(hash, Layout{fingerprint, columns, 1, 0});
  Layout& layout = it->second;
  layout.bytes = layout_bytes(layout.fingerprint, layout.columns);
  live_bytes_ += layout.bytes;
  return &layout;
}

void LayoutTable::release(Layout* layout) {
  if (--layout->references > 0) return;
  live_bytes_ -= layout->bytes;
  // Swept only once the unused are at least half the table, so a sweep
  // costs O(1) per release however many layouts are held.
  if (++unused_ > kKeptUnused && 2 * unused_ >= layouts_.size()) drop_unused();
}

void LayoutTable::drop_unused() {
  std::erase_if(layouts_, [](const auto& item) { return item.second.references == 0; });
  unused_ = 0;
}

bool PendingRequest::fits(const RequestSide& side) {
  return side.params.empty() && side.statements.size() <= UINT32_MAX &&
         std::all_of(side.statements.begin(), side.statements.end(), statement_fits);
}

PendingRequest::PendingRequest(RequestSide&& side, LayoutTable& layouts) : ts_us_(side.ts_us), offset_(side.offset) {
  if (!fits(side)) {
    whole_ = std::make_unique<RequestSide>(std::move(side));
    return;
  }
  key_ = std::move(side.key);
  statement_count_ = static_cast<uint32_t>(side.statements.size());
  size_t digests = 0;
  for (const auto& statement : side.statements) digests += digest_count(statement.result);
  const size_t bytes = statement_count_ * sizeof(CompactStatement) + digests * sizeof(uint64_t);
  if (bytes) {
    storage_ = std::make_unique_for_overwrite<std::byte[]>(bytes);
    statements_ = reinterpret_cast<CompactStatement*>(storage_.get());
  }
  uint64_t* next_digest = reinterpret_cast<uint64_t*>(storage_.get() + statement_count_ * sizeof(CompactStatement));
  for (uint32_t i = 0; i < statement_count_; ++i) {
    const auto& from = side.statements[i];
    const auto& result = from.result;
    CompactStatement& to = *new (&statements_[i]) CompactStatement{};
    to.layout = layouts.acquire(from.fingerprint, result.columns);
    to.rows = result.rows;
    to.latency_us = result.latency_us;
    to.ordered = result.ordered;
    to.unordered = result.unordered;
    to.status = result.status;
    to.sqlstate_size = static_cast<uint8_t>(result.sqlstate.size());
    std::memcpy(to.sqlstate, result.sqlstate.data(), result.sqlstate.size());
    to.column_digests = static_cast<uint32_t>(result.column_digests.size());
    to.column_ordered = static_cast<uint32_t>(result.column_ordered.size());
    to.column_values = static_cast<uint32_t>(result.column_values.size());
    to.digests = next_digest;
    next_digest = std::copy(result.column_digests.begin(), result.column_digests.end(), next_digest);
    next_digest = std::copy(result.column_ordered.begin(), result.column_ordered.end(), next_digest);
    next_digest = std::copy(result.column_values.begin(), result.column_values.end(), next_digest);
  }
}

PendingRequest::PendingRequest(PendingRequest&& other) noexcept
    : ts_us_(other.ts_us_),
      offset_(other.offset_),
      key_(std::move(other.key_)),
      statement_count_(std::exchange(other.statement_count_, 0)),
      storage_(std::move(other.storage_)),
      statements_(std::exchange(other.statements_, nullptr)),
      whole_(std::move(other.whole_)) {}

PendingRequest& PendingRequest::operator=(PendingRequest&& other) noexcept {
  ts_us_ = other.ts_us_;
  offset_ = other.offset_;
  key_ = std::move(other.key_);
  statement_count_ = std::exchange(other.statement_count_, 0);
  storage_ = std::move(other.storage_);
  statements_ = std::exchange(other.statements_, nullptr);
  whole_ = std::move(other.whole_);
  return *this;
}

RequestSide PendingRequest::take(LayoutTable& layouts) {
  if (whole_) return std::move(*whole_);
  RequestSide side;
  side.key = std::move(key_);
  side.ts_us = ts_us_;
  side.offset = offset_;
  side.statements.reserve(statement_count_);
  for (uint32_t i = 0; i < statement_count_; ++i) {
    CompactStatement& from = statements_[i];
    SideStatement statement{from.layout->fingerprint, {}};
    auto& result = statement.result;
    result.status = from.status;
    result.sqlstate.assign(from.sqlstate, from.sqlstate_size);
    result.rows = from.rows;
    result.columns = from.layout->columns;
    result.ordered = from.ordered;
    result.unordered = from.unordered;
    const uint64_t* digests = from.digests;
    result.column_digests = slice(digests, from.column_digests);
    result.column_ordered = slice(digests + from.column_digests, from.column_ordered);
    result.column_values = slice(digests + from.column_digests + from.column_ordered, from.column_values);
    result.latency_us = from.latency_us;
    layouts.release(from.layout);
    from.layout = nullptr;
    side.statements.push_back(std::move(statement));
  }
  storage_.reset();
  statements_ = nullptr;
  statement_count_ = 0;
  return side;
}

size_t PendingRequest::heap_bytes() const {
  if (whole_) return sizeof(RequestSide) + kAllocationOverhead + comparator::heap_bytes(*whole_);
  size_t storage = statement_count_ * sizeof(CompactStatement);
  for (uint32_t i = 0; i < statement_count_; ++i) {
    const auto& statement = statements_[i];
    storage += (size_t{statement.column_digests} + statement.column_ordered + statement.column_values) * sizeof(uint64_t);
  }
  return string_heap_bytes(key_) + (storage ? storage + kAllocationOverhead : 0);
}

}  // namespace shadowpipe::comparator
