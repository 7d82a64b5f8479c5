#include "shadowctl/report.hpp"

#include "shadowctl/topic_reader.hpp"

#include <algorithm>
#include <charconv>
#include <map>

namespace shadowpipe::shadowctl {

namespace wire = shadowpipe::wire;

namespace {
constexpr size_t kExampleRequests = 3;
constexpr size_t kErrorMessages = 3;
}  // namespace

uint64_t FingerprintReport::discrepancy_total(bool with_latency) const {
  uint64_t total = 0;
  for (const auto& [kind, count] : discrepancies) {
    if (with_latency || kind != "latency_regression") total += count;
  }
  return total;
}

// Each offset once: a comparator that found a loss while running starts it
// after the last record it read, and a successor restarted from the
// committed offset (the oldest request then pending, perhaps earlier) finds
// the same loss again from there, under another id. Ids are
// lost:<topic>:<partition>:<first offset> (Kafka topic names have no ':'),
// the count is in write_units; a record whose id does not read that way
// (one a request whose result was lost) counts as it is.
uint64_t Report::requests_never_compared() const {
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> lost;  // topic:partition -> [from, to)
  uint64_t total = 0;
  for (const auto& gap : comparison_gaps) {
    const size_t last = gap.id.rfind(':');
    int64_t from = -1;
    const char* begin = gap.id.data() + (last == std::string::npos ? 0 : last + 1);
    const auto parsed = std::from_chars(begin, gap.id.data() + gap.id.size(), from);
    if (!gap.id.starts_with("lost:") || last == std::string::npos || last < 5 || parsed.ec != std::errc() ||
        parsed.ptr != gap.id.data() + gap.id.size() || from < 0) {
      total += gap.write_units;
      continue;
    }
    lost[gap.id.substr(5, last - 5)].emplace_back(from, from + static_cast<int64_t>(gap.write_units));
  }
  for (auto& [where, ranges] : lost) {
    std::sort(ranges.begin(), ranges.end());
    int64_t covered_to = -1;
    for (const auto& [from, to] : ranges) {
      const int64_t start = std::max(from, covered_to);
      if (to > start) total += static_cast<uint64_t>(to - start);
      covered_to = std::max(covered_to, to);
    }
  }
  return total;
}

uint64_t Report::discrepancies(bool with_latency) const {
  uint64_t total = 0;
  for (const auto& fingerprint : fingerprints) total += fingerprint.discrepancy_total(with_latency);
  return total;
}

ReportBuilder::Entry& ReportBuilder::entry(const std::string& fingerprint) {
  auto& entry = entries_[fingerprint];
  entry.report.fingerprint = fingerprint;
  return entry;
}

void ReportBuilder::add_mismatch(const wire::Mismatch& mismatch) {
  // A comparator that replays after a crash may publish a decision again.
  const auto identity =
      mismatch.request_id + "|" + mismatch.kind + "|" + std::to_string(mismatch.statement_index);
  ++mismatch_records_;
  if (!seen_.insert(identity).second) {
    // A comparator publishes a fingerprint's regression again when it grew
    // markedly: the newer record replaces the older one.
    if (mismatch.kind == "latency_regression") {
      entry(mismatch.fingerprint).report.latency_regression = mismatch;
      return;
    }
    ++duplicates_;
    return;
  }
  if (mismatch.ts_us > 0) {
    first_ts_us_ = first_ts_us_ == 0 ? mismatch.ts_us : std::min(first_ts_us_, mismatch.ts_us);
    last_ts_us_ = std::max(last_ts_us_, mismatch.ts_us);
  }
  // Gaps describe no fingerprint and are no finding of a comparison: they
  // are listed apart (each fails the verdict on its own), not counted.
  if (mismatch.kind == "shadow_gap" || mismatch.kind == "comparison_gap") {
    auto& list = mismatch.kind == "shadow_gap" ? gaps_ : comparison_gaps_;
    list.push_back({mismatch.request_id, mismatch.primary ? static_cast<uint64_t>(std::max<int64_t>(0, mismatch.primary->rows)) : 0,
                    mismatch.detail});
    return;
  }
  auto& report = entry(mismatch.fingerprint).report;
  if (report.normalized_sql.empty()) report.normalized_sql = mismatch.normalized_sql;
  if (wire::is_notice_kind(mismatch.kind)) {
    report.notices[mismatch.kind].insert(mismatch.detail);
    return;
  }
  ++report.discrepancies[mismatch.kind];
  if (report.example_request_ids.size() < kExampleRequests &&
      std::find(report.example_request_ids.begin(), report.example_request_ids.end(), mismatch.request_id) ==
          report.example_request_ids.end()) {
    report.example_request_ids.push_back(mismatch.request_id);
  }
  report.columns_differ.insert(mismatch.columns_differ.begin(), mismatch.columns_differ.end());
  for (const auto* side : {&mismatch.shadow, &mismatch.primary}) {
    if (*side && !(*side)->sqlstate.empty()) report.sqlstates.insert((*side)->sqlstate);
  }
  if (mismatch.shadow && !mismatch.shadow->message.empty() && report.error_messages.size() < kErrorMessages &&
      std::find(report.error_messages.begin(), report.error_messages.end(), mismatch.shadow->message) ==
          report.error_messages.end()) {
    report.error_messages.push_back(mismatch.shadow->message);
  }
  if (mismatch.kind == "latency_regression") report.latency_regression = mismatch;
}

void ReportBuilder::add_summary(const wire::Summary& summary) {
  if (summary.fingerprint.empty()) {  // the whole request stream of one interval
    saw_request_summaries_ = true;
    requests_compared_ += summary.compared;
    auto& [ts, stalled] = stalls_[summary.comparator];
    if (summary.ts_us >= ts) {
      ts = summary.ts_us;
      stalled = summary.stalled;
    }
    return;
  }
  auto& entry = this->entry(summary.fingerprint);
  if (entry.report.normalized_sql.empty()) entry.report.normalized_sql = summary.normalized_sql;
  entry.compared_by_comparator[summary.comparator] += summary.compared;
  auto& latest = entry.latest_by_comparator[summary.comparator];
  if (summary.ts_us >= latest.ts_us) latest = summary;
}

Report ReportBuilder::build() const {
  Report report;
  report.compared = requests_compared_;
  report.gaps = gaps_;
  report.comparison_gaps = comparison_gaps_;
  // Stalls as the newest summary of each comparator names them; read_report
  // keeps only those of partitions that are still behind.
  for (const auto& [comparator, newest] : stalls_) {
    for (const auto& stall : newest.second) {
      PartitionProgress progress;
      progress.partition = stall.partition;
      progress.stall = stall;
      report.partitions.push_back(progress);
    }
  }
  report.mismatch_records = mismatch_records_;
  report.duplicate_mismatch_records = duplicates_;
  report.unreadable_records = unreadable_;
  report.first_ts_us = first_ts_us_;
  report.last_ts_us = last_ts_us_;
  for (const auto& [fingerprint, entry] : entries_) {
    FingerprintReport out = entry.report;
    // Instances split the partitions, so their counts add up; latency comes
    // from the newest record of the instance that compared the most.
    uint64_t most = 0;
    for (const auto& [comparator, compared] : entry.compared_by_comparator) {
      out.compared += compared;
      if (compared >= most) {
        most = compared;
        const auto& latest = entry.latest_by_comparator.at(comparator);
        out.primary_latency = latest.primary_latency;
        out.shadow_latency = latest.shadow_latency;
      }
    }
    if (!saw_request_summaries_) report.compared += out.compared;  // older comparators: statements
    report.fingerprints.push_back(std::move(out));
  }
  std::stable_sort(report.fingerprints.begin(), report.fingerprints.end(), [](const auto& a, const auto& b) {
    if (a.discrepancy_total(true) != b.discrepancy_total(true)) {
      return a.discrepancy_total(true) > b.discrepancy_total(true);
    }
    return a.compared > b.compared;
  });
  return report;
}

void ReportBuilder::add_record(const shadowpipe::kafka::Message& message, const TopicNames& names) {
  if (message.topic() == names.mismatches) {
    auto mismatch = wire::decode_mismatch(message.payload());
    if (mismatch) add_mismatch(*mismatch); else add_unreadable();
  } else if (message.topic() == names.summary) {
    auto summary = wire::decode_summary(message.payload());
    if (summary) add_summary(*summary); else add_unreadable();
  }
}

Report read_report(const shadowpipe::kafka::Properties& kafka, const ReadOptions& options) {
  ReportBuilder builder;
  TopicReader reader(kafka, {options.names.mismatches, options.names.summary}, options.since_ms);
  reader.read_to_end([&](const auto& message) { builder.add_record(message, options.names); }, options.timeout);
  Report report = builder.build();
  if (options.comparator_group.empty()) {
    report.progress_unknown = "no comparator group given";
  } else if (auto progress = read_progress(kafka, options.names.requests, options.comparator_group, report.partitions)) {
    report.partitions = std::move(*progress);
  } else {
    report.progress_unknown = "topic " + options.names.requests + " does not exist (name it with --requests-topic)";
  }
  return report;
}

std::optional<std::vector<PartitionProgress>> read_progress(const shadowpipe::kafka::Properties& kafka, const std::string& requests_topic,
                                             const std::string& group, const std::vector<PartitionProgress>& stalls) {
  namespace k = shadowpipe::kafka;
  k::Properties properties = kafka;
  properties.emplace_back("group.id", group);  // committed() reads this group's offsets; nothing joins it
  properties.emplace_back("enable.auto.commit", "false");
  k::Consumer consumer(properties);
  const auto partitions = k::partition_count(consumer.get(), requests_topic, std::chrono::seconds(10));
  if (!partitions) return std::nullopt;
  k::PartitionList committed(*partitions);
  for (int32_t partition = 0; partition < *partitions; ++partition) committed.add(requests_topic, partition);
  k::read_committed(consumer.get(), committed);
  std::vector<PartitionProgress> out;
  for (int i = 0; i < committed.size(); ++i) {
    PartitionProgress progress;
    progress.partition = committed[i].partition;
    const auto [low, high] = k::watermarks(consumer.get(), requests_topic, progress.partition);
    progress.end = high;
    // No commit yet: nothing decided, except what retention already removed.
    progress.decided = committed[i].offset >= 0 ? committed[i].offset : low;
    if (progress.undecided() > 0) {
      for (const auto& stalled : stalls) {
        if (stalled.partition == progress.partition && stalled.stall &&
            (!progress.stall || stalled.stall->since_us < progress.stall->since_us)) {
          progress.stall = stalled.stall;
        }
      }
    }
    out.push_back(progress);
  }
  return out;
}

}  // namespace shadowpipe::shadowctl

namespace shadowpipe::shadowctl {

void follow_report(const shadowpipe::kafka::Properties& kafka, const ReadOptions& options,
                   const std::function<void(const Report&)>& on_update, const std::function<bool()>& should_stop) {
  ReportBuilder builder;
  bool changed = false;
  auto handle = [&](const shadowpipe::kafka::Message& message) {
    changed = true;
    builder.add_record(message, options.names);
  };
  TopicReader reader(kafka, {options.names.mismatches, options.names.summary}, options.since_ms);
  reader.read_to_end(handle, options.timeout);
  on_update(builder.build());
  while (!should_stop()) {
    changed = false;
    reader.read_for(handle, std::chrono::seconds(2));
    if (changed) on_update(builder.build());
  }
}

}  // namespace shadowpipe::shadowctl
