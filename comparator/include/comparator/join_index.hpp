// Flat containers of the join state (pending.hpp), in place of node-based
// trees and hash sets: a pair's state touches them for every record, and a
// node per record was most of its cost in allocations and cache misses.
#pragma once

#include "comparator/request_id.hpp"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowpipe::comparator {

// The pending offsets of one topic's partition, in offset order, each with the
// request id waiting at it. It answers exactly what a multiset of pending
// offsets beside a map offset -> id answered (the two indexes it replaces):
// two records claiming one offset (Kafka gives every record its own, but the
// join state must not break on it) count twice as pending offsets, and the
// offset keeps the id of the first of them for as long as that one waits.
//
// Kafka hands a partition's records over in offset order, so an offset is
// nearly always added after every other: a slot is appended, and the slots
// are a sorted vector. An offset added out of order is inserted (O(n), only
// in tests and a rewound pair's first records). A removed slot stays as a
// hole until the front passes it; the holes are swept when they are half the
// slots, so the memory stays within twice the live slots however long one
// offset waits.
class PendingOffsets {
 public:
  // One more record at `offset`; `id` (may be null: results keep no id here)
  // becomes its waiting id unless one is there already.
  void add(int64_t offset, const RequestId* id);
  // One record at `offset` leaves (the offset must be pending); the offset's
  // waiting id goes with it.
  void remove(int64_t offset);
  bool empty() const { return live_ == 0; }
  size_t waiting() const { return waiting_; }  // offsets with a waiting id
  // The smallest pending offset; only when !empty().
  int64_t first() const { return slots_[head_].offset; }

  // The waiting ids in offset order, from the smallest: (offset, id).
  // The first one, or {-1, nullptr} when none waits.
  std::pair<int64_t, const RequestId*> first_waiting() const;

  // Heap bytes of the slots (capacity, malloc's header).
  size_t heap_bytes() const;
  static constexpr size_t kSlotBytes = 24;

 private:
  struct Slot {
    int64_t offset = 0;
    const RequestId* id = nullptr;  // the waiting id, or null when none waits at the offset
    uint32_t records = 0;             // records pending at the offset; 0: a hole
  };
  static_assert(sizeof(Slot) == kSlotBytes);
  Slot* find(int64_t offset);
  void drop_holes();

  std::vector<Slot> slots_;  // sorted by offset from head_ on; before head_: passed
  size_t head_ = 0;
  size_t live_ = 0;     // slots with records
  size_t waiting_ = 0;  // slots with an id
};

// Hashes of decided request ids, with the wall time each was decided, for
// eviction in decision order. An open-addressing table (linear probing,
// deletion by backward shift: no tombstones) in place of an unordered_set's
// node per id.
class DecidedIds {
 public:
  // False when the hash was there already.
  bool insert(uint64_t hash, int64_t wall_us);
  bool contains(uint64_t hash) const;
  size_t size() const { return order_.size(); }
  // Forgets the oldest decisions while more than `capacity` are kept or the
  // oldest was decided before `oldest_kept_us`.
  void forget(size_t capacity, int64_t oldest_kept_us);

 private:
  // Fibonacci hashing: the top bits of the product, so ids whose hashes
  // differ only in high bits still spread.
  size_t home(uint64_t hash) const { return static_cast<size_t>((hash * 0x9e3779b97f4a7c15ULL) >> shift_); }
  void erase(uint64_t hash);
  void grow();

  // 0 marks an empty slot; the hash 0 is kept apart.
  std::vector<uint64_t> table_;  // a power of two long, at most 3/4 used
  unsigned shift_ = 64;          // 64 - log2(table size)
  size_t used_ = 0;
  bool has_zero_ = false;
  std::deque<std::pair<int64_t, uint64_t>> order_;  // (wall us, hash), oldest first
};

// Values by a unique, ordered key, taken from the smallest: a map the join
// state fills nearly in key order (request offsets of decided pairs) and
// drains from the front as the commit position passes. A sorted vector whose
// passed front is dropped in bulk, in place of a tree node per value. A key
// added out of order is inserted (O(n); the keys are mostly increasing).
template <class Key, class Value>
class OrderedQueue {
 public:
  // The value at `key`, made from `value` when there was none; true when made.
  std::pair<Value*, bool> try_emplace(const Key& key, Value&& value) {
    if (head_ == items_.size() || items_.back().first < key) {
      return {&items_.emplace_back(key, std::move(value)).second, true};
    }
    auto at = std::lower_bound(items_.begin() + static_cast<std::ptrdiff_t>(head_), items_.end(), key,
                               [](const auto& item, const Key& wanted) { return item.first < wanted; });
    if (at != items_.end() && !(key < at->first)) return {&at->second, false};
    return {&items_.insert(at, std::pair<Key, Value>(key, std::move(value)))->second, true};
  }
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  // The smallest key's item; only when !empty().
  std::pair<Key, Value>& front() { return items_[head_]; }
  const std::pair<Key, Value>& front() const { return items_[head_]; }
  void pop_front() {
    items_[head_++] = {};
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    } else if (head_ >= 32 && 2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

 private:
  std::vector<std::pair<Key, Value>> items_;  // sorted by key from head_ on
  size_t head_ = 0;
};

// Entries by request id: an open-addressing table of (hash, index) over a
// slab of entries, in place of an unordered_map's node per entry (whose
// lookups walk a bucket's list, and whose erase walks it again). An entry
// stays at its address until it is erased (the slab is a deque, and an
// erased entry's place is reused), so indexes may point at its id. `Entry`
// has an `id` (a RequestId, or a std::string) comparable with a
// std::string_view and is default-constructible; the caller hashes the id's
// text once (hash()) and passes the hash to every call.
template <class Entry>
class IdTable {
 public:
  static uint64_t hash(std::string_view id) { return std::hash<std::string_view>{}(id); }

  // `id`: the id's text, or an entry's own id.
  template <class Id>
  Entry* find(const Id& id, uint64_t hash) {
    return const_cast<Entry*>(std::as_const(*this).find(id, hash));
  }
  template <class Id>
  const Entry* find(const Id& id, uint64_t hash) const {
    if (slots_.empty()) return nullptr;
    const uint32_t tag = tag_of(hash);
    const size_t mask = slots_.size() - 1;
    for (size_t i = home(tag);; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.index == kEmpty) return nullptr;
      if (slot.tag == tag && entries_[slot.index].id == id) return &entries_[slot.index];
    }
  }
  bool contains(std::string_view id, uint64_t hash) const { return find(id, hash) != nullptr; }

  // A new entry (with only its id set) for an id that has none (find() said so).
  Entry& insert(std::string_view id, uint64_t hash) {
    if (4 * (size_ + 1) > 3 * slots_.size()) grow();
    uint32_t index;
    if (free_.empty()) {
      index = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Entry& entry = entries_[index];
    entry.id = decltype(entry.id)(id);
    place(Slot{tag_of(hash), index});
    ++size_;
    return entry;
  }

  // Erases the entry of `id` (its text, or that entry's own id).
  template <class Id>
  void erase(const Id& id, uint64_t hash) {
    if (slots_.empty()) return;
    const uint32_t tag = tag_of(hash);
    const size_t mask = slots_.size() - 1;
    size_t gap = home(tag);
    for (;; gap = (gap + 1) & mask) {
      if (slots_[gap].index == kEmpty) return;
      if (slots_[gap].tag == tag && entries_[slots_[gap].index].id == id) break;
    }
    const uint32_t index = slots_[gap].index;
    // Backward shift: later entries of the probe run move back when their
    // home allows, so no lookup stops early at the gap.
    for (size_t next = (gap + 1) & mask; slots_[next].index != kEmpty; next = (next + 1) & mask) {
      const size_t wanted = home(slots_[next].tag);
      const bool home_after_gap = gap <= next ? (wanted > gap && wanted <= next) : (wanted > gap || wanted <= next);
      if (home_after_gap) continue;
      slots_[gap] = slots_[next];
      gap = next;
    }
    slots_[gap] = Slot{};
    if (--size_ == 0) {
      // Drained: give a past backlog's slab and table back. No index points
      // into the slab now.
      std::vector<Slot>().swap(slots_);
      shift_ = 64;
      std::deque<Entry>().swap(entries_);
      std::vector<uint32_t>().swap(free_);
      return;
    }
    entries_[index] = Entry{};
    free_.push_back(index);
  }

  size_t size() const { return size_; }
  // Heap bytes the table holds: its slots, the slab (live and reusable
  // places alike) and the list of reusable places.
  size_t heap_bytes() const {
    return slots_.capacity() * sizeof(Slot) + entries_.size() * sizeof(Entry) + free_.capacity() * sizeof(uint32_t);
  }
  // Bytes per entry the table and slab take besides the Entry itself, on
  // average: its 8-byte slot in a table between 3/8 and 3/4 full (16 at
  // half full), and its share of the slab's chunk headers and chunk map (a
  // deque's chunk holds 512 bytes' worth of entries: 8 of 64 bytes).
  static constexpr size_t kOverheadPerEntry = 16 + 8;

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  // 32 bits of the id's hash: they place the slot and spare most id
  // comparisons; the id itself decides.
  struct Slot {
    uint32_t tag = 0;
    uint32_t index = kEmpty;
  };
  static uint32_t tag_of(uint64_t hash) { return static_cast<uint32_t>(hash >> 32) ^ static_cast<uint32_t>(hash); }
  size_t home(uint32_t tag) const { return static_cast<size_t>((tag * 0x9e3779b97f4a7c15ULL) >> shift_); }
  void place(Slot slot) {
    const size_t mask = slots_.size() - 1;
    size_t i = home(slot.tag);
    while (slots_[i].index != kEmpty) i = (i + 1) & mask;
    slots_[i] = slot;
  }
  void grow() {
    const size_t size = slots_.empty() ? 16 : 2 * slots_.size();
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(size));
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(size));
    for (const Slot& slot : old) {
      if (slot.index != kEmpty) place(slot);
    }
  }

  std::vector<Slot> slots_;  // a power of two long, at most 3/4 used
  unsigned shift_ = 64;
  size_t size_ = 0;
  std::deque<Entry> entries_;
  std::vector<uint32_t> free_;  // places of erased entries, reused first
};

}  // namespace shadowpipe::comparator
