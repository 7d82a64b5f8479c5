#include "comparator/pending.hpp"

#include <gtest/gtest.h>

namespace cmp = shadowpipe::comparator;

namespace {

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kWindow = 10 * kSecond;
constexpr int64_t kStart = 1'700'000'000 * kSecond;

cmp::RequestSide request(int64_t ts_us, int64_t offset) {
  cmp::RequestSide side;
  side.key = "tenant-1";
  side.ts_us = ts_us;
  side.offset = offset;
  side.statements.push_back({"0123456789abcdef", {}});
  return side;
}

cmp::ResultSide result(int64_t ts_us, int64_t offset) {
  cmp::ResultSide side;
  side.ts_us = ts_us;
  side.offset = offset;
  side.statements.push_back({"0123456789abcdef", {}});
  return side;
}

}  // namespace

TEST(PairState, RequestThenResultJoins) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 0), kStart).outcome, cmp::PairState::Outcome::pending);
  EXPECT_EQ(pair.pending_requests(), 1u);
  auto added = pair.add_result("r1", result(kStart + 5, 0), kStart);
  ASSERT_EQ(added.outcome, cmp::PairState::Outcome::joined);
  EXPECT_EQ(added.joined->request_id, "r1");
  EXPECT_EQ(added.joined->request.offset, 0);
  EXPECT_EQ(pair.pending_requests(), 0u);
  EXPECT_EQ(pair.pending_bytes(), 0u);
}

TEST(PairState, ResultBeforeRequestStillJoins) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 7), kStart).outcome, cmp::PairState::Outcome::pending);
  EXPECT_EQ(pair.pending_results(), 1u);
  EXPECT_GT(pair.waiting_bytes(cmp::Side::results), 0u);
  auto added = pair.add_request("r1", request(kStart, 3), kStart);
  ASSERT_EQ(added.outcome, cmp::PairState::Outcome::joined);
  EXPECT_EQ(added.joined->result.offset, 7);
  EXPECT_EQ(pair.pending_bytes(), 0u);
}

TEST(PairState, CopiesOfPendingOrDecidedRecordsAreDuplicates) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 0), kStart).outcome, cmp::PairState::Outcome::joined);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 2), kStart).outcome, cmp::PairState::Outcome::duplicate);
}

TEST(PairState, CommitStaysAtTheOldestPendingOffsetOfEachTopic) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  EXPECT_FALSE(pair.commit_offset(cmp::Side::requests).has_value());
  (void)pair.add_request("r1", request(kStart, 10), kStart);
  (void)pair.add_request("r2", request(kStart, 11), kStart);
  (void)pair.add_request("r3", request(kStart, 12), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 10);
  (void)pair.add_result("r2", result(kStart, 40), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 10);  // r1 still undecided
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 41);   // nothing pending: next offset
  (void)pair.add_result("r1", result(kStart, 41), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 12);
  (void)pair.add_result("r3", result(kStart, 42), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 13);
  pair.consumed(cmp::Side::results, 43, kStart);  // a dead-lettered record
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 44);
}

TEST(PairState, RequestWithoutResultExpiresOnRecordTime) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("late", request(kStart, 0), kStart);
  (void)pair.add_request("r2", request(kStart + kWindow - 1, 1), kStart);
  EXPECT_TRUE(pair.expire(kStart).missing.empty());
  // A newer request moves the pair's clock a whole window past "late".
  (void)pair.add_request("r3", request(kStart + kWindow + 1, 2), kStart);
  auto expired = pair.expire(kStart);
  ASSERT_EQ(expired.missing.size(), 1u);
  EXPECT_EQ(expired.missing[0].request_id, "late");
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 1);
  // Its result arriving later is a duplicate of a decided request.
  EXPECT_EQ(pair.add_result("late", result(kStart, 0), kStart).outcome, cmp::PairState::Outcome::duplicate);
}

TEST(PairState, ResultsTimeDoesNotExpireRequestsWhileTheShadowLags) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  (void)pair.add_request("r2", request(kStart + 1, 1), kStart);
  // The shadow finished r1 long after the primary: its time is no clock for r2.
  (void)pair.add_result("r1", result(kStart + 5 * kWindow, 0), kStart);
  EXPECT_TRUE(pair.expire(kStart).missing.empty());
}

TEST(PairState, IdlePairFallsBackToTheWallClock) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  EXPECT_TRUE(pair.expire(kStart + kWindow - 1).missing.empty());
  EXPECT_EQ(pair.expire(kStart + kWindow + 1).missing.size(), 1u);
}

TEST(PairState, OrphanResultIsDroppedAfterTheWindow) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_result("orphan", result(kStart, 5), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 5);
  (void)pair.add_request("r2", request(kStart + kWindow + 1, 0), kStart);
  auto expired = pair.expire(kStart);
  EXPECT_EQ(expired.orphan_results, 1u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 6);
}

TEST(PairState, BytesAreCountedPerWaitingSideAndReleased) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  auto big = request(kStart, 0);
  big.statements[0].result.columns.assign(50, {"a_rather_long_column_name", 23});
  big.statements[0].result.column_digests.assign(50, 1);
  const size_t expected = cmp::estimate_bytes("r1", big);
  EXPECT_GT(expected, 50 * sizeof(shadowpipe::digest::Column));
  (void)pair.add_request("r1", std::move(big), kStart);
  EXPECT_EQ(pair.waiting_bytes(cmp::Side::requests), expected);
  EXPECT_EQ(pair.waiting_bytes(cmp::Side::results), 0u);
  (void)pair.add_result("r1", result(kStart, 0), kStart);
  EXPECT_EQ(pair.pending_bytes(), 0u);
}

TEST(PairState, DecidedIdsAreForgottenAfterTheRetention) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  (void)pair.add_result("r1", result(kStart, 0), kStart);
  EXPECT_TRUE(pair.was_decided("r1"));
  (void)pair.add_request("r2", request(kStart + 3 * kWindow, 1), kStart);
  (void)pair.expire(kStart);
  EXPECT_FALSE(pair.was_decided("r1"));
}
