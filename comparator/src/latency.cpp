#include "comparator/latency.hpp"

#include <algorithm>
#include <cstdio>

namespace shadowpipe::comparator {

wire::LatencySummary summarize(const LatencySketch& sketch) {
  wire::LatencySummary summary;
  summary.count = sketch.count();
  if (summary.count == 0) return summary;
  summary.p50_us = sketch.quantile(0.50);
  summary.p95_us = sketch.quantile(0.95);
  summary.p99_us = sketch.quantile(0.99);
  summary.max_us = sketch.max();
  return summary;
}

namespace {
// A p95 of zero (sub-microsecond) would make every ratio infinite.
constexpr double kLatencyFloorUs = 1.0;

double ratio_of(const FingerprintStats& stats) {
  return std::max(stats.shadow_latency.quantile(0.95), kLatencyFloorUs) /
         std::max(stats.primary_latency.quantile(0.95), kLatencyFloorUs);
}
}  // namespace

std::vector<Regression> find_regressions(std::map<std::string, FingerprintStats>& table,
                                         const RegressionPolicy& policy) {
  std::vector<std::pair<FingerprintStats*, const std::string*>> qualifying;
  std::vector<double> ratios;
  for (auto& [fingerprint, stats] : table) {
    if (stats.primary_latency.count() >= policy.min_samples && stats.shadow_latency.count() >= policy.min_samples) {
      qualifying.emplace_back(&stats, &fingerprint);
      ratios.push_back(ratio_of(stats));
    }
  }
  std::vector<Regression> found;
  if (qualifying.empty()) return found;
  double baseline = 1;
  if (ratios.size() >= policy.min_fingerprints_for_median) {
    std::vector<double> sorted = ratios;
    std::sort(sorted.begin(), sorted.end());
    const size_t mid = sorted.size() / 2;
    baseline = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }
  for (size_t i = 0; i < qualifying.size(); ++i) {
    auto& stats = *qualifying[i].first;
    const double ratio = ratios[i];
    const double difference = stats.shadow_latency.quantile(0.95) - stats.primary_latency.quantile(0.95);
    if (ratio <= policy.ratio_factor * baseline || difference <= policy.min_difference_us) continue;
    const double median_ratio = std::max(stats.shadow_latency.quantile(0.5), kLatencyFloorUs) /
                                std::max(stats.primary_latency.quantile(0.5), kLatencyFloorUs);
    if (policy.median_factor > 0 && median_ratio < policy.median_factor) continue;
    if (stats.reported_ratio > 0 && ratio <= stats.reported_ratio * policy.regrow_factor) continue;
    stats.reported_ratio = ratio;
    found.push_back(Regression{*qualifying[i].second, ratio, baseline, qualifying.size(),
                               summarize(stats.primary_latency), summarize(stats.shadow_latency)});
  }
  return found;
}

std::string describe(const wire::LatencySummary& latency) {
  char text[160];
  std::snprintf(text, sizeof text, "p50 %.3f ms, p95 %.3f ms, p99 %.3f ms (n=%llu)", latency.p50_us / 1000.0,
                latency.p95_us / 1000.0, latency.p99_us / 1000.0, static_cast<unsigned long long>(latency.count));
  return text;
}

}  // namespace shadowpipe::comparator
