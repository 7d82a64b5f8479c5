// How a partition worker retries a batch whose attempt did not complete,
// apart from the worker's threads, connections and backoff (pure; unit-tested
// in tests/shadow_executor/policy_test.cpp).
//
// A lost connection or a transient refusal (shadowpipe::Transient, refused_for_now) is a passing
// outage: retried for as long as it lasts, never counted, so it can never
// turn into the unit's result. A refusal (Failure: the unit could not be run
// or recorded) counts: a batch that fails kMaxFailedAttempts times is poison
// and split into its units; a single unit is then recorded as not replayed,
// so the partition moves on. Failures of that recording are retried for good:
// the unit is never skipped unrecorded.
#pragma once

#include <cstddef>
#include <string>

namespace shadowpipe::executor {

class RetryPolicy {
 public:
  static constexpr int kMaxFailedAttempts = 3;

  enum class Failed { connection_lost, transient, refused };
  enum class Next { retry, one_by_one };

  // After a failed attempt at a batch of `batch_size` units; `what` says why.
  Next failed(Failed why, size_t batch_size, const std::string& what) {
    if (why != Failed::refused) return Next::retry;
    if (failures_ < kMaxFailedAttempts) last_failure_ = what;
    return ++failures_ == kMaxFailedAttempts && batch_size > 1 ? Next::one_by_one : Next::retry;
  }

  // Whether the next attempt at a batch of `batch_size` units records its
  // unit as not replayed instead of running it.
  bool gives_up(size_t batch_size) const { return failures_ >= kMaxFailedAttempts && batch_size == 1; }

  // The first refusals' reason, for the not-replayed record.
  const std::string& last_failure() const { return last_failure_; }

 private:
  int failures_ = 0;
  std::string last_failure_;
};

}  // namespace shadowpipe::executor
