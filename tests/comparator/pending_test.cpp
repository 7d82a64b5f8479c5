#include "comparator/pending.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

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
  // Nothing pending, but r2 is replayed after a crash (r1 holds the requests
  // position), so its result must be too.
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 40);
  (void)pair.add_result("r1", result(kStart, 41), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 12);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 42);
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

namespace {

struct Event {
  cmp::Side side;
  std::string id;
  int64_t offset;
};

void feed(cmp::PairState& pair, const Event& event, std::vector<std::string>* joined) {
  auto added = event.side == cmp::Side::requests ? pair.add_request(event.id, request(kStart + event.offset, event.offset), kStart)
                                                 : pair.add_result(event.id, result(kStart + event.offset, event.offset), kStart);
  if (added.joined && joined) joined->push_back(added.joined->request_id);
}

// Crashes after every prefix of the stream, restarts from the committed
// positions and checks that every replayed request is joined again and none
// waits for a result that is not replayed.
void expect_lossless_restart_at_every_point(const std::vector<Event>& events) {
  for (size_t crash = 0; crash <= events.size(); ++crash) {
    cmp::PairState before(kWindow, 2 * kWindow);
    std::vector<std::string> joined_before;
    for (size_t i = 0; i < crash; ++i) feed(before, events[i], &joined_before);
    const int64_t requests_from = before.commit_offset(cmp::Side::requests).value_or(0);
    const int64_t results_from = before.commit_offset(cmp::Side::results).value_or(0);

    cmp::PairState after(kWindow, 2 * kWindow);
    std::vector<std::string> joined_after;
    std::set<std::string> replayed_requests;
    for (const auto& event : events) {
      const bool replayed = event.offset >= (event.side == cmp::Side::requests ? requests_from : results_from);
      if (!replayed) continue;
      if (event.side == cmp::Side::requests) replayed_requests.insert(event.id);
      feed(after, event, &joined_after);
    }
    SCOPED_TRACE("crash after " + std::to_string(crash) + " records, replay from requests " +
                 std::to_string(requests_from) + ", results " + std::to_string(results_from));
    EXPECT_EQ(after.pending_requests(), 0u) << "a replayed request waits for a result that is not replayed";
    EXPECT_TRUE(after.expire(kStart + 10 * kWindow).missing.empty());
    EXPECT_EQ(std::set<std::string>(joined_after.begin(), joined_after.end()), replayed_requests);
    EXPECT_EQ(joined_after.size(), replayed_requests.size()) << "each replayed request is decided once";
    // Every request is decided before the crash or after the restart.
    std::set<std::string> decided(joined_before.begin(), joined_before.end());
    decided.insert(joined_after.begin(), joined_after.end());
    EXPECT_EQ(decided.size(), 4u);
  }
}

}  // namespace

TEST(PairState, ResultsOfReplayedRequestsAreReplayedWhenTheOldestResultIsDelayed) {
  // r0's result comes last: r1..r3 join first while r0 holds the requests position.
  cmp::PairState pair(kWindow, 2 * kWindow);
  for (int i = 0; i < 4; ++i) (void)pair.add_request("r" + std::to_string(i), request(kStart + i, i), kStart);
  (void)pair.add_result("r1", result(kStart, 0), kStart);
  (void)pair.add_result("r2", result(kStart, 1), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 0);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 0) << "r1 is replayed, so its result must be too";
  (void)pair.add_result("r0", result(kStart, 2), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 3);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 3);
  (void)pair.add_result("r3", result(kStart, 3), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 4);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 4);
}

TEST(PairState, RestartFromCommittedPositionsDecidesEveryRequestWithoutShadowMissing) {
  using enum cmp::Side;
  // Results out of request order, requests and results interleaved in several ways.
  expect_lossless_restart_at_every_point({{requests, "r0", 0}, {requests, "r1", 1}, {requests, "r2", 2},
                                          {requests, "r3", 3}, {results, "r1", 0}, {results, "r2", 1},
                                          {results, "r3", 2}, {results, "r0", 3}});
  expect_lossless_restart_at_every_point({{requests, "r0", 0}, {requests, "r1", 1}, {results, "r1", 0},
                                          {requests, "r2", 2}, {results, "r2", 1}, {results, "r0", 2},
                                          {requests, "r3", 3}, {results, "r3", 3}});
  expect_lossless_restart_at_every_point({{results, "r3", 0}, {requests, "r0", 0}, {requests, "r1", 1},
                                          {results, "r1", 1}, {requests, "r2", 2}, {requests, "r3", 3},
                                          {results, "r2", 2}, {results, "r0", 3}});
}

TEST(PairState, NeverPausesTheSideThatDrainsThePendingEntries) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  for (int i = 0; i < 2; ++i) (void)pair.add_request("r" + std::to_string(i), request(kStart, i), kStart);
  pair.pause_waiting_side(kStart);
  EXPECT_TRUE(pair.paused(cmp::Side::requests));
  EXPECT_FALSE(pair.paused(cmp::Side::results));
  // The results drain the requests, then run ahead of them: now they wait.
  for (int i = 0; i < 5; ++i) (void)pair.add_result("r" + std::to_string(i), result(kStart, i), kStart);
  ASSERT_EQ(pair.waiting_side(), cmp::Side::results);
  pair.pause_waiting_side(kStart);
  EXPECT_TRUE(pair.paused(cmp::Side::results));
  EXPECT_FALSE(pair.paused(cmp::Side::requests)) << "both sides paused: nothing could drain the pair";
  pair.resume(kStart);
  EXPECT_FALSE(pair.paused(cmp::Side::results));
}

TEST(PairState, ClockStandsStillWhileASideIsPaused) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  pair.pause_waiting_side(kStart + kSecond);
  ASSERT_TRUE(pair.paused(cmp::Side::requests));
  // Paused for ten windows: no input is no idleness.
  EXPECT_TRUE(pair.expire(kStart + 10 * kWindow).missing.empty());
  EXPECT_EQ(pair.clock_us(kStart + 10 * kWindow), kStart + kSecond);
  pair.resume(kStart + 10 * kWindow);
  // Idle again after the pause: the second before it and the time after it count.
  EXPECT_TRUE(pair.expire(kStart + 11 * kWindow - 2 * kSecond).missing.empty());
  EXPECT_EQ(pair.expire(kStart + 11 * kWindow).missing.size(), 1u);
}
