// The join state of one partition pair (partition N of the requests and of the
// results topic, always owned together). No Kafka here: the service feeds it
// decoded records and asks what became decidable and what may be committed.
//
// No clock decides anything here: a request is shadow_missing only when the
// executor provably passed it (a result stamped published_below > its offset
// arrived and its own result was not among what came before), and a
// partition whose requests wait while the executor shows no progress is
// reported as stalled, its requests left undecided.
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
#include "comparator/compact_request.hpp"
#include "comparator/join_index.hpp"
#include "comparator/request_id.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
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
  int64_t offset = -1;           // of the result on the results topic
  int64_t source_offset = -1;    // of its request on the requests topic; -1: not given
  int64_t published_below = -1;  // the executor's progress stamp; -1: none
  std::vector<SideStatement> statements;
};

struct Joined {
  std::string request_id;
  RequestSide request;
  ResultSide result;
};

// Offsets [from, to) of a partition that retention deleted before this
// comparator group decided what they held.
struct LostOffsets {
  int64_t from = -1;
  int64_t to = -1;
};

struct Missing {  // a request the executor passed without publishing a result for it
  std::string request_id;
  RequestSide request;
  int64_t passed_at = -1;  // the published_below that proved it
  // Set when its result may have been among results retention deleted:
  // never compared, and the executor is not to blame (the deleted records
  // cannot tell whether it published one).
  std::optional<LostOffsets> results_lost;
};

enum class Side { requests, results };

// How a side takes the statements of the record the service decodes every
// record into. copy: the record keeps their strings' and vectors' capacity
// for the next decode; the service copies every side that does not join on
// arrival (one that will wait above all: a copy allocates each string and
// vector at its size, where decoding into moved-from ones grows each from
// nothing). move: for a side that joins on arrival, whose statements the
// service gives back (give_back) once the pair is decided, so neither the
// side nor the next decode allocates them (a request's dropped error message
// excepted).
enum class Take { copy, move };

// The evidence of a request record that deciding it takes (the primary's
// error message is not kept, its SQLSTATE is). Takes the statements' results
// as `take` says and moves the key and, when kept, the parameters out of it.
RequestSide request_side(wire::Request& request, int64_t offset, bool keep_params, Take take = Take::copy);

// The same of a result record read at `offset` of `partition`. A result
// published to another partition than its request's says nothing about this
// partition's offsets, so it carries no source offset and no stamp.
ResultSide result_side(wire::ShadowResult& result, int64_t offset, int32_t partition, Take take = Take::copy);

// Puts statements a side took with Take::move back into the record they
// came from, once decided, so the next record decoded into it reuses their
// capacity. Only the slots the record still has are filled.
void give_back(std::vector<SideStatement>&& statements, wire::Request& into);
void give_back(std::vector<SideStatement>&& statements, wire::ShadowResult& into);

// What a request alone costs waiting: its entry in the compact form it waits
// in, and the layouts of its statements as if no other request shared them.
size_t estimate_bytes(const std::string& request_id, const RequestSide& side);
size_t estimate_bytes(const std::string& request_id, const ResultSide& side);
// Heap bytes a request side holds beyond the object itself.
size_t heap_bytes(const RequestSide& side);

// What a decided request adds to the counters, held until the requests commit
// position passes the request: the counters are published in the same Kafka
// transaction as that position, so a request is counted exactly once however
// often it is replayed and re-decided.
struct Tally {
  bool request = false;                    // counts as one request decided
  std::vector<std::string> fingerprints;   // one per statement compared
  std::vector<std::pair<std::string, std::string>> discrepancies;  // (fingerprint, kind), one per finding
};

// A result waiting for its request.
struct WaitingResult {
  ResultSide side;
  int64_t since_wall_us = 0;  // when it started waiting (results without a source offset expire by it)
};

// A request or a result waiting for the other side, by request id.
struct PendingEntry {
  RequestId id;
  PendingRequest request;                 // holds none when the entry is a result
  std::unique_ptr<WaitingResult> result;  // a pointer: most entries are requests
};

class PairState {
 public:
  // stall_after_us: wall time without executor progress after which waiting
  // requests make the partition stalled. decided_retention_us: how long (wall
  // time) a decided request id is remembered to recognize copies.
  PairState(int64_t stall_after_us, int64_t decided_retention_us, size_t decided_capacity = 500'000);

  enum class Outcome { pending, joined, duplicate };
  struct Added {
    Outcome outcome = Outcome::pending;
    std::optional<Joined> joined;
    std::vector<Missing> missing;  // requests the record's progress stamp proved passed without a result
    size_t orphan_results = 0;     // results whose request was decided before (or dead-lettered): dropped
  };

  // Each call also records that the offset was consumed (see consumed()).
  Added add_request(std::string request_id, RequestSide side, int64_t wall_us);
  Added add_result(std::string request_id, ResultSide side, int64_t wall_us);
  // A record decided on arrival (dead-lettered, a gap record): only its offset counts.
  void consumed(Side side, int64_t offset, int64_t wall_us);
  // Where the partition of `side` was assigned from (its committed offset).
  void starts_at(Side side, int64_t offset);
  // Results offsets [from, to) were deleted by retention before this group
  // decided them. The requests whose results they may have been lie at or
  // above the highest progress stamp read before (results below it stood
  // before that stamp's record) and below the request the next record
  // names (see bound_lost_results): those the executor is shown to have
  // passed are Missing with results_lost set, not blamed on the executor.
  // Until every such request is decided, the results commit position stays
  // at `from`, so a successor reads the loss again.
  void results_lost(int64_t from, int64_t to);
  // The offset the next record of `side` should have: the one after the
  // last consumed, else where it was assigned from; nullopt when neither is
  // known (a group's first run starts wherever Kafka's data starts).
  std::optional<int64_t> expected_offset(Side side) const;
  // Executor progress without a result (a gap record on the results topic at
  // result_offset): requests below published_below are passed;
  // first_never_applied: the first request the gap names, when it does.
  Added progress(int64_t published_below, int64_t result_offset, int64_t wall_us, int64_t first_never_applied = -1);
  // Remembers a request id as decided, so a later copy or result is a duplicate.
  void mark_decided(const std::string& request_id, int64_t wall_us);
  bool was_decided(const std::string& request_id) const { return decided_.contains(id_hash(request_id)); }
  // Whether a record of `arriving` with this id joins on arrival: the other
  // side's record waits for it. (The service then lends the record's
  // statements to the pair instead of copying them: see Take.) Never true for
  // a record that will not join; false for one that will only when the add
  // itself forgets the id's decision (its retention ends at that moment),
  // which costs the record a copy and nothing else.
  bool joins_on_arrival(Side arriving, const std::string& request_id) const;
  size_t decided_ids() const { return decided_.size(); }

  // Results that carry no source offset (older executors) and whose request
  // did not come within the stall window of wall time: dropped and counted.
  size_t expire_unplaced_results(int64_t wall_us);
  // Wall time of the last executor progress while requests wait and none has
  // come for the stall window; nullopt when the partition is not stalled.
  std::optional<int64_t> stalled_since(int64_t wall_us) const;

  // Counters of a decided request, held until the commit position passes it.
  void hold(int64_t request_offset, Tally tally);
  // The held tallies below the requests commit position, removed.
  std::vector<Tally> take_passed_tallies();
  size_t held_tallies() const { return tallies_.size(); }

  // Next offset to commit for a topic, nullopt if nothing was consumed yet.
  std::optional<int64_t> commit_offset(Side side) const;

  size_t pending_requests() const { return pending_[0].waiting(); }  // requests waiting for a result
  size_t pending_results() const { return pending_results_; }           // results waiting for a request
  size_t pending_bytes() const { return waiting_bytes(Side::requests) + waiting_bytes(Side::results); }
  // Bytes held by entries of one side that wait for the other side (for
  // requests, with the layouts they share).
  size_t waiting_bytes(Side side) const {
    return side == Side::requests ? bytes_[0] + layouts_.live_bytes() : bytes_[1];
  }
  // The side whose entries wait for the other (the one with more waiting
  // bytes), nullopt when nothing is pending. Under memory pressure this is the
  // side to pause: the other side's records drain it.
  std::optional<Side> waiting_side() const;
  // Memory pauses, decided by the service and kept here with the pair.
  void set_paused(Side side, bool paused) { paused_[static_cast<int>(side)] = paused; }
  // Under memory pressure: pauses the waiting side and resumes the other, so
  // the side whose records drain the pending entries is never paused.
  void pause_waiting_side();
  void resume();
  bool paused(Side side) const { return paused_[static_cast<int>(side)]; }
  // Record time of the oldest request waiting for its result, or nullopt.
  std::optional<int64_t> oldest_pending_ts() const;

 private:
  using Entry = PendingEntry;
  // Erases the entry (hash: of its id) and returns the pair joined.
  Added join(Entry& entry, uint64_t hash, std::string request_id, RequestSide request, ResultSide result);
  // Each side's bookkeeping of a pending entry, undone in one place when it
  // joins, is passed, or is dropped.
  void forget_request(const Entry& entry);
  void forget_result(Entry& entry);
  void remember(uint64_t hash, int64_t wall_us);
  // Whether the id of `found` (its entry, or null) with this hash was decided before.
  bool decided_before(const Entry* found, uint64_t hash) const;
  // The id's entry, or null; forgets the ids mark_decided found waiting once none waits.
  Entry* find_entry(const std::string& request_id, uint64_t hash);
  void record_replayable(int64_t request_offset, int64_t result_offset);
  // Forgets replayable pairs whose request is before the requests commit position.
  void drop_passed_joins();
  // Results whose request offset the requests side has passed: their request
  // was decided before this record came (or dead-lettered).
  size_t drop_orphan_results();
  std::vector<Missing> pass(int64_t published_below);
  // The first record read after results were lost bounds the requests whose
  // results they may have been: below `request_offset`.
  void bound_lost_results(int64_t request_offset);
  // A passed request, with results_lost set when its result may have been deleted.
  Missing missing(std::string request_id, RequestSide request, int64_t passed_at) const;
  void forget_expired_decisions(int64_t wall_us);

  int64_t stall_after_us_;
  int64_t decided_retention_us_;
  size_t decided_capacity_;
  LayoutTable layouts_;  // of the waiting requests; before entries_, which refer to it
  IdTable<Entry> entries_;
  // The indexes refer to the id in its entry's node (which stays put until
  // the entry is erased, after it left every index), not to a copy.
  // pending_[0] is also the index of the waiting requests (offset -> id).
  struct ByNumberThenId {
    bool operator()(const std::pair<int64_t, const RequestId*>& a, const std::pair<int64_t, const RequestId*>& b) const {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    }
  };
  std::set<std::pair<int64_t, const RequestId*>, ByNumberThenId> placed_results_;    // (source offset, id) of waiting results
  std::set<std::pair<int64_t, const RequestId*>, ByNumberThenId> unplaced_results_;  // (wall us, id) of waiting results without one
  size_t pending_results_ = 0;
  PendingOffsets pending_[2];  // per topic, the offsets of the pending entries
  std::optional<int64_t> next_offset_[2];
  std::optional<int64_t> start_offset_[2];
  size_t bytes_[2] = {0, 0};
  // Decided requests at or after the requests commit position: (request
  // offset, offset of the result that decided it), and those result offsets.
  // A restart replays such a request, so it must replay that result too.
  struct Nothing {};
  OrderedQueue<std::pair<int64_t, int64_t>, Nothing> replayable_joins_;
  PendingOffsets replayable_result_offsets_;  // a multiset of offsets: no ids kept
  OrderedQueue<int64_t, Tally> tallies_;  // by request offset
  // Decided ids as 64-bit hashes (a collision, about 1 in 10^7 per million ids
  // retained, would drop one copy as a duplicate), in decision order with the
  // wall time, for eviction.
  static uint64_t id_hash(std::string_view request_id);
  DecidedIds decided_;
  size_t waiting_ids_marked_decided_ = 0;  // mark_decided calls that found their id waiting, while entries remain
  int64_t last_progress_wall_us_ = 0;
  // The highest progress stamp read: a request below it that arrives later
  // (the results side ran ahead) and finds no result waiting was passed too.
  int64_t passed_below_ = -1;
  // Each stretch of results retention deleted, with the requests whose
  // results may have been in it: [above, below). The last stretch found
  // waits for its upper bound in unbounded_lost_results_. A stretch is
  // forgotten once the requests commit position passes `below`.
  struct LostResultsStretch {
    int64_t above = -1;
    int64_t below = -1;
    LostOffsets lost;
  };
  std::vector<LostResultsStretch> lost_results_;
  std::optional<LostResultsStretch> unbounded_lost_results_;
  void forget_decided_lost_results();
  std::optional<int64_t> requests_decided_below() const;
  bool paused_[2] = {false, false};
};

}  // namespace shadowpipe::comparator
