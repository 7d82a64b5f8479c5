#include "comparator/metrics.hpp"

#include "shadowpipe/wire.hpp"

#include <algorithm>

namespace shadowpipe::comparator {

ComparatorMetrics::ComparatorMetrics(prometheus::Registry& registry) {
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
  };
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
  };
  pairs_total = counter("shadowpipe_comparator_pairs_total", "Requests joined with their shadow result and classified");
  duplicates_total = counter("shadowpipe_comparator_duplicates_total", "Copies of requests or results already seen, dropped");
  dead_letters_total = counter("shadowpipe_comparator_dead_letters_total", "Records sent to the dead-letter topic");
  orphan_results_total = counter("shadowpipe_comparator_orphan_results_total",
                                 "Shadow results whose request was decided before or dead-lettered, dropped");
  republish_suppressed_total = counter("shadowpipe_comparator_republish_suppressed_total",
                                       "Discrepancies found again after a restart or rebalance and not published twice");
  auto& kinds = prometheus::BuildCounter()
                    .Name("shadowpipe_comparator_discrepancies_total")
                    .Help("Discrepancies published, by kind")
                    .Register(registry);
  for (auto kind : wire::kMismatchKinds) discrepancies_total_.emplace(std::string(kind), &kinds.Add({{"kind", std::string(kind)}}));
  pending_requests_ = gauge("shadowpipe_comparator_pending_requests", "Requests waiting for their shadow result");
  pending_results_ = gauge("shadowpipe_comparator_pending_results", "Shadow results waiting for their request");
  pending_bytes_ = gauge("shadowpipe_comparator_pending_bytes", "Estimated bytes held by pending entries");
  bytes_per_entry_ = gauge("shadowpipe_comparator_pending_bytes_per_entry", "Estimated bytes per pending request or result");
  oldest_age_ = gauge("shadowpipe_comparator_oldest_pending_age_seconds",
                      "Age of the oldest request waiting for its result, by its primary commit time");
  paused_ = gauge("shadowpipe_comparator_paused_partitions", "Partitions paused because pending memory is over the limit");
  stalled_ = gauge("shadowpipe_comparator_stalled_partitions",
                   "Partitions whose requests wait while the executor has shown no progress for the window");
  aborted_ = gauge("shadowpipe_comparator_aborted_transactions",
                   "Transactions aborted and redone from the committed offsets since start");
  decision_lag_ = &prometheus::BuildHistogram()
                       .Name("shadowpipe_comparator_decision_lag_seconds")
                       .Help("From a request's primary commit time (its record's ts) to its decision here")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                                                         0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300});
}

void ComparatorMetrics::discrepancy(std::string_view kind) {
  if (auto it = discrepancies_total_.find(kind); it != discrepancies_total_.end()) it->second->Increment();
}

void ComparatorMetrics::decided(int64_t lag_us) {
  // A request stamped ahead of this clock (another host's skew) counts as 0.
  decision_lag_->Observe(static_cast<double>(std::max<int64_t>(lag_us, 0)) / 1e6);
}

void ComparatorMetrics::refresh(const Stats& stats, double oldest_pending_age_seconds) {
  pending_requests_->Set(static_cast<double>(stats.pending_requests));
  pending_results_->Set(static_cast<double>(stats.pending_results));
  pending_bytes_->Set(static_cast<double>(stats.pending_bytes));
  bytes_per_entry_->Set(stats.bytes_per_pending_entry);
  oldest_age_->Set(oldest_pending_age_seconds);
  paused_->Set(static_cast<double>(stats.paused_partitions));
  stalled_->Set(static_cast<double>(stats.stalled_partitions));
  aborted_->Set(static_cast<double>(stats.aborted_transactions));
}

}  // namespace shadowpipe::comparator
