// The comparator's deciding, without Kafka: takes decoded requests, joined
// pairs, passed requests and gaps, and returns the records to publish. It owns
// the per-fingerprint table (analysis, latency, counters), the consistency
// keys that already diverged, and the discrepancies already published before
// this instance owned a partition. The service (service.cpp) is the Kafka
// shell around it: it feeds records in and publishes what comes out.
#pragma once

#include "comparator/classify.hpp"
#include "comparator/latency.hpp"
#include "comparator/pending.hpp"
#include "shadowpipe/result.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace shadowpipe::comparator {

// What deciding one request (or gap) produced: the discrepancies to publish
// now, and what it adds to the counters once the commit position passes it.
struct Decision {
  std::vector<wire::Mismatch> publish;
  Tally tally;
  uint64_t suppressed = 0;  // found again, already published before (read back)
};

struct DeciderOptions {
  bool include_params = false;
  RegressionPolicy regression;
  std::string comparator_id;
};

class Decider {
 public:
  explicit Decider(DeciderOptions options) : options_(std::move(options)) {}

  // Registers each new fingerprint with its analysis (parsed once per
  // fingerprint). Fills an empty fingerprint in. An error for SQL that does
  // not parse, naming the statement.
  Result<void> register_fingerprints(std::vector<wire::Statement>& statements);
  // The newest shadow plan of a fingerprint, attached to its regressions.
  void note_plan(const std::string& fingerprint, wire::PlanSummary plan);

  Decision decide(const Joined& joined);
  Decision decide_missing(const Missing& missing);
  // A passed request whose result retention may have deleted from
  // `results_topic`[partition] (missing.results_lost): one comparison_gap
  // for it, and it is not counted as compared.
  Decision decide_never_compared(const Missing& missing, std::string_view results_topic, int32_t partition);
  // A gap announced on `topic` at `offset`: one shadow_gap discrepancy.
  Decision decide_gap(const wire::Gap& gap, std::string_view topic, int64_t offset);
  // Offsets [from, to) of a requests partition that retention deleted before
  // this comparator read them: one comparison_gap discrepancy.
  Decision decide_lost_requests(std::string_view topic, int32_t partition, int64_t from, int64_t to, int64_t wall_us);

  // Counters of requests whose decision is final (passed by the commit position).
  void count(std::vector<Tally> tallies);
  // Summary records for what was counted since the last call (one for the
  // whole stream, one per fingerprint), with the stalled partitions; empty
  // when nothing was counted and nothing is stalled.
  std::vector<wire::Summary> take_summaries(int64_t wall_us, std::vector<wire::Summary::Stall> stalled);
  // latency_regression records for fingerprints that turned slow.
  std::vector<wire::Mismatch> regressions(int64_t wall_us);

  // What an earlier owner published (read back on assignment).
  void add_reported(const wire::Mismatch& record, int64_t wall_us);
  // Forgets read-back entries older than the horizon.
  void forget_reported_before(int64_t wall_us);

  const std::map<std::string, FingerprintStats>& fingerprints() const { return fingerprints_; }

 private:
  Decision publish_findings(const std::string& request_id, const RequestSide& request, const ResultSide* result,
                            std::vector<Finding> findings);
  // A record about no single request (a gap): published unless an earlier
  // owner did (read back), deterministic ids making a replay recognizable.
  Decision publish_once(wire::Mismatch record) const;
  bool first_divergence(const std::string& key);

  DeciderOptions options_;
  std::map<std::string, FingerprintStats> fingerprints_;
  // Whole-stream counters since the last summary.
  uint64_t requests_counted_ = 0;
  std::map<std::string, uint64_t> request_kinds_counted_;
  // Discrepancies published before this instance owned the partition:
  // request id -> kind#statement tags, with their read time for eviction.
  std::unordered_map<std::string, std::set<std::string>> reported_;
  std::deque<std::pair<int64_t, std::string>> reported_order_;
  // Consistency keys that already had a discrepancy: later ones are echoes.
  std::unordered_set<std::string> diverged_keys_;
  // Notices (wire::is_notice_kind) already published, by fingerprint, kind
  // and detail.
  std::unordered_set<std::string> notices_published_;
  std::deque<std::string> diverged_order_;
  static constexpr size_t kDivergedKeysCapacity = 1'000'000;
};

}  // namespace shadowpipe::comparator
