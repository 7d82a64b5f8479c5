#include "comparator/pending.hpp"

#include "shadowpipe/binary_text.hpp"

#include <algorithm>

namespace shadowpipe::comparator {

namespace {

// malloc's bookkeeping per allocation (glibc: a 16-byte header, 16-byte granularity).
constexpr size_t kAllocationOverhead = 16;

// Heap bytes of a string beyond the object itself (short strings live inline).
size_t heap_bytes(const std::string& text) {
  return text.capacity() > 15 ? text.capacity() + 1 + kAllocationOverhead : 0;
}

template <class T>
size_t vector_bytes(const std::vector<T>& items) {
  return items.capacity() ? items.capacity() * sizeof(T) + kAllocationOverhead : 0;
}

size_t statement_bytes(const SideStatement& statement) {
  const auto& result = statement.result;
  size_t bytes = sizeof(SideStatement) + heap_bytes(statement.fingerprint) + heap_bytes(result.sqlstate) +
                 heap_bytes(result.message);
  bytes += vector_bytes(result.columns);
  for (const auto& column : result.columns) bytes += heap_bytes(column.name);
  bytes += vector_bytes(result.column_digests);
  return bytes;
}

// The entry in the id table's slab, its share of the table (IdTable), and
// its slot among its topic's pending offsets: 24 bytes, counted
// as 40 for the vector's spare capacity (a vector grown by doubling is on
// average a third empty) and the holes not swept yet (at most as many as the
// live slots; usually none, as results mostly come in request order).
// Every pending request pays for it: its id, its request (its offset, time
// and one pointer) and the result pointer; eight fill a deque's 512-byte chunk.
static_assert(sizeof(PendingEntry) == 64, "an entry in the id table's slab");
size_t entry_overhead(size_t id_heap_bytes) {
  constexpr size_t kEntry = sizeof(PendingEntry) + IdTable<PendingEntry>::kOverheadPerEntry;
  constexpr size_t kOffsetSlot = PendingOffsets::kSlotBytes + 16;
  return kEntry + id_heap_bytes + kOffsetSlot;
}

// A waiting result's node in the ordered index of results by source offset
// (or by wall time) that refers to its id.
constexpr size_t kResultIndexNode = 4 * sizeof(void*) + sizeof(int64_t) + sizeof(const RequestId*) + kAllocationOverhead;

// The bytes an entry is counted for are worked out again from what it holds
// when it leaves (nothing it holds changes while it waits), so the entry
// keeps no count of them.
size_t waiting_request_bytes(const PendingEntry& entry) {
  return entry_overhead(entry.id.heap_bytes()) + entry.request.heap_bytes();
}

size_t waiting_result_bytes(size_t id_heap_bytes, const ResultSide& side) {
  size_t bytes = entry_overhead(id_heap_bytes) + kResultIndexNode + sizeof(WaitingResult) + kAllocationOverhead;
  bytes += vector_bytes(side.statements) - side.statements.capacity() * sizeof(SideStatement);
  for (const auto& statement : side.statements) bytes += statement_bytes(statement);
  return bytes;
}

SideStatement slim(std::string fingerprint, wire::StatementResult result, bool keep_message) {
  if (!keep_message) {
    result.message.clear();
    result.message.shrink_to_fit();
  }
  return SideStatement{std::move(fingerprint), std::move(result)};
}

// A parameter bound in binary (requests v2) as an operator can read it in a
// mismatch record: its text where the type's text form is fixed by the
// value, else a note with its type and bytes in hex (numeric, dates and
// times are not rendered here: their text depends on the session).
std::string readable_binary(uint32_t type_oid, const std::string& bytes) {
  if (auto text = digest::binary_to_text(type_oid, bytes)) return std::move(*text);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "(binary " + std::string(digest::builtin_type_name(type_oid).empty()
                                                 ? "type " + std::to_string(type_oid)
                                                 : std::string(digest::builtin_type_name(type_oid))) +
                    ", not rendered: \\x";
  for (char c : bytes) {
    out.push_back(kDigits[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kDigits[static_cast<unsigned char>(c) & 0xF]);
  }
  return out + ")";
}

}  // namespace

RequestSide request_side(wire::Request& request, int64_t offset, bool keep_params, Take take) {
  RequestSide side;
  side.key = std::move(request.key);
  side.ts_us = request.ts_us;
  side.offset = offset;
  side.statements.reserve(request.statements.size());
  for (auto& statement : request.statements) {
    // Copied (Take::copy), the record the caller decodes every request into
    // keeps its vectors' and strings' capacity; moved (Take::move), the
    // service gives them back once the pair is decided (see Take).
    side.statements.push_back(take == Take::copy ? slim(statement.fingerprint, statement.result, false)
                                                 : slim(std::move(statement.fingerprint), std::move(statement.result), false));
    if (!keep_params) continue;
    const auto& binding = statement.binding;
    for (size_t i = 0; i < statement.params.size(); ++i) {
      if (binding.binary_param(i) && statement.params[i]) {
        const uint32_t type = i < binding.param_types.size() ? binding.param_types[i] : 0;
        statement.params[i] = readable_binary(type, *statement.params[i]);
      }
    }
    side.params.push_back(std::move(statement.params));
  }
  return side;
}

ResultSide result_side(wire::ShadowResult& result, int64_t offset, int32_t partition, Take take) {
  ResultSide side;
  side.ts_us = result.ts_us;
  side.offset = offset;
  const bool placed = result.source_partition == partition;
  side.source_offset = placed ? result.source_offset : -1;
  side.published_below = placed ? result.published_below : -1;
  side.statements.reserve(result.statements.size());
  for (auto& statement : result.statements) {
    side.statements.push_back(take == Take::copy ? SideStatement{statement.fingerprint, statement.result}
                                                 : SideStatement{std::move(statement.fingerprint), std::move(statement.result)});
  }
  return side;
}

namespace {

template <class Record>
void give_back_into(std::vector<SideStatement>&& statements, Record& into) {
  const size_t count = std::min(statements.size(), into.statements.size());
  for (size_t i = 0; i < count; ++i) {
    into.statements[i].fingerprint = std::move(statements[i].fingerprint);
    into.statements[i].result = std::move(statements[i].result);
  }
}

}  // namespace

void give_back(std::vector<SideStatement>&& statements, wire::Request& into) { give_back_into(std::move(statements), into); }
void give_back(std::vector<SideStatement>&& statements, wire::ShadowResult& into) {
  give_back_into(std::move(statements), into);
}

size_t heap_bytes(const RequestSide& side) {
  size_t bytes = heap_bytes(side.key);
  for (const auto& statement : side.statements) bytes += statement_bytes(statement);
  bytes += vector_bytes(side.statements) - side.statements.capacity() * sizeof(SideStatement);
  bytes += vector_bytes(side.params);
  for (const auto& params : side.params) {
    bytes += vector_bytes(params);
    for (const auto& param : params) bytes += param ? heap_bytes(*param) : 0;
  }
  return bytes;
}

size_t estimate_bytes(const std::string& request_id, const RequestSide& side) {
  size_t bytes = entry_overhead(RequestId::heap_bytes_for(request_id));
  if (!PendingRequest::fits(side)) return bytes + sizeof(RequestSide) + kAllocationOverhead + heap_bytes(side);
  // The statements, their digests and the key share one allocation.
  for (const auto& statement : side.statements) bytes += layout_bytes(statement.fingerprint, statement.result.columns);
  return bytes + PendingRequest::storage_bytes(side) + kAllocationOverhead;
}

size_t estimate_bytes(const std::string& request_id, const ResultSide& side) {
  return waiting_result_bytes(RequestId::heap_bytes_for(request_id), side);
}

PairState::PairState(int64_t stall_after_us, int64_t decided_retention_us, size_t decided_capacity)
    : stall_after_us_(stall_after_us), decided_retention_us_(decided_retention_us), decided_capacity_(decided_capacity) {}

void PairState::pause_waiting_side() {
  const auto waiting = waiting_side();
  if (!waiting || paused(*waiting)) return;
  set_paused(*waiting == Side::requests ? Side::results : Side::requests, false);
  set_paused(*waiting, true);
}

void PairState::resume() {
  set_paused(Side::requests, false);
  set_paused(Side::results, false);
}

std::optional<Side> PairState::waiting_side() const {
  if (bytes_[0] == 0 && bytes_[1] == 0) return std::nullopt;
  return bytes_[0] >= bytes_[1] ? Side::requests : Side::results;
}

void PairState::consumed(Side side, int64_t offset, int64_t wall_us) {
  auto& next = next_offset_[static_cast<int>(side)];
  next = std::max(next.value_or(0), offset + 1);
  (void)wall_us;
  drop_passed_joins();
}

void PairState::starts_at(Side side, int64_t offset) { start_offset_[static_cast<int>(side)] = offset; }

std::optional<int64_t> PairState::expected_offset(Side side) const {
  const auto& next = next_offset_[static_cast<int>(side)];
  return next ? next : start_offset_[static_cast<int>(side)];
}

void PairState::results_lost(int64_t from, int64_t to) {
  if (to <= from) return;
  if (unbounded_lost_results_) {  // not bounded yet: one stretch
    auto& lost = unbounded_lost_results_->lost;
    lost = LostOffsets{std::min(lost.from, from), std::max(lost.to, to)};
    return;
  }
  unbounded_lost_results_ = LostResultsStretch{passed_below_, -1, LostOffsets{from, to}};
}

// An executor produces a partition's results in request order, so a result
// deleted before the next record read belongs to a request below the one
// that record names (its source offset, or for a gap record the first
// request it never applied), or below its progress stamp, whichever is
// higher. Not covered: a next record that is a result re-produced after a
// failed delivery, behind first results of later requests; those requests
// are then passed as shadow_missing, as before results losses were found.
void PairState::bound_lost_results(int64_t request_offset) {
  if (!unbounded_lost_results_ || request_offset < 0) return;
  unbounded_lost_results_->below = request_offset;
  lost_results_.push_back(*unbounded_lost_results_);
  unbounded_lost_results_.reset();
}

Missing PairState::missing(std::string request_id, RequestSide request, int64_t passed_at) const {
  Missing passed{std::move(request_id), std::move(request), passed_at, std::nullopt};
  const int64_t offset = passed.request.offset;
  // The earliest stretch whose requests it is among: the loss it may have been in.
  const LostResultsStretch* covering = nullptr;
  for (const auto& stretch : lost_results_) {
    if (offset >= stretch.above && offset < stretch.below && (!covering || stretch.below < covering->below)) {
      covering = &stretch;
    }
  }
  if (covering) passed.results_lost = covering->lost;
  return passed;
}

void PairState::forget_decided_lost_results() {
  const auto decided_below = requests_decided_below();
  if (!decided_below) return;
  std::erase_if(lost_results_, [&](const LostResultsStretch& stretch) { return stretch.below <= *decided_below; });
}

// Every request below it is decided: the oldest waiting one, else where the
// requests side goes on (the committed offset it started from counts before
// it reads a request, unlike the commit position, which waits for a read).
std::optional<int64_t> PairState::requests_decided_below() const {
  return pending_[0].empty() ? expected_offset(Side::requests) : std::optional<int64_t>(pending_[0].first());
}

void PairState::record_replayable(int64_t request_offset, int64_t result_offset) {
  if (request_offset < 0 || result_offset < 0) return;
  if (replayable_joins_.try_emplace({request_offset, result_offset}, Nothing{}).second) {
    replayable_result_offsets_.add(result_offset, nullptr);
  }
  drop_passed_joins();
}

void PairState::drop_passed_joins() {
  const auto requests_position = commit_offset(Side::requests);
  if (!requests_position) return;
  while (!replayable_joins_.empty() && replayable_joins_.front().first.first < *requests_position) {
    replayable_result_offsets_.remove(replayable_joins_.front().first.second);
    replayable_joins_.pop_front();
  }
}

// The id table's hash, which RequestId::text_hash() gives for a waiting id too.
uint64_t PairState::id_hash(std::string_view request_id) { return IdTable<Entry>::hash(request_id); }

void PairState::remember(uint64_t hash, int64_t wall_us) {
  decided_.insert(hash, wall_us);
  forget_expired_decisions(wall_us);
}

void PairState::mark_decided(const std::string& request_id, int64_t wall_us) {
  const uint64_t hash = id_hash(request_id);
  if (entries_.find(request_id, hash)) ++waiting_ids_marked_decided_;
  remember(hash, wall_us);
}

// An id that has an entry was not decided: a decision erases the entry in
// the same call, and no entry is made for a decided id. So the decided ids (a
// large table, a cache miss a probe) are probed only for an id with no entry,
// unless mark_decided found its id waiting. (Two ids whose 64-bit hashes
// collide, one decided and one waiting, are told apart by the entry: the
// waiting one joins instead of being taken for a copy.)
bool PairState::decided_before(const Entry* found, uint64_t hash) const {
  return (!found || waiting_ids_marked_decided_ > 0) && decided_.contains(hash);
}

PendingEntry* PairState::find_entry(const std::string& request_id, uint64_t hash) {
  if (entries_.size() == 0) waiting_ids_marked_decided_ = 0;  // no id marked while waiting waits any more
  return entries_.find(request_id, hash);
}

// Wall time, never record time: a request stamped far in the future by a
// skewed clock must not make every other decided id forgettable.
void PairState::forget_expired_decisions(int64_t wall_us) {
  decided_.forget(decided_capacity_, wall_us - decided_retention_us_);
}

void PairState::forget_request(const Entry& entry) {
  pending_[0].remove(entry.request.offset());
  bytes_[0] -= waiting_request_bytes(entry);
}

void PairState::forget_result(Entry& entry) {
  const ResultSide& result = entry.result->side;
  if (result.source_offset >= 0) {
    placed_results_.erase({result.source_offset, &entry.id});
  } else {
    unplaced_results_.erase({entry.result->since_wall_us, &entry.id});
  }
  pending_[1].remove(result.offset);
  bytes_[1] -= waiting_result_bytes(entry.id.heap_bytes(), result);
  --pending_results_;
}

PairState::Added PairState::join(Entry& entry, uint64_t hash, std::string request_id, RequestSide request,
                                 ResultSide result) {
  entries_.erase(entry.id, hash);
  Added added;
  added.outcome = Outcome::joined;
  record_replayable(request.offset, result.offset);
  added.joined = Joined{std::move(request_id), std::move(request), std::move(result)};
  return added;
}

// The id is hashed once per record: the same hash finds its entry and its
// decided-id memory.
PairState::Added PairState::add_request(std::string request_id, RequestSide side, int64_t wall_us) {
  consumed(Side::requests, side.offset, wall_us);
  forget_expired_decisions(wall_us);
  const uint64_t hash = id_hash(request_id);
  Entry* found = find_entry(request_id, hash);
  if (decided_before(found, hash)) return {Outcome::duplicate, std::nullopt, {}, drop_orphan_results()};
  if (found && found->request) return {Outcome::duplicate, std::nullopt, {}, drop_orphan_results()};
  if (found) {  // its result waits
    forget_result(*found);
    ResultSide result = std::move(found->result->side);
    remember(hash, wall_us);
    Added added = join(*found, hash, std::move(request_id), std::move(side), std::move(result));
    added.orphan_results = drop_orphan_results();
    return added;
  }
  if (side.offset >= 0 && side.offset < passed_below_) {
    // The results side already showed the executor passed this offset, and
    // its result was not among what came before the stamp.
    remember(hash, wall_us);
    Added added;
    added.missing.push_back(missing(std::move(request_id), std::move(side), passed_below_));
    added.orphan_results = drop_orphan_results();
    return added;
  }
  if (pending_[0].waiting() == 0) last_progress_wall_us_ = wall_us;  // waiting starts now, not at the last result
  Entry& entry = entries_.insert(request_id, hash);
  pending_[0].add(side.offset, &entry.id);
  entry.request = PendingRequest(std::move(side), layouts_);
  bytes_[0] += waiting_request_bytes(entry);
  Added added;
  added.orphan_results = drop_orphan_results();
  return added;
}

bool PairState::joins_on_arrival(Side arriving, const std::string& request_id) const {
  const uint64_t hash = id_hash(request_id);
  const Entry* found = entries_.find(request_id, hash);
  if (!found || decided_before(found, hash)) return false;
  return arriving == Side::results ? found->request && !found->result : found->result && !found->request;
}

PairState::Added PairState::add_result(std::string request_id, ResultSide side, int64_t wall_us) {
  consumed(Side::results, side.offset, wall_us);
  forget_expired_decisions(wall_us);
  last_progress_wall_us_ = wall_us;
  const int64_t stamp = side.published_below;
  bound_lost_results(side.source_offset < 0 ? -1 : std::max(side.source_offset, stamp));
  const uint64_t hash = id_hash(request_id);
  Added added;
  Entry* found = find_entry(request_id, hash);
  if (decided_before(found, hash)) {
    added.outcome = Outcome::duplicate;
  } else if (!found && side.source_offset >= 0 && next_offset_[0] && side.source_offset < *next_offset_[0]) {
    // Its request was consumed (or lies below where this instance started)
    // and is not waiting: it was decided before, or dead-lettered.
    added.orphan_results = 1;
  } else if (found && found->result) {
    added.outcome = Outcome::duplicate;
  } else if (found) {  // its request waits
    forget_request(*found);
    RequestSide request = found->request.take(layouts_);
    remember(hash, wall_us);
    added = join(*found, hash, std::move(request_id), std::move(request), std::move(side));
  } else {
    Entry& entry = entries_.insert(request_id, hash);
    bytes_[1] += waiting_result_bytes(entry.id.heap_bytes(), side);
    pending_[1].add(side.offset, nullptr);
    if (side.source_offset >= 0) {
      placed_results_.emplace(side.source_offset, &entry.id);
    } else {
      unplaced_results_.emplace(wall_us, &entry.id);
    }
    ++pending_results_;
    entry.result = std::make_unique<WaitingResult>(WaitingResult{std::move(side), wall_us});
  }
  if (stamp >= 0) {
    for (auto& missing : pass(stamp)) {
      remember(id_hash(missing.request_id), wall_us);
      added.missing.push_back(std::move(missing));
    }
  }
  return added;
}

PairState::Added PairState::progress(int64_t published_below, int64_t result_offset, int64_t wall_us,
                                     int64_t first_never_applied) {
  consumed(Side::results, result_offset, wall_us);
  bound_lost_results(first_never_applied >= 0 ? first_never_applied : published_below);
  last_progress_wall_us_ = wall_us;
  Added added;
  for (auto& missing : pass(published_below)) {
    remember(id_hash(missing.request_id), wall_us);
    added.missing.push_back(std::move(missing));
  }
  return added;
}

// Every waiting request below the stamp is decided at once, so the requests
// commit position passes each of them: none is replayed after a crash, and
// the stamp need not be either.
std::vector<Missing> PairState::pass(int64_t published_below) {
  passed_below_ = std::max(passed_below_, published_below);
  std::vector<Missing> passed;
  for (auto waiting = pending_[0].first_waiting(); waiting.second && waiting.first < published_below;
       waiting = pending_[0].first_waiting()) {
    const uint64_t hash = waiting.second->text_hash();
    Entry& entry = *entries_.find(*waiting.second, hash);
    std::string request_id = entry.id.str();
    forget_request(entry);
    RequestSide request = entry.request.take(layouts_);
    entries_.erase(entry.id, hash);
    passed.push_back(missing(std::move(request_id), std::move(request), published_below));
  }
  drop_passed_joins();  // the requests position moved past them
  forget_decided_lost_results();
  return passed;
}

size_t PairState::drop_orphan_results() {
  if (!next_offset_[0]) return 0;
  size_t dropped = 0;
  while (!placed_results_.empty() && placed_results_.begin()->first < *next_offset_[0]) {
    const RequestId& id = *placed_results_.begin()->second;
    const uint64_t hash = id.text_hash();
    Entry& entry = *entries_.find(id, hash);
    if (entry.request) break;  // cannot happen: a waiting request would have joined
    forget_result(entry);
    entries_.erase(entry.id, hash);
    ++dropped;
  }
  return dropped;
}

size_t PairState::expire_unplaced_results(int64_t wall_us) {
  size_t dropped = 0;
  while (!unplaced_results_.empty() && unplaced_results_.begin()->first < wall_us - stall_after_us_) {
    const RequestId& id = *unplaced_results_.begin()->second;
    const uint64_t hash = id.text_hash();
    Entry& entry = *entries_.find(id, hash);
    forget_result(entry);
    entries_.erase(entry.id, hash);
    ++dropped;
  }
  return dropped + drop_orphan_results();
}

std::optional<int64_t> PairState::stalled_since(int64_t wall_us) const {
  if (pending_[0].waiting() == 0 || wall_us - last_progress_wall_us_ < stall_after_us_) return std::nullopt;
  return last_progress_wall_us_;
}

void PairState::hold(int64_t request_offset, Tally tally) {
  auto [held, inserted] = tallies_.try_emplace(request_offset, std::move(tally));
  if (!inserted) {  // two records at one offset cannot happen; keep both counts rather than lose one
    for (auto& fingerprint : tally.fingerprints) held->fingerprints.push_back(std::move(fingerprint));
    for (auto& found : tally.discrepancies) held->discrepancies.push_back(std::move(found));
  }
}

std::vector<Tally> PairState::take_passed_tallies() {
  std::vector<Tally> passed;
  const auto position = commit_offset(Side::requests);
  if (!position) return passed;
  while (!tallies_.empty() && tallies_.front().first < *position) {
    passed.push_back(std::move(tallies_.front().second));
    tallies_.pop_front();
  }
  return passed;
}

std::optional<int64_t> PairState::commit_offset(Side side) const {
  const int index = static_cast<int>(side);
  std::optional<int64_t> position =
      pending_[index].empty() ? next_offset_[index] : std::optional<int64_t>(pending_[index].first());
  // The results of requests that a restart replays must be replayed as well,
  // or those requests would wait in vain.
  if (side == Side::results && position && !replayable_result_offsets_.empty()) {
    position = std::min(*position, replayable_result_offsets_.first());
  }
  // Results lost while requests that may have been theirs are undecided:
  // a successor must start at the loss to find it again, or it would pass
  // those requests as shadow_missing.
  if (side == Side::results && position && (unbounded_lost_results_ || !lost_results_.empty())) {
    const auto decided_below = requests_decided_below();
    if (unbounded_lost_results_) position = std::min(*position, unbounded_lost_results_->lost.from);
    for (const auto& stretch : lost_results_) {
      if (!decided_below || *decided_below < stretch.below) position = std::min(*position, stretch.lost.from);
    }
  }
  return position;
}

std::optional<int64_t> PairState::oldest_pending_ts() const {
  const auto waiting = pending_[0].first_waiting();
  if (!waiting.second) return std::nullopt;
  return entries_.find(*waiting.second, waiting.second->text_hash())->request.ts_us();
}

}  // namespace shadowpipe::comparator
