#include "comparator/join_index.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

namespace cmp = shadowpipe::comparator;

namespace {

// What PendingOffsets replaces, as the join state used it: a multiset of
// pending offsets beside a map offset -> waiting id (emplace keeps the first).
struct ReferenceOffsets {
  std::multiset<int64_t> offsets;
  std::map<int64_t, const cmp::RequestId*> waiting;
  void add(int64_t offset, const cmp::RequestId* id) {
    offsets.insert(offset);
    if (id) waiting.emplace(offset, id);
  }
  void remove(int64_t offset) {
    waiting.erase(offset);
    offsets.erase(offsets.find(offset));
  }
};

void expect_same(const cmp::PendingOffsets& index, const ReferenceOffsets& reference) {
  ASSERT_EQ(index.empty(), reference.offsets.empty());
  if (!index.empty()) {
    EXPECT_EQ(index.first(), *reference.offsets.begin());
  }
  EXPECT_EQ(index.waiting(), reference.waiting.size());
  const auto first = index.first_waiting();
  if (reference.waiting.empty()) {
    EXPECT_EQ(first.second, nullptr);
  } else {
    EXPECT_EQ(first.first, reference.waiting.begin()->first);
    EXPECT_EQ(first.second, reference.waiting.begin()->second);
  }
}

}  // namespace

TEST(PendingOffsets, KeepsOffsetOrderAcrossGapsAndOutOfOrderAdds) {
  const cmp::RequestId a("a"), b("b"), c("c");
  cmp::PendingOffsets index;
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.first_waiting().second, nullptr);
  index.add(12, &b);
  index.add(1'000'000'000, &c);  // a gap of any size costs nothing
  index.add(10, &a);             // out of order: inserted before
  EXPECT_EQ(index.first(), 10);
  EXPECT_EQ(index.waiting(), 3u);
  EXPECT_EQ(index.first_waiting(), std::make_pair(int64_t{10}, &a));
  index.remove(12);  // a hole in the middle
  EXPECT_EQ(index.first(), 10);
  index.remove(10);
  EXPECT_EQ(index.first(), 1'000'000'000) << "the front passes the hole";
  EXPECT_EQ(index.first_waiting(), std::make_pair(int64_t{1'000'000'000}, &c));
  index.remove(1'000'000'000);
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.waiting(), 0u);
}

TEST(PendingOffsets, TwoRecordsAtOneOffsetAnswerAsTheMultisetAndMapDid) {
  const cmp::RequestId first("first"), second("second"), third("third");
  cmp::PendingOffsets index;
  index.add(5, &first);
  index.add(5, &second);
  EXPECT_EQ(index.waiting(), 1u) << "one id waits at an offset: the first";
  EXPECT_EQ(index.first_waiting().second, &first);
  index.remove(5);  // either record leaving takes the offset's id with it
  EXPECT_EQ(index.waiting(), 0u);
  ASSERT_FALSE(index.empty()) << "the other record keeps the offset pending";
  EXPECT_EQ(index.first(), 5);
  index.add(5, &third);  // the offset has no id: the new one waits there
  EXPECT_EQ(index.first_waiting().second, &third);
  index.remove(5);
  index.remove(5);
  EXPECT_TRUE(index.empty());
}

TEST(PendingOffsets, HolesAreSweptSoALongWaitingOffsetKeepsTheMemorySmall) {
  const cmp::RequestId straggler("straggler"), other("other");
  cmp::PendingOffsets index;
  index.add(0, &straggler);
  for (int64_t offset = 1; offset <= 100'000; ++offset) {
    index.add(offset, &other);
    index.remove(offset);
  }
  EXPECT_EQ(index.first(), 0);
  EXPECT_EQ(index.waiting(), 1u);
  EXPECT_LE(index.heap_bytes(), 128 * cmp::PendingOffsets::kSlotBytes + 16);
  // Growth: many live slots, then every other one removed (holes, not at the front).
  for (int64_t offset = 200'000; offset < 210'000; ++offset) index.add(offset, &other);
  for (int64_t offset = 200'001; offset < 210'000; offset += 2) index.remove(offset);
  EXPECT_EQ(index.waiting(), 5'001u);
  EXPECT_LE(index.heap_bytes(), 4 * 5'001 * cmp::PendingOffsets::kSlotBytes + 16)
      << "holes at most as many as the live slots, capacity at most twice the slots";
  index.remove(0);
  EXPECT_EQ(index.first(), 200'000);
}

TEST(PendingOffsets, AnswersAsTheTreesItReplacesUnderRandomOperations) {
  std::mt19937_64 random(14);
  std::vector<cmp::RequestId> ids;
  for (int i = 0; i < 64; ++i) ids.emplace_back("id" + std::to_string(i));
  for (int round = 0; round < 20; ++round) {
    cmp::PendingOffsets index;
    ReferenceOffsets reference;
    // Mostly increasing offsets with gaps, some repeated or older ones.
    int64_t next = static_cast<int64_t>(random() % 1000);
    for (int step = 0; step < 3'000; ++step) {
      const auto roll = random() % 100;
      if (roll < 55 || reference.offsets.empty()) {
        int64_t offset = next;
        if (roll < 5 && !reference.offsets.empty()) offset = *reference.offsets.begin() + static_cast<int64_t>(random() % 20) - 10;
        next += 1 + static_cast<int64_t>(random() % 3);
        const cmp::RequestId* id = random() % 8 == 0 ? nullptr : &ids[random() % ids.size()];
        index.add(offset, id);
        reference.add(offset, id);
      } else {
        // Remove a pending offset: the oldest most of the time, else any.
        auto it = reference.offsets.begin();
        if (roll % 3 != 0) std::advance(it, static_cast<long>(random() % reference.offsets.size()));
        const int64_t offset = *it;
        index.remove(offset);
        reference.remove(offset);
      }
      SCOPED_TRACE("round " + std::to_string(round) + " step " + std::to_string(step));
      expect_same(index, reference);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(DecidedIds, RemembersHashesOnceIncludingZero) {
  cmp::DecidedIds ids;
  EXPECT_FALSE(ids.contains(42));
  EXPECT_TRUE(ids.insert(42, 1));
  EXPECT_FALSE(ids.insert(42, 2)) << "already decided";
  EXPECT_TRUE(ids.insert(0, 3));
  EXPECT_TRUE(ids.contains(0));
  EXPECT_FALSE(ids.insert(0, 4));
  EXPECT_EQ(ids.size(), 2u);
  ids.forget(1, 0);  // capacity 1: the oldest (42) goes
  EXPECT_FALSE(ids.contains(42));
  EXPECT_TRUE(ids.contains(0));
  ids.forget(10, 4);  // decided at 3, before 4
  EXPECT_FALSE(ids.contains(0));
  EXPECT_EQ(ids.size(), 0u);
}

TEST(DecidedIds, AnswersAsAHashSetWithFifoEvictionUnderGrowthWrapAndDeletion) {
  std::mt19937_64 random(1414);
  cmp::DecidedIds ids;
  std::unordered_set<uint64_t> reference;
  std::deque<std::pair<int64_t, uint64_t>> order;
  std::vector<uint64_t> seen;
  // Hashes that differ only in their low bits share a home slot (the home is
  // taken from the top bits of a product), so probe runs form and wrap.
  auto pick = [&]() -> uint64_t {
    const auto roll = random() % 10;
    if (roll < 3 && !seen.empty()) return seen[random() % seen.size()];
    if (roll < 6) return random() % 512;
    return random();
  };
  for (int64_t wall = 0; wall < 200'000; ++wall) {
    const uint64_t hash = pick();
    seen.push_back(hash);
    const bool inserted = reference.insert(hash).second;
    if (inserted) order.emplace_back(wall, hash);
    ASSERT_EQ(ids.insert(hash, wall), inserted) << "at " << wall;
    if (wall % 7 == 0) {
      const size_t capacity = 200 + random() % 3'000;
      const int64_t oldest_kept = wall - static_cast<int64_t>(random() % 5'000);
      ids.forget(capacity, oldest_kept);
      while (!order.empty() && (order.size() > capacity || order.front().first < oldest_kept)) {
        reference.erase(order.front().second);
        order.pop_front();
      }
    }
    ASSERT_EQ(ids.size(), reference.size()) << "at " << wall;
    const uint64_t probe = pick();
    ASSERT_EQ(ids.contains(probe), reference.contains(probe)) << "at " << wall;
  }
  for (uint64_t hash : reference) ASSERT_TRUE(ids.contains(hash));
}

namespace {
struct TestEntry {
  std::string id;
  int value = 0;
};
}  // namespace

TEST(IdTable, FindsInsertsAndErasesWithEqualHashesAndKeepsAddresses) {
  cmp::IdTable<TestEntry> table;
  EXPECT_EQ(table.find("a", 7), nullptr);
  // Every id under one hash: one probe run, told apart by the id.
  std::vector<TestEntry*> made;
  for (int i = 0; i < 40; ++i) {
    TestEntry& entry = table.insert("id" + std::to_string(i), 7);
    entry.value = i;
    made.push_back(&entry);
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(table.find("id" + std::to_string(i), 7), made[static_cast<size_t>(i)]) << "moved by growth";
  }
  table.erase("id0", 7);  // the head of the run: the rest shift back
  table.erase("id21", 7);
  EXPECT_EQ(table.find("id0", 7), nullptr);
  EXPECT_EQ(table.find("id21", 7), nullptr);
  ASSERT_NE(table.find("id39", 7), nullptr) << "a lookup stopped at the erased entry's place";
  EXPECT_EQ(table.find("id39", 7)->value, 39);
  EXPECT_EQ(table.size(), 38u);
  TestEntry& reused = table.insert("again", 3);  // an erased entry's place, emptied
  EXPECT_TRUE(&reused == made[0] || &reused == made[21]);
  EXPECT_EQ(reused.value, 0);
  ASSERT_NE(table.find("id1", 7), nullptr);
  EXPECT_EQ(table.find("id1", 7)->value, 1);
}

// A backlog that drains gives its memory back: the slab and the table only
// grow while entries live, and the pending-bytes budget counts live entries
// only, so a table kept at a past backlog's size would be memory nobody sees.
TEST(IdTable, ABacklogThatDrainsGivesItsMemoryBack) {
  cmp::IdTable<TestEntry> table;
  const size_t empty = table.heap_bytes();
  for (int i = 0; i < 10000; ++i) table.insert("id" + std::to_string(i), static_cast<uint64_t>(i) * 2654435761u);
  EXPECT_GT(table.heap_bytes(), 10000 * sizeof(TestEntry));
  for (int i = 0; i < 10000; ++i) table.erase("id" + std::to_string(i), static_cast<uint64_t>(i) * 2654435761u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.heap_bytes(), empty);
  table.insert("after", 1).value = 5;
  ASSERT_NE(table.find("after", 1), nullptr);
  EXPECT_EQ(table.find("after", 1)->value, 5);
}

TEST(IdTable, AnswersAsAnUnorderedMapUnderRandomOperations) {
  std::mt19937_64 random(141);
  cmp::IdTable<TestEntry> table;
  std::map<std::string, std::pair<int, const TestEntry*>> reference;
  // Few distinct hashes for many ids, so runs collide, wrap and shift.
  auto hash_of = [](const std::string& id) { return std::hash<std::string>{}(id) % 97; };
  for (int step = 0; step < 100'000; ++step) {
    const std::string id = "r" + std::to_string(random() % 3'000);
    const uint64_t used = hash_of(id);  // one hash per id, as the join state does
    auto it = reference.find(id);
    TestEntry* found = table.find(id, used);
    ASSERT_EQ(found != nullptr, it != reference.end()) << "step " << step;
    if (found) {
      ASSERT_EQ(found, it->second.second) << "an entry moved";
      ASSERT_EQ(found->value, it->second.first);
      if (random() % 2) {
        table.erase(id, used);
        reference.erase(it);
      }
    } else {
      TestEntry& entry = table.insert(id, used);
      entry.value = step;
      reference[id] = {step, &entry};
    }
    ASSERT_EQ(table.size(), reference.size());
  }
}

TEST(OrderedQueue, KeepsUniqueKeysInOrderAndDrainsFromTheFront) {
  cmp::OrderedQueue<int64_t, std::string> queue;
  EXPECT_TRUE(queue.try_emplace(10, "ten").second);
  EXPECT_TRUE(queue.try_emplace(30, "thirty").second);
  EXPECT_TRUE(queue.try_emplace(20, "twenty").second);  // out of order: inserted
  std::string again = "again";
  auto [held, made] = queue.try_emplace(20, std::move(again));
  EXPECT_FALSE(made);
  EXPECT_EQ(*held, "twenty");
  EXPECT_EQ(again, "again") << "not moved from when the key is there";
  EXPECT_EQ(queue.size(), 3u);
  std::vector<int64_t> keys;
  while (!queue.empty()) {
    keys.push_back(queue.front().first);
    queue.pop_front();
  }
  EXPECT_EQ(keys, (std::vector<int64_t>{10, 20, 30}));
}

TEST(OrderedQueue, AnswersAsAMapUnderRandomOperations) {
  std::mt19937_64 random(7);
  cmp::OrderedQueue<std::pair<int64_t, int64_t>, int> queue;
  std::map<std::pair<int64_t, int64_t>, int> reference;
  int64_t next = 0;
  for (int step = 0; step < 50'000; ++step) {
    if (random() % 3 != 0 || reference.empty()) {
      // Mostly increasing, sometimes a little older, sometimes a repeat.
      const int64_t key = random() % 10 == 0 ? next - static_cast<int64_t>(random() % 8) : next++;
      const std::pair<int64_t, int64_t> full{key, static_cast<int64_t>(random() % 2)};
      const bool made = reference.try_emplace(full, step).second;
      const auto [value, queued] = queue.try_emplace(full, int{step});
      ASSERT_EQ(queued, made) << "step " << step;
      ASSERT_EQ(*value, reference.at(full));
    } else {
      ASSERT_FALSE(queue.empty());
      ASSERT_EQ(queue.front().first, reference.begin()->first) << "step " << step;
      ASSERT_EQ(queue.front().second, reference.begin()->second);
      queue.pop_front();
      reference.erase(reference.begin());
    }
    ASSERT_EQ(queue.size(), reference.size());
  }
}
