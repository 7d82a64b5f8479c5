// `shadowctl report` and `verdict` read the mismatch and summary topics into
// one Report: per fingerprint, what was compared, what differed and how the
// latency moved. Rendering (text, json, html) is separate from reading.
#pragma once

#include "shadowctl/topics.hpp"
#include "shadowpipe/kafka.hpp"
#include "shadowpipe/wire.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace shadowpipe::shadowctl {

struct FingerprintReport {
  std::string fingerprint;
  std::string normalized_sql;
  uint64_t compared = 0;  // statements of this fingerprint compared
  std::map<std::string, uint64_t> discrepancies;  // by kind, from the mismatch topic (notices apart)
  // Notices (wire::is_notice_kind): how the fingerprint was compared, by kind,
  // each distinct detail once (a type change names both types).
  std::map<std::string, std::set<std::string>> notices;
  // Marked non-deterministic: LIMIT / DISTINCT ON without a proven total order.
  bool nondeterministic() const { return notices.contains("nondeterministic_result"); }
  std::vector<std::string> example_request_ids;   // the first few, in topic order
  std::set<std::string> columns_differ;
  std::set<std::string> sqlstates;                // the shadow's (or primary's) error codes seen
  std::vector<std::string> error_messages;        // a few distinct shadow error messages
  shadowpipe::wire::LatencySummary primary_latency;
  shadowpipe::wire::LatencySummary shadow_latency;
  std::optional<shadowpipe::wire::Mismatch> latency_regression;  // the latest one

  uint64_t discrepancy_total(bool with_latency) const;
};

// A stretch of write units the shadow never applied (a shadow_gap record),
// or requests never compared because retention deleted them or their
// results before a comparator decided them (a comparison_gap record; units:
// requests).
struct GapNotice {
  std::string id;
  uint64_t write_units = 0;
  std::string detail;
};

// How far the comparators got on one partition of the requests topic.
struct PartitionProgress {
  int32_t partition = -1;
  int64_t end = 0;       // the topic's end offset when read
  int64_t decided = 0;   // the comparator group's committed offset: everything below is decided
  std::optional<shadowpipe::wire::Summary::Stall> stall;  // as the newest summaries report it
  int64_t undecided() const { return end > decided ? end - decided : 0; }
};

struct Report {
  std::vector<FingerprintReport> fingerprints;  // most discrepancies first
  std::vector<GapNotice> gaps;
  std::vector<GapNotice> comparison_gaps;
  std::vector<PartitionProgress> partitions;  // read from Kafka when the comparator group is known
  std::string progress_unknown;  // why the comparators' progress could not be read; empty when it was
  uint64_t compared = 0;  // requests decided (from the comparators' whole-stream summaries)
  uint64_t mismatch_records = 0;
  uint64_t duplicate_mismatch_records = 0;  // same request, kind and statement seen twice
  uint64_t unreadable_records = 0;          // records in the topics that did not decode
  int64_t first_ts_us = 0;
  int64_t last_ts_us = 0;

  // What comparing found (gaps are listed apart, not counted here).
  uint64_t discrepancies(bool with_latency) const;
  // Requests in comparison_gaps, an offset found by two comparators once.
  uint64_t requests_never_compared() const;
};

// Accumulates records; exposed so tests and --follow feed it directly.
class ReportBuilder {
 public:
  void add_mismatch(const shadowpipe::wire::Mismatch& mismatch);
  // Summary records count per interval (compared is summed over every
  // record) and carry latency percentiles since their comparator started
  // (the newest record per comparator describes it).
  void add_summary(const shadowpipe::wire::Summary& summary);
  void add_unreadable() { ++unreadable_; }
  // A record read from the mismatch or summary topic, decoded by its topic.
  void add_record(const shadowpipe::kafka::Message& message, const TopicNames& names);
  Report build() const;

 private:
  struct Entry {
    FingerprintReport report;
    std::map<std::string, shadowpipe::wire::Summary> latest_by_comparator;
    std::map<std::string, uint64_t> compared_by_comparator;
  };
  Entry& entry(const std::string& fingerprint);
  std::map<std::string, Entry> entries_;
  std::set<std::string> seen_;  // request_id|kind|statement_index
  std::vector<GapNotice> gaps_;
  std::vector<GapNotice> comparison_gaps_;
  // Per comparator, the stalled partitions its newest whole-stream summary named.
  std::map<std::string, std::pair<int64_t, std::vector<shadowpipe::wire::Summary::Stall>>> stalls_;
  uint64_t requests_compared_ = 0;
  bool saw_request_summaries_ = false;
  uint64_t mismatch_records_ = 0, duplicates_ = 0, unreadable_ = 0;
  int64_t first_ts_us_ = 0, last_ts_us_ = 0;
};

struct ReadOptions {
  TopicNames names;
  // The comparators' consumer group: its committed offsets on the requests
  // topic say what is decided. Empty: progress is not read.
  std::string comparator_group = "shadow-comparator";
  std::optional<int64_t> since_ms;
  std::chrono::milliseconds timeout{60'000};
};

// Reads both topics to their current end, and the comparators' progress.
Report read_report(const shadowpipe::kafka::Properties& kafka, const ReadOptions& options);

// Per partition of the requests topic: its end and the comparator group's
// committed offset (nullopt when the topic does not exist). Of the stalls the summaries named, keeps those of
// partitions still behind (a comparator's newest summary may predate a
// rebalance that moved the partition on).
std::optional<std::vector<PartitionProgress>> read_progress(const shadowpipe::kafka::Properties& kafka, const std::string& requests_topic,
                                             const std::string& group, const std::vector<PartitionProgress>& stalls);

enum class Format { text, json, html };
std::string render(const Report& report, Format format);

}  // namespace shadowpipe::shadowctl

namespace shadowpipe::shadowctl {

// --follow: reads to the end, then keeps reading; calls on_update with the
// whole report every couple of seconds while something changed, until
// should_stop() says so.
void follow_report(const shadowpipe::kafka::Properties& kafka, const ReadOptions& options,
                   const std::function<void(const Report&)>& on_update, const std::function<bool()>& should_stop);

}  // namespace shadowpipe::shadowctl
