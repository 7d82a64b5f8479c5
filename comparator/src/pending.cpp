#include "comparator/pending.hpp"

#include <algorithm>

namespace shadowpipe::comparator {

namespace {

// malloc's bookkeeping per allocation (glibc: a 16-byte header, 16-byte granularity).
constexpr size_t kAllocationOverhead = 16;

// Heap bytes of a string beyond the object itself (short strings live inline).
size_t heap_bytes(const std::string& text) {
  return text.capacity() > 15 ? text.capacity() + 1 + kAllocationOverhead : 0;
}

template <class T>
size_t vector_bytes(const std::vector<T>& items) {
  return items.capacity() ? items.capacity() * sizeof(T) + kAllocationOverhead : 0;
}

size_t statement_bytes(const SideStatement& statement) {
  const auto& result = statement.result;
  size_t bytes = sizeof(SideStatement) + heap_bytes(statement.fingerprint) + heap_bytes(result.sqlstate) +
                 heap_bytes(result.message);
  bytes += vector_bytes(result.columns);
  for (const auto& column : result.columns) bytes += heap_bytes(column.name);
  bytes += vector_bytes(result.column_digests);
  return bytes;
}

// An unordered_map node (id + entry + hash and link) plus its bucket slot and
// the entry's place in an ordered waiting index (tree node with a copy of the id).
size_t entry_overhead(const std::string& request_id) {
  // Node sizes: key string, the Entry (two optionals of the sides), hash and link.
  constexpr size_t kMapNode = 2 * sizeof(void*) + sizeof(std::string) + 160 + kAllocationOverhead;
  constexpr size_t kIndexNode = 4 * sizeof(void*) + sizeof(int64_t) + sizeof(std::string) + kAllocationOverhead;
  constexpr size_t kOffsetNode = 4 * sizeof(void*) + sizeof(int64_t) + kAllocationOverhead;
  return kMapNode + kIndexNode + kOffsetNode + 2 * heap_bytes(request_id) + sizeof(void*);
}

}  // namespace

size_t estimate_bytes(const std::string& request_id, const RequestSide& side) {
  size_t bytes = entry_overhead(request_id) + heap_bytes(side.key);
  for (const auto& statement : side.statements) bytes += statement_bytes(statement);
  bytes += vector_bytes(side.statements) - side.statements.capacity() * sizeof(SideStatement);
  bytes += vector_bytes(side.params);
  for (const auto& params : side.params) {
    bytes += vector_bytes(params);
    for (const auto& param : params) bytes += param ? heap_bytes(*param) : 0;
  }
  return bytes;
}

size_t estimate_bytes(const std::string& request_id, const ResultSide& side) {
  size_t bytes = entry_overhead(request_id);
  bytes += vector_bytes(side.statements) - side.statements.capacity() * sizeof(SideStatement);
  for (const auto& statement : side.statements) bytes += statement_bytes(statement);
  return bytes;
}

PairState::PairState(int64_t window_us, int64_t decided_retention_us, size_t decided_capacity)
    : window_us_(window_us), decided_retention_us_(decided_retention_us), decided_capacity_(decided_capacity) {}

void PairState::advance_clock(int64_t record_ts_us, int64_t wall_us, bool is_request) {
  // Only request times drive the window: a result's time is when the shadow
  // finished, which runs behind by the executor's lag and would expire
  // requests whose results are on their way.
  if (is_request) {
    request_clock_us_ = std::max(request_clock_us_, record_ts_us);
  } else {
    result_clock_us_ = std::max(result_clock_us_, record_ts_us);
  }
  last_record_wall_us_ = wall_us;
  paused_idle_us_ = 0;
}

int64_t PairState::clock_us(int64_t wall_us) const {
  const int64_t base = request_clock_us_ ? request_clock_us_ : result_clock_us_;
  if (paused_[0] || paused_[1]) return base + paused_idle_us_;
  return base + std::max<int64_t>(0, wall_us - last_record_wall_us_);
}

void PairState::pause_waiting_side(int64_t wall_us) {
  const auto waiting = waiting_side();
  if (!waiting || paused(*waiting)) return;
  set_paused(*waiting == Side::requests ? Side::results : Side::requests, false, wall_us);
  set_paused(*waiting, true, wall_us);
}

void PairState::resume(int64_t wall_us) {
  set_paused(Side::requests, false, wall_us);
  set_paused(Side::results, false, wall_us);
}

std::optional<Side> PairState::waiting_side() const {
  if (bytes_[0] == 0 && bytes_[1] == 0) return std::nullopt;
  return bytes_[0] >= bytes_[1] ? Side::requests : Side::results;
}

void PairState::set_paused(Side side, bool paused, int64_t wall_us) {
  const bool was_paused = paused_[0] || paused_[1];
  paused_[static_cast<int>(side)] = paused;
  const bool is_paused = paused_[0] || paused_[1];
  if (!was_paused && is_paused) {
    paused_idle_us_ = std::max<int64_t>(0, wall_us - last_record_wall_us_);
  } else if (was_paused && !is_paused) {
    // The paused time does not count as idle time.
    last_record_wall_us_ = wall_us - paused_idle_us_;
  }
}

void PairState::consumed(Side side, int64_t offset, int64_t wall_us) {
  auto& next = next_offset_[static_cast<int>(side)];
  next = std::max(next.value_or(0), offset + 1);
  last_record_wall_us_ = wall_us;
  paused_idle_us_ = 0;
  drop_passed_joins();
}

void PairState::record_join(const Joined& joined) {
  if (joined.request.offset < 0 || joined.result.offset < 0) return;
  if (replayable_joins_.emplace(joined.request.offset, joined.result.offset).second) {
    replayable_result_offsets_.insert(joined.result.offset);
  }
  drop_passed_joins();
}

void PairState::drop_passed_joins() {
  const auto requests_position = commit_offset(Side::requests);
  if (!requests_position) return;
  while (!replayable_joins_.empty() && replayable_joins_.begin()->first < *requests_position) {
    replayable_result_offsets_.erase(replayable_result_offsets_.find(replayable_joins_.begin()->second));
    replayable_joins_.erase(replayable_joins_.begin());
  }
}

uint64_t PairState::id_hash(const std::string& request_id) { return std::hash<std::string>{}(request_id); }

void PairState::remember(const std::string& request_id) {
  const uint64_t hash = id_hash(request_id);
  if (decided_.insert(hash).second) decided_order_.emplace_back(request_clock_us_, hash);
  forget_expired_decisions();
}

void PairState::mark_decided(const std::string& request_id) { remember(request_id); }

void PairState::forget_expired_decisions() {
  while (!decided_order_.empty() && (decided_order_.size() > decided_capacity_ ||
                                     decided_order_.front().first < request_clock_us_ - decided_retention_us_)) {
    decided_.erase(decided_order_.front().second);
    decided_order_.pop_front();
  }
}

PairState::Added PairState::add_request(std::string request_id, RequestSide side, int64_t wall_us) {
  consumed(Side::requests, side.offset, wall_us);
  advance_clock(side.ts_us, wall_us, true);
  if (was_decided(request_id)) return {Outcome::duplicate, std::nullopt};
  auto [it, inserted] = entries_.try_emplace(request_id);
  Entry& entry = it->second;
  if (entry.request) return {Outcome::duplicate, std::nullopt};
  if (entry.result) {
    Joined joined{request_id, std::move(side), std::move(*entry.result)};
    waiting_results_.erase({joined.result.ts_us, request_id});
    pending_offsets_[1].erase(pending_offsets_[1].find(joined.result.offset));
    bytes_[1] -= entry.bytes;
    entries_.erase(it);
    remember(joined.request_id);
    record_join(joined);
    return {Outcome::joined, std::move(joined)};
  }
  entry.bytes = estimate_bytes(request_id, side);
  bytes_[0] += entry.bytes;
  pending_offsets_[0].insert(side.offset);
  waiting_requests_.emplace(side.ts_us, request_id);
  entry.request = std::move(side);
  return {};
}

PairState::Added PairState::add_result(std::string request_id, ResultSide side, int64_t wall_us) {
  consumed(Side::results, side.offset, wall_us);
  advance_clock(side.ts_us, wall_us, false);
  if (was_decided(request_id)) return {Outcome::duplicate, std::nullopt};
  auto [it, inserted] = entries_.try_emplace(request_id);
  Entry& entry = it->second;
  if (entry.result) return {Outcome::duplicate, std::nullopt};
  if (entry.request) {
    Joined joined{request_id, std::move(*entry.request), std::move(side)};
    waiting_requests_.erase({joined.request.ts_us, request_id});
    pending_offsets_[0].erase(pending_offsets_[0].find(joined.request.offset));
    bytes_[0] -= entry.bytes;
    entries_.erase(it);
    remember(joined.request_id);
    record_join(joined);
    return {Outcome::joined, std::move(joined)};
  }
  entry.bytes = estimate_bytes(request_id, side);
  bytes_[1] += entry.bytes;
  pending_offsets_[1].insert(side.offset);
  waiting_results_.emplace(side.ts_us, request_id);
  entry.result = std::move(side);
  return {};
}

PairState::Expired PairState::expire(int64_t wall_us) {
  Expired expired;
  const int64_t horizon = clock_us(wall_us) - window_us_;
  while (!waiting_requests_.empty() && waiting_requests_.begin()->first < horizon) {
    const std::string request_id = waiting_requests_.begin()->second;
    waiting_requests_.erase(waiting_requests_.begin());
    auto it = entries_.find(request_id);
    Entry& entry = it->second;
    pending_offsets_[0].erase(pending_offsets_[0].find(entry.request->offset));
    bytes_[0] -= entry.bytes;
    expired.missing.push_back(Missing{request_id, std::move(*entry.request)});
    entries_.erase(it);
    remember(request_id);
  }
  // A result is at least as late as its request, so once the requests have
  // moved a window past it, its request is not coming (it was dead-lettered,
  // or decided before a replay that started between the two).
  while (!waiting_results_.empty() && waiting_results_.begin()->first < horizon) {
    const std::string request_id = waiting_results_.begin()->second;
    waiting_results_.erase(waiting_results_.begin());
    auto it = entries_.find(request_id);
    pending_offsets_[1].erase(pending_offsets_[1].find(it->second.result->offset));
    bytes_[1] -= it->second.bytes;
    entries_.erase(it);
    ++expired.orphan_results;
  }
  forget_expired_decisions();
  drop_passed_joins();
  return expired;
}

std::optional<int64_t> PairState::commit_offset(Side side) const {
  const int index = static_cast<int>(side);
  std::optional<int64_t> position =
      pending_offsets_[index].empty() ? next_offset_[index] : std::optional<int64_t>(*pending_offsets_[index].begin());
  // The results of requests that a restart replays must be replayed as well,
  // or those requests would wait in vain and expire as shadow_missing.
  if (side == Side::results && position && !replayable_result_offsets_.empty()) {
    position = std::min(*position, *replayable_result_offsets_.begin());
  }
  return position;
}

std::optional<int64_t> PairState::oldest_pending_ts() const {
  if (waiting_requests_.empty()) return std::nullopt;
  return waiting_requests_.begin()->first;
}

}  // namespace shadowpipe::comparator
