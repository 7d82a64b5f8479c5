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
         !result.order_total && result.sqlstate.size() <= CompactStatement::kSqlstateCapacity &&
         result.column_digests.size() <= CompactStatement::kMaxDigests &&
         result.column_ordered.size() <= CompactStatement::kMaxDigests &&
         result.column_values.size() <= CompactStatement::kMaxDigests;
}

std::vector<uint64_t> slice(const uint64_t* from, uint32_t count) {
  return count ? std::vector<uint64_t>(from, from + count) : std::vector<uint64_t>{};
}

static_assert(std::is_trivially_destructible_v<CompactStatement>);
static_assert(sizeof(CompactStatement) % alignof(uint64_t) == 0, "the digests follow the statements");
static_assert(sizeof(CompactStatement) == 56, "a waiting statement's fixed part");
static_assert(alignof(RequestSide) > 1 && __STDCPP_DEFAULT_NEW_ALIGNMENT__ > 1, "the low bit of either form's address is free");

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
  return side.params.empty() && side.statements.size() <= UINT32_MAX && side.key.size() <= UINT32_MAX &&
         std::all_of(side.statements.begin(), side.statements.end(), statement_fits);
}

size_t PendingRequest::storage_bytes(const RequestSide& side) {
  size_t digests = 0;
  for (const auto& statement : side.statements) digests += digest_count(statement.result);
  return sizeof(Header) + side.statements.size() * sizeof(CompactStatement) + digests * sizeof(uint64_t) +
         side.key.size();
}

PendingRequest::PendingRequest(RequestSide&& side, LayoutTable& layouts) : ts_us_(side.ts_us), offset_(side.offset) {
  if (!fits(side)) {
    held_ = reinterpret_cast<std::uintptr_t>(new RequestSide(std::move(side))) | kWhole;
    return;
  }
  held_ = reinterpret_cast<std::uintptr_t>(new std::byte[storage_bytes(side)]);
  Header& header = *new (storage()) Header{static_cast<uint32_t>(side.statements.size()),
                                                 static_cast<uint32_t>(side.key.size())};
  CompactStatement* const compact = statements();
  uint64_t* next_digest = reinterpret_cast<uint64_t*>(compact + header.statement_count);
  for (uint32_t i = 0; i < header.statement_count; ++i) {
    const auto& from = side.statements[i];
    const auto& result = from.result;
    CompactStatement& to = *new (&compact[i]) CompactStatement{};
    to.layout = layouts.acquire(from.fingerprint, result.columns);
    to.rows = result.rows;
    to.latency_us = result.latency_us;
    to.ordered = result.ordered;
    to.unordered = result.unordered;
    to.status = static_cast<uint8_t>(result.status);
    to.sqlstate_size = static_cast<uint8_t>(result.sqlstate.size());
    std::memcpy(to.sqlstate, result.sqlstate.data(), result.sqlstate.size());
    to.column_digests = static_cast<uint16_t>(result.column_digests.size());
    to.column_ordered = static_cast<uint16_t>(result.column_ordered.size());
    to.column_values = static_cast<uint16_t>(result.column_values.size());
    next_digest = std::copy(result.column_digests.begin(), result.column_digests.end(), next_digest);
    next_digest = std::copy(result.column_ordered.begin(), result.column_ordered.end(), next_digest);
    next_digest = std::copy(result.column_values.begin(), result.column_values.end(), next_digest);
  }
  std::memcpy(next_digest, side.key.data(), side.key.size());
}

PendingRequest& PendingRequest::operator=(PendingRequest&& other) noexcept {
  if (this != &other) {
    drop();
    ts_us_ = other.ts_us_;
    offset_ = other.offset_;
    held_ = std::exchange(other.held_, 0);
  }
  return *this;
}

void PendingRequest::drop() noexcept {
  if (held_ & kWhole) {
    delete whole();
  } else {
    delete[] storage();
  }
  held_ = 0;
}

RequestSide PendingRequest::take(LayoutTable& layouts) {
  if (held_ & kWhole) {
    RequestSide side = std::move(*whole());
    drop();
    return side;
  }
  RequestSide side;
  side.ts_us = ts_us_;
  side.offset = offset_;
  const Header header = this->header();
  CompactStatement* const compact = statements();
  const uint64_t* digests = reinterpret_cast<const uint64_t*>(compact + header.statement_count);
  side.statements.reserve(header.statement_count);
  for (uint32_t i = 0; i < header.statement_count; ++i) {
    CompactStatement& from = compact[i];
    SideStatement statement{from.layout->fingerprint, {}};
    auto& result = statement.result;
    result.status = static_cast<wire::Status>(from.status);
    result.sqlstate.assign(from.sqlstate, from.sqlstate_size);
    result.rows = from.rows;
    result.columns = from.layout->columns;
    result.ordered = from.ordered;
    result.unordered = from.unordered;
    result.column_digests = slice(digests, from.column_digests);
    result.column_ordered = slice(digests + from.column_digests, from.column_ordered);
    result.column_values = slice(digests + from.column_digests + from.column_ordered, from.column_values);
    digests += from.digest_count();
    result.latency_us = from.latency_us;
    layouts.release(from.layout);
    from.layout = nullptr;
    side.statements.push_back(std::move(statement));
  }
  side.key.assign(reinterpret_cast<const char*>(digests), header.key_size);
  drop();
  return side;
}

size_t PendingRequest::storage_size() const {
  const Header& header = this->header();
  size_t digests = 0;
  for (uint32_t i = 0; i < header.statement_count; ++i) digests += statements()[i].digest_count();
  return sizeof(Header) + header.statement_count * sizeof(CompactStatement) + digests * sizeof(uint64_t) +
         header.key_size;
}

size_t PendingRequest::heap_bytes() const {
  if (held_ & kWhole) return sizeof(RequestSide) + kAllocationOverhead + comparator::heap_bytes(*whole());
  return held_ ? storage_size() + kAllocationOverhead : 0;
}

}  // namespace shadowpipe::comparator
