// The comparator's Prometheus metrics, registered once.
#pragma once

#include "comparator/service.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <string>
#include <string_view>

namespace shadowpipe::comparator {

struct ComparatorMetrics {
  explicit ComparatorMetrics(prometheus::Registry& registry);

  void discrepancy(std::string_view kind);
  // A request decided `lag_us` after its primary commit time (the record's
  // ts): how far the shadow's verdict trails the application. The decision
  // becomes visible at the next transaction commit (--commit-interval).
  void decided(int64_t lag_us);
  // Gauges from a stats snapshot.
  void refresh(const Stats& stats, double oldest_pending_age_seconds);

  prometheus::Counter* pairs_total = nullptr;
  prometheus::Counter* duplicates_total = nullptr;
  prometheus::Counter* dead_letters_total = nullptr;
  prometheus::Counter* orphan_results_total = nullptr;
  prometheus::Counter* republish_suppressed_total = nullptr;

 private:
  std::map<std::string, prometheus::Counter*, std::less<>> discrepancies_total_;
  prometheus::Gauge* pending_requests_ = nullptr;
  prometheus::Gauge* pending_results_ = nullptr;
  prometheus::Gauge* pending_bytes_ = nullptr;
  prometheus::Gauge* bytes_per_entry_ = nullptr;
  prometheus::Gauge* oldest_age_ = nullptr;
  prometheus::Gauge* paused_ = nullptr;
  prometheus::Gauge* stalled_ = nullptr;
  prometheus::Gauge* aborted_ = nullptr;
  prometheus::Histogram* decision_lag_ = nullptr;
};

}  // namespace shadowpipe::comparator
