// The join state of one partition pair (partition N of the requests and of the
// results topic, always owned together). No Kafka here: the service feeds it
// decoded records and asks what became decidable and what may be committed.
//
// Lossless rule: the requests commit position R is the offset of the oldest
// request still pending, or the next offset when none is pending. Every
// request at or after R is replayed after a crash, so its result must be
// replayed too: the results commit position is at most the oldest pending
// result and at most the smallest result offset of any decided pair whose
// request offset is >= R. Decided records replayed after it are recognized by
// the dedup of the service.
#pragma once

#include "comparator/classify.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace shadowpipe::comparator {

using Params = std::vector<std::optional<std::string>>;

struct RequestSide {
  std::string key;
  int64_t ts_us = 0;
  int64_t offset = -1;
  std::vector<SideStatement> statements;
  std::vector<Params> params;  // empty unless the operator asked for parameters
};

struct ResultSide {
  int64_t ts_us = 0;
  int64_t offset = -1;
  std::vector<SideStatement> statements;
};

struct Joined {
  std::string request_id;
  RequestSide request;
  ResultSide result;
};

struct Missing {  // a request without a shadow result within the window
  std::string request_id;
  RequestSide request;
};

enum class Side { requests, results };

// Estimated heap and container bytes an entry holds (strings, vectors, map node).
size_t estimate_bytes(const std::string& request_id, const RequestSide& side);
size_t estimate_bytes(const std::string& request_id, const ResultSide& side);

class PairState {
 public:
  // window_us: join window on record time. decided_retention_us: how long a
  // decided request id is remembered to recognize duplicates.
  PairState(int64_t window_us, int64_t decided_retention_us, size_t decided_capacity = 500'000);

  enum class Outcome { pending, joined, duplicate };
  struct Added {
    Outcome outcome = Outcome::pending;
    std::optional<Joined> joined;
  };

  // Each call also records that the offset was consumed (see consumed()).
  Added add_request(std::string request_id, RequestSide side, int64_t wall_us);
  Added add_result(std::string request_id, ResultSide side, int64_t wall_us);
  // A record that is decided on arrival (dead-lettered): only its offset counts.
  void consumed(Side side, int64_t offset, int64_t wall_us);
  // Remembers a request id as decided, so a later copy or result is a duplicate.
  void mark_decided(const std::string& request_id);
  bool was_decided(const std::string& request_id) const { return decided_.contains(id_hash(request_id)); }
  size_t decided_ids() const { return decided_.size(); }

  struct Expired {
    std::vector<Missing> missing;   // decided as shadow_missing
    size_t orphan_results = 0;      // results whose request never came: dropped, counted
  };
  // Decides what the window closed on. The pair's clock is the newest request
  // time seen; while the pair receives nothing it runs on with the wall clock,
  // so the last requests of an idle partition are still decided.
  Expired expire(int64_t wall_us);
  // Everything still pending, for a final decision elsewhere (used on revoke only for counting).
  int64_t clock_us(int64_t wall_us) const;

  // Next offset to commit for a topic, nullopt if nothing was consumed yet.
  std::optional<int64_t> commit_offset(Side side) const;

  size_t pending_requests() const { return waiting_requests_.size(); }  // requests waiting for a result
  size_t pending_results() const { return waiting_results_.size(); }    // results waiting for a request
  size_t pending_bytes() const { return bytes_[0] + bytes_[1]; }
  // Bytes held by entries of one side that wait for the other side.
  size_t waiting_bytes(Side side) const { return bytes_[static_cast<int>(side)]; }
  // The side whose entries wait for the other (the one with more waiting
  // bytes), nullopt when nothing is pending. Under memory pressure this is the
  // side to pause: the other side's records drain it.
  std::optional<Side> waiting_side() const;
  // Memory pauses of a side, kept here because the clock depends on them:
  // while any side of the pair is paused, the clock does not run on with the
  // wall clock (no input because of a pause is not idleness, and would turn
  // lag into shadow_missing).
  void set_paused(Side side, bool paused, int64_t wall_us);
  // Under memory pressure: pauses the waiting side and resumes the other, so
  // the side whose records drain the pending entries is never paused.
  void pause_waiting_side(int64_t wall_us);
  void resume(int64_t wall_us);
  bool paused(Side side) const { return paused_[static_cast<int>(side)]; }
  // Record time of the oldest request waiting for its result, or nullopt.
  std::optional<int64_t> oldest_pending_ts() const;

 private:
  struct Entry {
    std::optional<RequestSide> request;
    std::optional<ResultSide> result;
    size_t bytes = 0;
  };
  void remember(const std::string& request_id);
  void record_join(const Joined& joined);
  // Forgets joined pairs whose request is before the requests commit position.
  void drop_passed_joins();
  void advance_clock(int64_t record_ts_us, int64_t wall_us, bool is_request);
  void forget_expired_decisions();

  int64_t window_us_;
  int64_t decided_retention_us_;
  size_t decided_capacity_;
  std::unordered_map<std::string, Entry> entries_;
  std::set<std::pair<int64_t, std::string>> waiting_requests_;  // (request ts, id)
  std::set<std::pair<int64_t, std::string>> waiting_results_;   // (result ts, id)
  std::multiset<int64_t> pending_offsets_[2];
  std::optional<int64_t> next_offset_[2];
  size_t bytes_[2] = {0, 0};
  // Joined pairs whose request offset is at or after the requests commit
  // position: (request offset, result offset), and their result offsets.
  std::set<std::pair<int64_t, int64_t>> replayable_joins_;
  std::multiset<int64_t> replayable_result_offsets_;
  // Decided ids as 64-bit hashes (a collision, about 1 in 10^7 per million ids
  // retained, would drop one copy as a duplicate), in decision order with the
  // pair clock at the time, for eviction.
  static uint64_t id_hash(const std::string& request_id);
  std::unordered_set<uint64_t> decided_;
  std::deque<std::pair<int64_t, uint64_t>> decided_order_;
  int64_t request_clock_us_ = 0;
  int64_t result_clock_us_ = 0;
  int64_t last_record_wall_us_ = 0;
  bool paused_[2] = {false, false};
  int64_t paused_idle_us_ = 0;  // idle time accrued when the pause began, frozen while paused
};

}  // namespace shadowpipe::comparator
