#include "comparator/join_index.hpp"

#include <algorithm>
#include <bit>

namespace shadowpipe::comparator {

namespace {
// malloc's bookkeeping per allocation (glibc: a 16-byte header, 16-byte granularity).
constexpr size_t kAllocationOverhead = 16;
// Below this many slots neither the passed front nor the holes are worth a sweep.
constexpr size_t kSweepAtLeast = 32;
}  // namespace

PendingOffsets::Slot* PendingOffsets::find(int64_t offset) {
  auto it = std::lower_bound(slots_.begin() + static_cast<std::ptrdiff_t>(head_), slots_.end(), offset,
                             [](const Slot& slot, int64_t wanted) { return slot.offset < wanted; });
  return it != slots_.end() && it->offset == offset ? &*it : nullptr;
}

void PendingOffsets::add(int64_t offset, const RequestId* id) {
  Slot* slot = nullptr;
  if (head_ == slots_.size() || offset > slots_.back().offset) {
    slot = &slots_.emplace_back(Slot{offset, nullptr, 0});
  } else if (!(slot = find(offset))) {
    auto at = std::lower_bound(slots_.begin() + static_cast<std::ptrdiff_t>(head_), slots_.end(), offset,
                               [](const Slot& item, int64_t wanted) { return item.offset < wanted; });
    slot = &*slots_.insert(at, Slot{offset, nullptr, 0});
  }
  if (slot->records++ == 0) ++live_;
  if (!slot->id && id) {
    slot->id = id;
    ++waiting_;
  }
}

void PendingOffsets::remove(int64_t offset) {
  Slot* slot = find(offset);
  if (!slot || slot->records == 0) return;  // not pending: nothing to undo
  if (slot->id) {
    slot->id = nullptr;
    --waiting_;
  }
  if (--slot->records > 0) return;
  --live_;
  while (head_ < slots_.size() && slots_[head_].records == 0) ++head_;
  drop_holes();
}

void PendingOffsets::drop_holes() {
  if (head_ == slots_.size()) {
    slots_.clear();
    head_ = 0;
    return;
  }
  const size_t slots = slots_.size() - head_;
  if (head_ >= kSweepAtLeast && head_ >= slots) {
    slots_.erase(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  if (slots >= kSweepAtLeast && slots - live_ > live_) {
    std::erase_if(slots_, [](const Slot& slot) { return slot.records == 0; });
    head_ = 0;
  }
}

std::pair<int64_t, const RequestId*> PendingOffsets::first_waiting() const {
  if (waiting_ == 0) return {-1, nullptr};
  for (size_t i = head_; i < slots_.size(); ++i) {
    if (slots_[i].id) return {slots_[i].offset, slots_[i].id};
  }
  return {-1, nullptr};
}

size_t PendingOffsets::heap_bytes() const {
  return slots_.capacity() ? slots_.capacity() * sizeof(Slot) + kAllocationOverhead : 0;
}

bool DecidedIds::contains(uint64_t hash) const {
  if (hash == 0) return has_zero_;
  if (table_.empty()) return false;
  const size_t mask = table_.size() - 1;
  for (size_t i = home(hash);; i = (i + 1) & mask) {
    if (table_[i] == hash) return true;
    if (table_[i] == 0) return false;
  }
}

bool DecidedIds::insert(uint64_t hash, int64_t wall_us) {
  if (hash == 0) {
    if (has_zero_) return false;
    has_zero_ = true;
  } else {
    if (4 * (used_ + 1) > 3 * table_.size()) grow();
    const size_t mask = table_.size() - 1;
    size_t i = home(hash);
    for (; table_[i] != 0; i = (i + 1) & mask) {
      if (table_[i] == hash) return false;
    }
    table_[i] = hash;
    ++used_;
  }
  order_.emplace_back(wall_us, hash);
  return true;
}

void DecidedIds::grow() {
  const size_t size = table_.empty() ? 16 : 2 * table_.size();
  std::vector<uint64_t> old = std::exchange(table_, std::vector<uint64_t>(size, 0));
  shift_ = 64 - static_cast<unsigned>(std::countr_zero(size));
  const size_t mask = size - 1;
  for (uint64_t hash : old) {
    if (hash == 0) continue;
    size_t i = home(hash);
    while (table_[i] != 0) i = (i + 1) & mask;
    table_[i] = hash;
  }
}

// Backward-shift deletion: every entry after the erased one in its probe run
// moves back when its home allows, so a lookup never stops early at the gap.
void DecidedIds::erase(uint64_t hash) {
  if (hash == 0) {
    has_zero_ = false;
    return;
  }
  const size_t mask = table_.size() - 1;
  size_t gap = home(hash);
  while (table_[gap] != hash) {
    if (table_[gap] == 0) return;
    gap = (gap + 1) & mask;
  }
  for (size_t next = (gap + 1) & mask; table_[next] != 0; next = (next + 1) & mask) {
    const size_t wanted = home(table_[next]);
    // The entry at `next` may fill the gap when its home is not in (gap, next], cyclically.
    const bool home_after_gap = gap <= next ? (wanted > gap && wanted <= next) : (wanted > gap || wanted <= next);
    if (home_after_gap) continue;
    table_[gap] = table_[next];
    gap = next;
  }
  table_[gap] = 0;
  --used_;
}

void DecidedIds::forget(size_t capacity, int64_t oldest_kept_us) {
  while (!order_.empty() && (order_.size() > capacity || order_.front().first < oldest_kept_us)) {
    erase(order_.front().second);
    order_.pop_front();
  }
}

}  // namespace shadowpipe::comparator
