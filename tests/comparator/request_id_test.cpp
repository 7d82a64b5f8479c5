#include "comparator/request_id.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace cmp = shadowpipe::comparator;

namespace {

// What the recorder makes (producer/src/recorder.cpp): a version 7 UUID.
const std::string kUuid = "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f90";

// Ids that look like UUIDs and are not canonical: each must come back as it
// came, so none may be kept as 16 bytes.
std::vector<std::string> near_uuids() {
  return {"0192F3A4-7B1C-7D2E-8F3A-4B5C6D7E8F90",  // uppercase
          "0192f3a47b1c7d2e8f3a4b5c6d7e8f90",      // no dashes
          "{0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f90}",
          "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f9",   // 35 characters
          "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f900",  // 37
          "0192f3a47-b1c-7d2e-8f3a-4b5c6d7e8f90",  // a dash moved
          "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f9g",  // not hex
          "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8F90",  // one uppercase digit
          std::string("0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f9\0", 36)};
}

}  // namespace

TEST(RequestId, ARecordersUuidIsKeptAsItsBytesAndComesBackExactly) {
  const cmp::RequestId id(kUuid);
  EXPECT_TRUE(id.uuid());
  EXPECT_EQ(id.str(), kUuid);
  EXPECT_EQ(id.heap_bytes(), 0u) << "a std::string of it allocates 48 bytes";
  EXPECT_EQ(cmp::RequestId::heap_bytes_for(kUuid), 0u);
  EXPECT_TRUE(id == kUuid);
  EXPECT_FALSE(id == "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f91");
  EXPECT_EQ(id.text_hash(), std::hash<std::string_view>{}(kUuid)) << "found by the hash of the record's id";
}

TEST(RequestId, AnyOtherIdIsKeptAsTextAndComesBackExactly) {
  std::vector<std::string> ids = near_uuids();
  ids.insert(ids.end(), {"", "r1", "bench-12345", std::string(22, 'x'), std::string(23, 'y'), std::string(300, 'z'),
                         std::string("with\0nul", 8), "ünïcode-ïd"});
  for (const auto& text : ids) {
    const cmp::RequestId id(text);
    EXPECT_FALSE(id.uuid()) << text;
    EXPECT_EQ(id.str(), text);
    EXPECT_TRUE(id == text) << text;
    EXPECT_FALSE(id == kUuid) << text;
    EXPECT_EQ(id.text_hash(), std::hash<std::string_view>{}(text)) << text;
    EXPECT_EQ(id.heap_bytes(), cmp::RequestId::heap_bytes_for(text)) << text;
    EXPECT_EQ(id.heap_bytes() > 0, text.size() > cmp::RequestId::kInlineText) << text;
  }
}

// Equal exactly when the texts are, and an order that agrees with that:
// what the id table and the ordered indexes rely on.
TEST(RequestId, EqualityAndOrderFollowTheTextUnderRandomIds) {
  std::mt19937_64 random(20261130);
  std::vector<std::string> texts = near_uuids();
  texts.push_back(kUuid);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 200; ++i) {
    std::string uuid = kUuid;
    for (char& c : uuid) {
      if (c != '-') c = kHex[random() % 16];
    }
    texts.push_back(uuid);
    if (i % 4 == 0) texts.push_back(uuid);  // the same id twice
    texts.push_back("id-" + std::to_string(random() % 50) + std::string(random() % 30, 'q'));
  }
  std::vector<cmp::RequestId> ids;
  for (const auto& text : texts) ids.emplace_back(text);
  for (size_t a = 0; a < ids.size(); ++a) {
    ASSERT_EQ(ids[a].str(), texts[a]);
    ASSERT_EQ(ids[a].text_hash(), std::hash<std::string_view>{}(texts[a])) << texts[a];
    ASSERT_FALSE(ids[a] < ids[a]) << "irreflexive: " << texts[a];
  }
  // Sorted by it, equal ids stand together and each step goes up strictly or not at all.
  std::vector<size_t> order(ids.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a] < ids[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& before = ids[order[i - 1]];
    const auto& after = ids[order[i]];
    ASSERT_FALSE(after < before);
    ASSERT_EQ(before < after, !(before == after)) << texts[order[i - 1]] << " / " << texts[order[i]];
  }
  for (size_t a = 0; a < ids.size(); ++a) {
    for (size_t b = 0; b < ids.size(); ++b) {
      const bool same = texts[a] == texts[b];
      ASSERT_EQ(ids[a] == ids[b], same) << texts[a] << " / " << texts[b];
      ASSERT_EQ(ids[a] == texts[b], same) << texts[a] << " / " << texts[b];
      ASSERT_EQ(!(ids[a] < ids[b]) && !(ids[b] < ids[a]), same) << texts[a] << " / " << texts[b];
    }
  }
}

TEST(RequestId, AnIdMovedOntoItselfStaysAsItWas) {
  for (const std::string& text : {kUuid, std::string("short"), std::string(40, 'h')}) {
    cmp::RequestId id(text);
    cmp::RequestId& same = id;
    id = std::move(same);
    EXPECT_EQ(id.str(), text);
  }
}

TEST(RequestId, AMovedIdLeavesAnEmptyOneBehind) {
  for (const std::string& text : {kUuid, std::string("short"), std::string(40, 'h')}) {
    cmp::RequestId from(text);
    cmp::RequestId to(std::move(from));
    EXPECT_EQ(to.str(), text);
    EXPECT_EQ(from.str(), "");  // NOLINT(bugprone-use-after-move): what is left is defined
    cmp::RequestId assigned("something else entirely, long enough for the heap");
    assigned = std::move(to);
    EXPECT_EQ(assigned.str(), text);
    EXPECT_EQ(to.str(), "");  // NOLINT(bugprone-use-after-move)
  }
}
