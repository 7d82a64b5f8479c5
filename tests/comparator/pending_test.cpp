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

// Recorders' ids are UUIDs, kept as 16 bytes while they wait: each joins,
// passes and comes back as its text.
TEST(PairState, UuidIdsJoinAndComeBackAsTheyCame) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  const std::string joined = "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f90";
  const std::string passed = "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f91";
  const std::string upper = "0192F3A4-7B1C-7D2E-8F3A-4B5C6D7E8F92";
  (void)pair.add_request(passed, request(kStart, 0), kStart);
  (void)pair.add_request(upper, request(kStart, 1), kStart);
  EXPECT_EQ(pair.add_result(joined, result(kStart, 0), kStart).outcome, cmp::PairState::Outcome::pending);
  auto added = pair.add_request(joined, request(kStart, 2), kStart);
  ASSERT_EQ(added.outcome, cmp::PairState::Outcome::joined);
  EXPECT_EQ(added.joined->request_id, joined);
  auto upper_joined = pair.add_result(upper, result(kStart, 1), kStart);
  ASSERT_TRUE(upper_joined.joined.has_value());
  EXPECT_EQ(upper_joined.joined->request_id, upper);
  cmp::ResultSide stamp = result(kStart, 2);
  stamp.source_offset = 3;
  stamp.published_below = 3;
  auto missing = pair.add_result("0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f93", std::move(stamp), kStart).missing;
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].request_id, passed);
  EXPECT_EQ(pair.pending_requests(), 0u);
  EXPECT_EQ(pair.add_request(joined, request(kStart, 4), kStart).outcome, cmp::PairState::Outcome::duplicate);
}

TEST(PairState, CopiesOfPendingOrDecidedRecordsAreDuplicates) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 0), kStart).outcome, cmp::PairState::Outcome::joined);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 2), kStart).outcome, cmp::PairState::Outcome::duplicate);
  // The same with the result first.
  (void)pair.add_result("r2", result(kStart, 2), kStart);
  EXPECT_EQ(pair.add_result("r2", result(kStart, 3), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_request("r2", request(kStart, 3), kStart).outcome, cmp::PairState::Outcome::joined);
  EXPECT_EQ(pair.add_request("r2", request(kStart, 4), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_result("r2", result(kStart, 4), kStart).outcome, cmp::PairState::Outcome::duplicate);
}

TEST(PairState, TheNextOffsetExpectedIsAfterTheLastConsumedElseWhereTheAssignmentStarted) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  EXPECT_FALSE(pair.expected_offset(cmp::Side::requests).has_value()) << "a group's first run: not known";
  pair.starts_at(cmp::Side::requests, 20);
  EXPECT_EQ(pair.expected_offset(cmp::Side::requests), 20);
  EXPECT_FALSE(pair.expected_offset(cmp::Side::results).has_value()) << "each side its own";
  pair.consumed(cmp::Side::requests, 40, kStart);
  EXPECT_EQ(pair.expected_offset(cmp::Side::requests), 41);
  pair.add_request("r41", request(kStart, 41), kStart);
  EXPECT_EQ(pair.expected_offset(cmp::Side::requests), 42);
}

cmp::ResultSide stamped_result(int64_t offset, int64_t source_offset, int64_t published_below) {
  cmp::ResultSide side = result(kStart, offset);
  side.source_offset = source_offset;
  side.published_below = published_below;
  return side;
}

// Results come in request order: results deleted before the first one read
// after the loss belong to requests below that one's request. Those the
// executor is shown to have passed were never compared; the executor is
// not blamed for the others.
TEST(PairState, RequestsWhoseResultsRetentionMayHaveDeletedArePassedAsNeverCompared) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  pair.starts_at(cmp::Side::results, 10);
  for (int64_t offset = 0; offset < 6; ++offset) (void)pair.add_request("r" + std::to_string(offset), request(kStart, offset), kStart);
  pair.results_lost(10, 14);
  auto first_after = pair.add_result("r3", stamped_result(14, 3, 3), kStart);  // r3's stamp passes r0..r2
  ASSERT_EQ(first_after.outcome, cmp::PairState::Outcome::joined);
  ASSERT_EQ(first_after.missing.size(), 3u);
  for (const auto& missing : first_after.missing) {
    ASSERT_TRUE(missing.results_lost.has_value()) << missing.request_id;
    EXPECT_EQ(missing.results_lost->from, 10);
    EXPECT_EQ(missing.results_lost->to, 14);
  }
  // r4 and r5 are above the first request named after the loss: their
  // results came after it, so one not there is the executor's doing.
  (void)pair.add_request("r7", request(kStart, 7), kStart);
  auto later = pair.add_result("r6", stamped_result(15, 6, 6), kStart);
  ASSERT_EQ(later.missing.size(), 2u);
  for (const auto& missing : later.missing) EXPECT_FALSE(missing.results_lost.has_value()) << missing.request_id;
}

TEST(PairState, ARequestReadAfterItsLostResultWasPassedIsNeverComparedToo) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  pair.results_lost(0, 5);
  (void)pair.add_result("r5", stamped_result(5, 5, 5), kStart);  // the requests side lags: none waits
  auto late = pair.add_request("r2", request(kStart, 2), kStart);
  ASSERT_EQ(late.missing.size(), 1u);
  ASSERT_TRUE(late.missing[0].results_lost.has_value());
  EXPECT_EQ(late.missing[0].results_lost->to, 5);
}

// A stamp read before the loss shows the results of the requests below it
// stood before the loss: one of those passed later is the executor's doing.
TEST(PairState, RequestsBelowTheStampReadBeforeTheLossAreNotCoveredByIt) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_result("r4", stamped_result(9, 4, 4), kStart);  // the requests side lags
  pair.results_lost(10, 12);
  (void)pair.add_result("r6", stamped_result(12, 6, 6), kStart);
  auto skipped = pair.add_request("r2", request(kStart, 2), kStart);
  ASSERT_EQ(skipped.missing.size(), 1u);
  EXPECT_FALSE(skipped.missing[0].results_lost.has_value()) << "its result stood before offset 9: never there";
  auto lost = pair.add_request("r5", request(kStart, 5), kStart);
  ASSERT_EQ(lost.missing.size(), 1u);
  EXPECT_TRUE(lost.missing[0].results_lost.has_value());
}

// A gap record after the loss names the first request the executor never
// applied: the deleted results were of requests below it; those from it on
// are the gap's (shadow_missing beside its shadow_gap).
TEST(PairState, AGapRecordAfterTheLossBoundsItByTheFirstRequestNeverApplied) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  for (int64_t offset = 5; offset < 10; ++offset) (void)pair.add_request("r" + std::to_string(offset), request(kStart, offset), kStart);
  pair.results_lost(3, 5);
  auto passed = pair.progress(10, 5, kStart, 7);
  ASSERT_EQ(passed.missing.size(), 5u);
  for (const auto& missing : passed.missing) {
    EXPECT_EQ(missing.results_lost.has_value(), missing.request.offset < 7) << missing.request_id;
  }
}

TEST(PairState, LossesFoundBeforeAnyRecordNamesARequestAreOneStretchAndLaterOnesTheirOwn) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  for (int64_t offset = 0; offset < 4; ++offset) (void)pair.add_request("r" + std::to_string(offset), request(kStart, offset), kStart);
  pair.results_lost(3, 5);
  pair.results_lost(5, 8);  // found again before a record named a request
  auto first = pair.add_result("r2", stamped_result(8, 2, 2), kStart);
  ASSERT_EQ(first.missing.size(), 2u);
  EXPECT_EQ(first.missing[0].results_lost->from, 3);
  EXPECT_EQ(first.missing[0].results_lost->to, 8);
  for (int64_t offset = 4; offset < 8; ++offset) (void)pair.add_request("r" + std::to_string(offset), request(kStart, offset), kStart);
  pair.results_lost(20, 22);  // above the stamp 2 read since
  auto second = pair.add_result("r6", stamped_result(22, 6, 6), kStart);
  ASSERT_EQ(second.missing.size(), 3u) << "r3, r4, r5";
  for (const auto& missing : second.missing) {
    // r3's result came after r2's, which was read after the first loss.
    EXPECT_EQ(missing.results_lost->from, 20) << missing.request_id;
  }
}

// A successor must find the loss again: until every request that may have
// been a lost result's is decided, the results commit position stays at the
// loss (a fetch there is out of range and jumps over it again).
TEST(PairState, TheResultsCommitPositionStaysAtTheLossUntilItsRequestsAreDecided) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  pair.starts_at(cmp::Side::results, 10);
  for (int64_t offset = 0; offset < 4; ++offset) (void)pair.add_request("r" + std::to_string(offset), request(kStart, offset), kStart);
  pair.results_lost(10, 14);
  pair.consumed(cmp::Side::results, 14, kStart);  // a record that names no request (dead-lettered)
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 10) << "not bounded yet";
  auto first = pair.add_result("r3", stamped_result(15, 3, 1), kStart);  // bounds the loss at r3; passes r0
  ASSERT_EQ(first.missing.size(), 1u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 1) << "r1 and r2 wait";
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 10) << "r1 and r2 may have been the lost results' requests";
  (void)pair.add_result("r1", stamped_result(16, 1, 1), kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 10) << "r2 still waits";
  auto passed = pair.progress(3, 17, kStart);
  ASSERT_EQ(passed.missing.size(), 1u);
  EXPECT_TRUE(passed.missing[0].results_lost.has_value());
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 4);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 18) << "every request below the bound is decided";
}

// The requests side, idle since its assignment, has decided everything below
// where it started: a loss whose requests all lie below that holds nothing.
TEST(PairState, ALossBelowWhereTheRequestsSideStartedHoldsNoPosition) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  pair.starts_at(cmp::Side::requests, 10);
  pair.starts_at(cmp::Side::results, 5);
  pair.results_lost(5, 8);
  (void)pair.add_result("r9", stamped_result(8, 9, 10), kStart);  // bounds the loss at request 10
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 8) << "held by r9's result alone, not at the loss";
}

TEST(PairState, WithoutLostResultsAPassedRequestIsTheExecutorsDoing) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r0", request(kStart, 0), kStart);
  pair.results_lost(3, 3);  // an empty stretch is no loss
  auto passed = pair.add_result("r1", stamped_result(4, 1, 1), kStart);
  ASSERT_EQ(passed.missing.size(), 1u);
  EXPECT_FALSE(passed.missing[0].results_lost.has_value());
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

TEST(PairState, RequestThePassedExecutorLeftWithoutResultIsShadowMissing) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("lost", request(kStart, 0), kStart);
  (void)pair.add_request("r2", request(kStart, 1), kStart);
  auto answer = result(kStart, 0);
  answer.source_offset = 1;
  answer.published_below = 1;  // every result below offset 1 stands before this one
  auto added = pair.add_result("r2", answer, kStart);
  ASSERT_TRUE(added.joined);
  ASSERT_EQ(added.missing.size(), 1u);
  EXPECT_EQ(added.missing[0].request_id, "lost");
  EXPECT_EQ(added.missing[0].passed_at, 1);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 2);
  // Its result arriving later is a duplicate of a decided request.
  EXPECT_EQ(pair.add_result("lost", result(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
}

TEST(PairState, ARequestReadAfterTheStampThatPassedItIsShadowMissing) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  // The results side runs ahead: the stamp comes before the requests.
  auto answer = result(kStart, 0);
  answer.source_offset = 1;
  answer.published_below = 1;
  EXPECT_TRUE(pair.add_result("r1", answer, kStart).missing.empty());
  auto lost = pair.add_request("lost", request(kStart, 0), kStart);
  ASSERT_EQ(lost.missing.size(), 1u);
  EXPECT_EQ(lost.missing[0].request_id, "lost");
  EXPECT_TRUE(pair.add_request("r1", request(kStart, 1), kStart).joined);
  EXPECT_EQ(pair.pending_requests(), 0u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 2);
}

TEST(PairState, AStampAtOrBelowARequestDoesNotPassIt) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r0", request(kStart, 0), kStart);
  (void)pair.add_request("r1", request(kStart, 1), kStart);
  auto answer = result(kStart, 0);
  answer.source_offset = 1;
  answer.published_below = 0;  // r0's result may still be on its way
  auto added = pair.add_result("r1", answer, kStart);
  EXPECT_TRUE(added.missing.empty());
  EXPECT_EQ(pair.pending_requests(), 1u);
}

TEST(PairState, NoClockDecidesARequestAndAStalledPartitionIsReported) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart - 1000 * kWindow, 0), kStart);  // an old record time changes nothing
  EXPECT_EQ(pair.stalled_since(kStart + kWindow - 1), std::nullopt);
  EXPECT_EQ(pair.stalled_since(kStart + kWindow), kStart);
  EXPECT_EQ(pair.pending_requests(), 1u) << "a stall decides nothing";
  // Progress on the partition (a result) ends the stall.
  (void)pair.add_result("other", result(kStart, 0), kStart + 2 * kWindow);
  EXPECT_EQ(pair.stalled_since(kStart + 2 * kWindow + 1), std::nullopt);
}

TEST(PairState, ARequestFromASkewedClockDoesNotExpireOthersOrTheirDecisions) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  (void)pair.add_result("r1", result(kStart, 0), kStart);
  constexpr int64_t kYear3000 = 32'503'680'000 * kSecond;
  (void)pair.add_request("future", request(kYear3000, 1), kStart);
  (void)pair.add_request("r3", request(kStart, 2), kStart);
  EXPECT_TRUE(pair.was_decided("r1")) << "record time must not age decisions";
  EXPECT_EQ(pair.pending_requests(), 2u);
  EXPECT_EQ(pair.stalled_since(kStart + 1), std::nullopt);
}

TEST(PairState, AResultWhoseRequestWasPassedIsAnOrphan) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  auto orphan = result(kStart, 5);
  orphan.source_offset = 0;
  (void)pair.add_result("orphan", orphan, kStart);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 5);
  // The requests side passes offset 0 without that request (dead-lettered, or
  // decided by an earlier owner): the result waits for nothing.
  auto added = pair.add_request("r2", request(kStart, 1), kStart);
  EXPECT_EQ(added.orphan_results, 1u);
  EXPECT_EQ(pair.pending_results(), 0u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 6);
}

TEST(PairState, AResultWithoutSourceOffsetIsDroppedAfterTheWindowOfWallTime) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_result("unplaced", result(kStart, 5), kStart);
  EXPECT_EQ(pair.expire_unplaced_results(kStart + kWindow - 1), 0u);
  EXPECT_EQ(pair.expire_unplaced_results(kStart + kWindow + 1), 1u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 6);
}

TEST(PairState, CountsAreHeldUntilTheCommitPositionPassesTheRequest) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r0", request(kStart, 0), kStart);
  (void)pair.add_request("r1", request(kStart, 1), kStart);
  (void)pair.add_result("r1", result(kStart, 0), kStart);
  pair.hold(1, cmp::Tally{true, {"0123456789abcdef"}, {}});
  EXPECT_TRUE(pair.take_passed_tallies().empty()) << "r0 holds the position: r1 is replayed after a crash";
  (void)pair.add_result("r0", result(kStart, 1), kStart);
  pair.hold(0, cmp::Tally{true, {"0123456789abcdef"}, {{"0123456789abcdef", "value_mismatch"}}});
  auto passed = pair.take_passed_tallies();
  ASSERT_EQ(passed.size(), 2u);
  EXPECT_EQ(passed[0].discrepancies.size(), 1u);
  EXPECT_EQ(pair.held_tallies(), 0u);
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

TEST(PairState, DecidedIdsAreForgottenAfterTheRetentionOfWallTime) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  (void)pair.add_result("r1", result(kStart, 0), kStart);
  EXPECT_TRUE(pair.was_decided("r1"));
  (void)pair.add_request("r2", request(kStart, 1), kStart + 2 * kWindow - 1);
  EXPECT_TRUE(pair.was_decided("r1"));
  (void)pair.add_request("r3", request(kStart, 2), kStart + 3 * kWindow);
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
  pair.pause_waiting_side();
  EXPECT_TRUE(pair.paused(cmp::Side::requests));
  EXPECT_FALSE(pair.paused(cmp::Side::results));
  // The results drain the requests, then run ahead of them: now they wait.
  for (int i = 0; i < 5; ++i) (void)pair.add_result("r" + std::to_string(i), result(kStart, i), kStart);
  ASSERT_EQ(pair.waiting_side(), cmp::Side::results);
  pair.pause_waiting_side();
  EXPECT_TRUE(pair.paused(cmp::Side::results));
  EXPECT_FALSE(pair.paused(cmp::Side::requests)) << "both sides paused: nothing could drain the pair";
  pair.resume();
  EXPECT_FALSE(pair.paused(cmp::Side::results));
}

TEST(PairState, AStampDecidesEveryOlderWaitingRequestSoTheCommitMovesPastThem) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r0", request(kStart, 0), kStart);
  (void)pair.add_request("lost", request(kStart, 1), kStart);
  (void)pair.add_request("r2", request(kStart, 2), kStart);
  auto stamped = result(kStart, 7);
  stamped.source_offset = 2;
  stamped.published_below = 2;
  auto added = pair.add_result("r2", stamped, kStart);
  ASSERT_EQ(added.missing.size(), 2u);  // r0 and lost: passed without results
  EXPECT_EQ(added.missing[0].request_id, "r0");
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 3);
  EXPECT_EQ(pair.commit_offset(cmp::Side::results), 8);
}

namespace shadowpipe::comparator {
namespace {

TEST(PendingRequestSide, BinaryParametersAreKeptReadableForMismatchRecords) {
  wire::Request request;
  request.key = "k";
  auto& statement = request.statements.emplace_back();
  statement.sql = "SELECT $1, $2, $3, $4";
  statement.params = {std::string("\0\0\0\x2a", 4), std::string("\0\1\0\0\0\0\0\0\0\7", 10), std::nullopt,
                      std::string("as text")};
  statement.binding.param_types = {23, 1700, 1184, 25};
  statement.binding.param_formats = {1, 1, 1, 0};
  const RequestSide side = request_side(request, 0, true);
  ASSERT_EQ(side.params.size(), 1u);
  EXPECT_EQ(side.params[0], (std::vector<std::optional<std::string>>{
                                "42", "(binary numeric, not rendered: \\x00010000000000000007)", std::nullopt,
                                "as text"}));
}

}  // namespace
}  // namespace shadowpipe::comparator

// ---- the compact form a request waits in --------------------------------

namespace {

shadowpipe::wire::StatementResult five_columns(uint64_t salt) {
  shadowpipe::wire::StatementResult result;
  result.rows = 3;
  result.columns = {{"id", 20, "bigint"}, {"name", 25, "text"}, {"price", 1700, "numeric"},
                    {"a_column_name_longer_than_fifteen", 23, "integer"}, {"blob", 17, "bytea", 1}};
  result.ordered = 0x1000 + salt;
  result.unordered = 0x2000 + salt;
  result.column_digests = {1, 2, 3, 4, 5 + salt};
  result.latency_us = 321;
  return result;
}

void expect_same(const cmp::RequestSide& got, const cmp::RequestSide& want) {
  EXPECT_EQ(got.key, want.key);
  EXPECT_EQ(got.ts_us, want.ts_us);
  EXPECT_EQ(got.offset, want.offset);
  EXPECT_EQ(got.params, want.params);
  ASSERT_EQ(got.statements.size(), want.statements.size());
  for (size_t i = 0; i < want.statements.size(); ++i) {
    EXPECT_EQ(got.statements[i].fingerprint, want.statements[i].fingerprint) << i;
    EXPECT_EQ(got.statements[i].result, want.statements[i].result) << i;
  }
}

// Requests of every shape a primary records: what comes back must be what went in.
std::vector<cmp::RequestSide> request_shapes() {
  std::vector<cmp::RequestSide> shapes;
  auto base = request(kStart, 7);
  base.key = "a key longer than fifteen characters";
  base.statements[0].result = five_columns(1);
  shapes.push_back(base);
  auto several = base;  // three statements, the digest vectors of every length
  several.statements.push_back({"fedcba9876543210fedcba", five_columns(2)});
  several.statements[1].result.column_ordered = {11, 12, 13, 14, 15};
  several.statements[1].result.column_values = {21, 22, 23};
  several.statements.push_back({"", {}});
  several.statements[2].result.column_values = {99};
  shapes.push_back(several);
  auto failed = request(kStart, 8);  // an error with its SQLSTATE, no columns
  failed.key.clear();
  failed.statements[0].result.status = shadowpipe::wire::Status::error;
  failed.statements[0].result.sqlstate = "23505";
  failed.statements[0].result.rows = -1;
  shapes.push_back(failed);
  auto refused = failed;
  refused.statements[0].result.status = shadowpipe::wire::Status::refused;
  refused.statements[0].result.sqlstate = "12345678";  // the longest the compact form holds
  shapes.push_back(refused);
  auto none = request(kStart, 9);
  none.statements.clear();
  shapes.push_back(none);
  auto widest = failed;  // as many digests in one vector as the compact form counts
  widest.key = "k";
  widest.statements[0].result.column_values.assign(cmp::CompactStatement::kMaxDigests, 7);
  widest.statements[0].result.column_values.back() = 8;
  shapes.push_back(widest);
  // What the compact form does not hold: these wait as they came.
  auto with_params = base;
  with_params.params = {{std::string("1"), std::nullopt}};
  shapes.push_back(with_params);
  auto long_sqlstate = failed;
  long_sqlstate.statements[0].result.sqlstate = "123456789";
  shapes.push_back(long_sqlstate);
  auto with_message = failed;
  with_message.statements[0].result.message = "duplicate key";
  shapes.push_back(with_message);
  auto with_notes = base;
  with_notes.statements[0].result.volatile_statement = "calls random()";
  with_notes.statements[0].result.order_total = true;
  with_notes.statements[0].result.volatile_columns.push_back({});
  shapes.push_back(with_notes);
  auto too_wide = widest;  // one digest more than the compact form counts
  too_wide.statements[0].result.column_values.push_back(9);
  shapes.push_back(too_wide);
  return shapes;
}

}  // namespace

TEST(PairStatePendingRequest, EveryShapeComesBackExactlyAsItCame) {
  cmp::LayoutTable layouts;
  const auto shapes = request_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto copy = shapes[i];
    cmp::PendingRequest pending(std::move(copy), layouts);
    EXPECT_EQ(pending.compact(), i < 6) << "shape " << i;
    EXPECT_TRUE(pending) << "shape " << i;
    EXPECT_EQ(pending.offset(), shapes[i].offset);
    EXPECT_EQ(pending.ts_us(), shapes[i].ts_us);
    SCOPED_TRACE("shape " + std::to_string(i));
    expect_same(pending.take(layouts), shapes[i]);
    EXPECT_FALSE(pending) << "a request is taken once";
  }
  EXPECT_EQ(layouts.live_bytes(), 0u) << "every layout was given back";
}

TEST(PairStatePendingRequest, OnlyOneThatWasGivenARequestHoldsOne) {
  cmp::LayoutTable layouts;
  EXPECT_FALSE(cmp::PendingRequest{}) << "a result's entry holds no request";
  EXPECT_EQ(cmp::PendingRequest{}.heap_bytes(), 0u);
  for (auto shape : request_shapes()) {
    const auto want = shape;
    cmp::PendingRequest first(std::move(shape), layouts);
    cmp::PendingRequest moved(std::move(first));
    EXPECT_FALSE(first) << "moved from";
    EXPECT_EQ(first.heap_bytes(), 0u);
    cmp::PendingRequest assigned;
    assigned = std::move(moved);
    EXPECT_FALSE(moved);
    ASSERT_TRUE(assigned);
    EXPECT_EQ(assigned.offset(), want.offset);
    expect_same(assigned.take(layouts), want);
  }
  EXPECT_EQ(layouts.live_bytes(), 0u);
  // Assigned over one that holds a request (of no statement: no layout to
  // give back), in either form: the held one is freed (ASan sees a leak or a
  // double free), the new one kept.
  const auto shapes = request_shapes();
  for (const bool compact : {true, false}) {
    auto held = shapes[compact ? 4 : 6];  // no statements; the second keeps parameters
    held.statements.clear();
    cmp::PendingRequest holder(std::move(held), layouts);
    ASSERT_EQ(holder.compact(), compact);
    holder = cmp::PendingRequest(cmp::RequestSide(shapes[0]), layouts);
    expect_same(holder.take(layouts), shapes[0]);
  }
  EXPECT_EQ(layouts.live_bytes(), 0u);
}

TEST(PairStateLayouts, RequestsOfOneStatementShareOneLayoutAndOnlyEqualOnesDo) {
  cmp::LayoutTable layouts;
  const auto columns = five_columns(0).columns;
  const std::string fingerprint = "0123456789abcdef0123";
  cmp::Layout* first = layouts.acquire(fingerprint, columns);
  EXPECT_EQ(layouts.acquire(fingerprint, columns), first);
  EXPECT_EQ(layouts.live_bytes(), cmp::layout_bytes(fingerprint, columns)) << "counted once";
  // Every part of a column, and the fingerprint, tells layouts apart.
  std::vector<std::pair<std::string, std::vector<shadowpipe::digest::Column>>> others;
  others.emplace_back(fingerprint + "x", columns);
  for (int part = 0; part < 4; ++part) {
    auto changed = columns;
    if (part == 0) changed[2].name = "cost";
    if (part == 1) changed[2].type_oid = 701;
    if (part == 2) changed[2].type_name = "double precision";
    if (part == 3) changed[2].format = 1;
    others.emplace_back(fingerprint, changed);
  }
  auto fewer = columns;
  fewer.pop_back();
  others.emplace_back(fingerprint, fewer);
  std::set<cmp::Layout*> seen{first};
  for (const auto& [other_fingerprint, other_columns] : others) {
    cmp::Layout* layout = layouts.acquire(other_fingerprint, other_columns);
    EXPECT_TRUE(seen.insert(layout).second);
    EXPECT_EQ(layout->fingerprint, other_fingerprint);
    EXPECT_EQ(layout->columns, other_columns);
    layouts.release(layout);
  }
  layouts.release(first);
  EXPECT_GT(layouts.live_bytes(), 0u) << "one request still holds it";
  layouts.release(first);
  EXPECT_EQ(layouts.live_bytes(), 0u);
  EXPECT_EQ(layouts.size(), others.size() + 1) << "unused layouts are kept for the next request";
}

TEST(PairStateLayouts, UnusedLayoutsAreDroppedBeyondWhatIsKept) {
  cmp::LayoutTable layouts;
  const auto columns = five_columns(0).columns;
  cmp::Layout* held = layouts.acquire("held", columns);
  for (size_t i = 0; i <= cmp::LayoutTable::kKeptUnused; ++i) {
    layouts.release(layouts.acquire("fingerprint " + std::to_string(i), columns));
  }
  EXPECT_EQ(layouts.size(), 1u) << "only the layout a request holds is left";
  EXPECT_EQ(layouts.acquire("held", columns), held);
  EXPECT_EQ(layouts.live_bytes(), cmp::layout_bytes("held", columns));
}

TEST(PairStateLayouts, UnusedLayoutsStayBoundedByTheHeldOnesWhenManyAreHeld) {
  cmp::LayoutTable layouts;
  const auto columns = five_columns(0).columns;
  constexpr size_t kHeld = 2 * cmp::LayoutTable::kKeptUnused;
  for (size_t i = 0; i < kHeld; ++i) (void)layouts.acquire("held " + std::to_string(i), columns);
  for (size_t i = 0; i < 10 * kHeld; ++i) {
    layouts.release(layouts.acquire("passing " + std::to_string(i), columns));
    ASSERT_LE(layouts.size(), 2 * kHeld + 1) << "after " << i << " passing layouts";
  }
  EXPECT_EQ(layouts.live_bytes(), kHeld * cmp::layout_bytes("held 0", columns));
}

TEST(PairState, WaitingRequestsOfOneStatementShareItsLayoutAndJoinExactly) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  std::vector<cmp::RequestSide> sent;
  for (int i = 0; i < 100; ++i) {
    auto side = request(kStart, i);
    side.statements[0].result = five_columns(static_cast<uint64_t>(i));
    sent.push_back(side);
    EXPECT_EQ(pair.add_request("r" + std::to_string(i), std::move(side), kStart).outcome,
              cmp::PairState::Outcome::pending);
  }
  const size_t alone = cmp::estimate_bytes("r0", sent[0]);
  const size_t layout = cmp::layout_bytes(sent[0].statements[0].fingerprint, sent[0].statements[0].result.columns);
  EXPECT_EQ(pair.waiting_bytes(cmp::Side::requests), 100 * (alone - layout) + layout);
  for (int i = 99; i >= 0; --i) {
    auto added = pair.add_result("r" + std::to_string(i), result(kStart, 200 + i), kStart);
    ASSERT_TRUE(added.joined);
    SCOPED_TRACE("request " + std::to_string(i));
    expect_same(added.joined->request, sent[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(pair.pending_bytes(), 0u);
}

TEST(PairState, PassedRequestsComeBackExactly) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  const auto shapes = request_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto side = shapes[i];
    side.offset = static_cast<int64_t>(i);
    (void)pair.add_request("r" + std::to_string(i), std::move(side), kStart);
  }
  auto added = pair.progress(static_cast<int64_t>(shapes.size()), 0, kStart);
  ASSERT_EQ(added.missing.size(), shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto want = shapes[i];
    want.offset = static_cast<int64_t>(i);
    SCOPED_TRACE("shape " + std::to_string(i));
    expect_same(added.missing[i].request, want);
  }
  EXPECT_EQ(pair.pending_bytes(), 0u);
}

// Kafka gives every record its own offset, but the join state must answer
// sanely (and as it always did) when records say otherwise.
TEST(PairState, OneIdAtTwoOffsetsIsADuplicateThatHoldsNoOffset) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("r1", request(kStart, 0), kStart);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.pending_requests(), 1u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 0);
  auto added = pair.add_result("r1", result(kStart, 0), kStart);
  ASSERT_TRUE(added.joined);
  EXPECT_EQ(added.joined->request.offset, 0) << "the first copy is the one decided";
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 2);
}

// The paths that find an entry by a waiting id (not by a record's id):
// orphans, unplaced results, the oldest wait, a pass; with ids of every form
// a RequestId keeps (inline text, a UUID's bytes, text on the heap).
TEST(PairState, EveryLookupByAWaitingIdFindsItsEntryWhateverTheIdsForm) {
  // Each form and a last character: "r-0", a UUID ending in 0..3, 41 characters.
  const std::vector<std::string> forms = {"r-", "0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f9", std::string(40, 'L')};
  for (const auto& form : forms) {
    auto id = [&](char which) { return form + which; };
    cmp::PairState pair(kWindow, 2 * kWindow);
    auto orphan = result(kStart, 10);
    orphan.source_offset = 0;
    (void)pair.add_result(id('0'), orphan, kStart);
    EXPECT_EQ(pair.add_request(id('1'), request(kStart + 5, 1), kStart).orphan_results, 1u) << form;
    (void)pair.add_result(id('2'), result(kStart, 11), kStart);  // no source offset
    EXPECT_EQ(pair.expire_unplaced_results(kStart + kWindow + 1), 1u) << form;
    (void)pair.add_request(id('3'), request(kStart + 7, 2), kStart);
    EXPECT_EQ(pair.oldest_pending_ts(), kStart + 5) << form << ": the oldest waiting, at offset 1";
    auto passed = pair.progress(3, 12, kStart);
    ASSERT_EQ(passed.missing.size(), 2u) << form;
    EXPECT_EQ(passed.missing[0].request_id, id('1'));
    EXPECT_EQ(passed.missing[1].request_id, id('3'));
    EXPECT_EQ(pair.pending_bytes(), 0u) << form;
  }
}

// A waiting id costs what its form keeps: a UUID no more than a short id,
// text past 22 characters its allocation.
TEST(PairState, APendingRequestsBytesCountItsIdsAllocation) {
  auto bytes_of = [](const std::string& id) {
    cmp::PairState pair(kWindow, 2 * kWindow);
    (void)pair.add_request(id, request(kStart, 0), kStart);
    return pair.waiting_bytes(cmp::Side::requests);
  };
  const size_t short_id = bytes_of("r1");
  EXPECT_EQ(bytes_of("0192f3a4-7b1c-7d2e-8f3a-4b5c6d7e8f90"), short_id);
  const std::string long_id(40, 'L');
  EXPECT_EQ(bytes_of(long_id), short_id + cmp::RequestId::heap_bytes_for(long_id));
  EXPECT_GT(cmp::RequestId::heap_bytes_for(long_id), 40u);
}

TEST(PairState, TwoIdsAtOneOffsetKeepTheOffsetUntilBothAreDecided) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  (void)pair.add_request("a", request(kStart, 5), kStart);
  EXPECT_EQ(pair.add_request("b", request(kStart, 5), kStart).outcome, cmp::PairState::Outcome::pending);
  EXPECT_EQ(pair.pending_requests(), 1u) << "the offset's waiting request is the first";
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 5);
  ASSERT_TRUE(pair.add_result("b", result(kStart, 0), kStart).joined);
  EXPECT_EQ(pair.pending_requests(), 0u);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 5) << "a still waits at offset 5";
  EXPECT_EQ(pair.oldest_pending_ts(), std::nullopt);
  EXPECT_TRUE(pair.progress(6, 1, kStart).missing.empty()) << "a left the waiting index with b";
  ASSERT_TRUE(pair.add_result("a", result(kStart, 2), kStart).joined);
  EXPECT_EQ(pair.commit_offset(cmp::Side::requests), 6);
  EXPECT_EQ(pair.pending_bytes(), 0u);
}

namespace {

// Results of every shape a reused record must forget between decodes: every
// optional member present, none, an error, several statements, one.
std::vector<std::vector<shadowpipe::wire::StatementResult>> reuse_shapes(const std::string& sqlstate,
                                                                         const std::string& error) {
  namespace wire = shadowpipe::wire;
  auto rich = five_columns(1);
  rich.column_ordered = {11, 12, 13, 14, 15};
  rich.column_values = {21, 22, 23, 24, 25};
  rich.volatile_columns.push_back({4, "calls random()"});
  rich.volatile_statement = "calls now()";
  rich.order_total = true;
  rich.message = "a notice";
  auto failed = wire::StatementResult{};
  failed.status = wire::Status::error;
  failed.sqlstate = sqlstate;
  failed.message = error;
  return {{rich, five_columns(2)}, {five_columns(3)}, {failed}, {rich}, {failed, five_columns(4)}};
}

// Requests of those shapes, encoded; with_params: each statement binds a value and a null.
std::vector<std::string> encoded_requests(const std::vector<std::vector<shadowpipe::wire::StatementResult>>& records,
                                          bool with_params) {
  namespace wire = shadowpipe::wire;
  std::vector<std::string> encoded;
  for (size_t i = 0; i < records.size(); ++i) {
    wire::Request request;
    request.request_id = "r" + std::to_string(i);
    request.ts_us = kStart;
    request.key = "k" + std::to_string(i);
    request.source = "test";
    for (const auto& result : records[i]) {
      cmp::Params params;
      if (with_params) params = {std::string("v" + std::to_string(i)), std::nullopt};
      request.statements.push_back({with_params ? "SELECT $1" : "SELECT 1", params, "0123456789abcdef", result});
    }
    encoded.push_back(wire::encode(request));
  }
  return encoded;
}

}  // namespace

// request_side copies out of the record the service decodes every request
// into, so that record keeps its capacity: what one request leaves in it must
// never show in the next one's side.
TEST(PendingRequestSide, ARequestDecodedIntoAReusedRecordGivesTheSideOfAFreshDecode) {
  namespace wire = shadowpipe::wire;
  const auto records = reuse_shapes("23505", "duplicate key");
  const auto encoded = encoded_requests(records, false);
  // Richer records before poorer ones, and back.
  const std::vector<size_t> order = {0, 1, 2, 3, 4, 0, 2, 1};
  wire::Request reused;
  for (size_t index : order) {
    SCOPED_TRACE("record " + std::to_string(index));
    auto decoded = wire::decode_request_into(encoded[index], reused);
    ASSERT_TRUE(decoded.ok()) << decoded.error().describe();
    auto fresh = wire::decode_request(encoded[index]);
    ASSERT_TRUE(fresh.ok());
    expect_same(cmp::request_side(reused, 3, false), cmp::request_side(fresh.value(), 3, false));
    EXPECT_EQ(cmp::request_side(reused, 3, false).statements.size(), records[index].size());
  }
}

// The same with the statements moved out (a request that joins on arrival),
// given back after every other one and left moved-from after the others.
TEST(PendingRequestSide, ARequestMovedOutOfAReusedRecordGivesTheSideOfAFreshDecode) {
  namespace wire = shadowpipe::wire;
  const auto records = reuse_shapes("23505", "duplicate key");
  const auto encoded = encoded_requests(records, true);
  const std::vector<size_t> order = {0, 1, 2, 3, 4, 0, 2, 1, 3, 0};
  wire::Request reused;
  for (size_t step = 0; step < order.size(); ++step) {
    const size_t index = order[step];
    SCOPED_TRACE("step " + std::to_string(step) + ", record " + std::to_string(index));
    ASSERT_TRUE(wire::decode_request_into(encoded[index], reused).ok());
    auto fresh = wire::decode_request(encoded[index]);
    ASSERT_TRUE(fresh.ok());
    const bool keep_params = step % 3 == 2;  // the parameters are moved out in either mode
    auto got = cmp::request_side(reused, 3, keep_params, cmp::Take::move);
    expect_same(got, cmp::request_side(fresh.value(), 3, keep_params));
    if (step % 2 == 0) cmp::give_back(std::move(got.statements), reused);
  }
}

// The service lends a record's statements only to a pair that joins it on
// arrival; a record that waits, a duplicate or a decided id is not one.
TEST(PairState, JoinsOnArrivalOnlyWhenTheOtherSideWaits) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::requests, "a"));
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::results, "a"));
  ASSERT_FALSE(pair.add_request("a", request(kStart, 1), kStart).joined);
  EXPECT_TRUE(pair.joins_on_arrival(cmp::Side::results, "a"));
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::requests, "a")) << "a copy of a waiting request is a duplicate";
  ASSERT_FALSE(pair.add_result("b", result(kStart, 1), kStart).joined);
  EXPECT_TRUE(pair.joins_on_arrival(cmp::Side::requests, "b"));
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::results, "b"));
  ASSERT_TRUE(pair.add_result("a", result(kStart, 2), kStart).joined);
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::results, "a")) << "decided";
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::requests, "a")) << "decided";
}

// A result side takes the statements of the record the service decodes every
// result into by copy (it will wait) or by move (it joins on arrival, and the
// service gives them back once decided): whichever way the record was left
// (kept, given back, or moved-from), the next record decoded into it must
// give the side of a fresh decode.
TEST(PendingResultSide, AResultDecodedIntoAReusedRecordGivesTheSideOfAFreshDecode) {
  namespace wire = shadowpipe::wire;
  const auto records = reuse_shapes("22001", "value too long for type character varying(8)");
  std::vector<std::string> encoded;
  for (size_t i = 0; i < records.size(); ++i) {
    wire::ShadowResult result;
    result.request_id = "r" + std::to_string(i);
    result.ts_us = kStart;
    result.key = "k" + std::to_string(i);
    result.executor = "test";
    result.source_partition = 0;
    result.source_offset = static_cast<int64_t>(i);
    result.published_below = static_cast<int64_t>(i);
    for (const auto& statement : records[i]) result.statements.push_back({"0123456789abcdef", statement, {}});
    encoded.push_back(wire::encode(result));
  }
  // Richer records before poorer ones, and back; in turn copied, moved and
  // given back, moved and left moved-from.
  const std::vector<size_t> order = {0, 1, 2, 3, 4, 0, 2, 1, 3, 0, 4, 1, 0};
  wire::ShadowResult reused;
  for (size_t step = 0; step < order.size(); ++step) {
    const size_t index = order[step];
    SCOPED_TRACE("step " + std::to_string(step) + ", record " + std::to_string(index));
    auto decoded = wire::decode_result_into(encoded[index], reused);
    ASSERT_TRUE(decoded.ok()) << decoded.error().describe();
    auto fresh = wire::decode_result(encoded[index]);
    ASSERT_TRUE(fresh.ok());
    const auto take = step % 3 == 0 ? cmp::Take::copy : cmp::Take::move;
    auto got = cmp::result_side(reused, 7, 0, take);
    const auto want = cmp::result_side(fresh.value(), 7, 0);
    EXPECT_EQ(got.source_offset, want.source_offset);
    EXPECT_EQ(got.published_below, want.published_below);
    ASSERT_EQ(got.statements.size(), records[index].size());
    ASSERT_EQ(want.statements.size(), records[index].size());
    for (size_t i = 0; i < want.statements.size(); ++i) {
      EXPECT_EQ(got.statements[i].fingerprint, want.statements[i].fingerprint) << i;
      EXPECT_EQ(got.statements[i].result, want.statements[i].result) << i;
      EXPECT_EQ(got.statements[i].result, records[index][i]) << i;
    }
    if (take == cmp::Take::copy) {
      for (size_t i = 0; i < records[index].size(); ++i) EXPECT_EQ(reused.statements[i].result, records[index][i]) << "kept";
    }
    if (step % 3 == 1) cmp::give_back(std::move(got.statements), reused);
  }
}

// The decided ids are probed only for an id that has no entry. An id
// marked decided while its result waits (its request was dead-lettered)
// keeps the old answers: a later copy of the request, or of the result, is a
// duplicate, not a join.
TEST(PairState, AnIdMarkedDecidedWhileItsResultWaitsNeverJoins) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  ASSERT_EQ(pair.add_result("r1", result(kStart, 0), kStart).outcome, cmp::PairState::Outcome::pending);
  pair.mark_decided("r1", kStart);
  EXPECT_TRUE(pair.was_decided("r1"));
  EXPECT_FALSE(pair.joins_on_arrival(cmp::Side::requests, "r1"));
  const auto copy = pair.add_request("r1", request(kStart, 0), kStart);
  EXPECT_EQ(copy.outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_FALSE(copy.joined);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 1), kStart).outcome, cmp::PairState::Outcome::duplicate);
  // Other ids of the pair join as before.
  ASSERT_EQ(pair.add_request("r2", request(kStart, 1), kStart).outcome, cmp::PairState::Outcome::pending);
  EXPECT_TRUE(pair.joins_on_arrival(cmp::Side::results, "r2"));
  EXPECT_EQ(pair.add_result("r2", result(kStart, 2), kStart).outcome, cmp::PairState::Outcome::joined);
  // Once r1's waiting result is gone (it names no request offset and its
  // request never came: it expires), copies of r1 are still duplicates: they
  // have no entry, and the decided ids are probed for them.
  const int64_t later = kStart + kWindow + 1;
  EXPECT_EQ(pair.expire_unplaced_results(later), 1u);
  ASSERT_EQ(pair.pending_results(), 0u);
  EXPECT_EQ(pair.add_result("r1", result(kStart, 3), later).outcome, cmp::PairState::Outcome::duplicate);
  EXPECT_EQ(pair.add_request("r1", request(kStart, 2), later).outcome, cmp::PairState::Outcome::duplicate);
}

// joins_on_arrival must say whether add_request / add_result will join the
// record: the service moves a record's statements out on its word.
TEST(PairState, JoinsOnArrivalSaysWhatTheAddWillDo) {
  cmp::PairState pair(kWindow, 2 * kWindow);
  int64_t result_offset = 0;
  auto placed = [&](int64_t source_offset, int64_t published_below = -1) {
    auto side = result(kStart, result_offset++);
    side.source_offset = source_offset;
    side.published_below = published_below;
    return side;
  };
  auto check_request = [&](const std::string& id, int64_t offset, int64_t wall_us, bool joins) {
    SCOPED_TRACE("request " + id);
    EXPECT_EQ(pair.joins_on_arrival(cmp::Side::requests, id), joins);
    auto added = pair.add_request(id, request(kStart, offset), wall_us);
    EXPECT_EQ(added.joined.has_value(), joins);
    return added;
  };
  auto check_result = [&](const std::string& id, cmp::ResultSide side, int64_t wall_us, bool joins) {
    SCOPED_TRACE("result " + id);
    EXPECT_EQ(pair.joins_on_arrival(cmp::Side::results, id), joins);
    auto added = pair.add_result(id, std::move(side), wall_us);
    EXPECT_EQ(added.joined.has_value(), joins);
    return added;
  };
  check_request("a", 0, kStart, false);             // waits
  check_result("a", placed(0), kStart, true);       // its request waits
  check_result("a", placed(0), kStart, false);      // decided: a copy
  check_request("a", 1, kStart, false);             // decided: a copy
  check_result("b", placed(5), kStart, false);      // waits, placed at offset 5
  check_result("b", placed(5), kStart, false);      // a copy of a waiting result
  check_request("b", 5, kStart, true);              // its result waits
  EXPECT_EQ(check_result("c", placed(2), kStart, false).orphan_results, 1u);  // its request's offset was passed
  check_request("d", 6, kStart, false);                                       // waits
  EXPECT_EQ(check_result("x", placed(9, 8), kStart, false).missing.size(), 1u);  // its stamp passes d; x waits
  EXPECT_EQ(check_request("e", 7, kStart, false).missing.size(), 1u);            // below the stamp: passed at once
  check_request("x", 9, kStart, true);                                         // its result waits
  // Once forgotten (the retention of wall time), a decided id is new again.
  const int64_t later = kStart + 3 * kWindow;
  check_request("a", 10, later, false);
  check_result("a", placed(10), later, true);
}
