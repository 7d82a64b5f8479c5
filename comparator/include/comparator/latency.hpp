// Per-fingerprint state of a comparator: the statement analysis (kept once per
// fingerprint, never per request), latency sketches of both sides, the counters
// of the current summary interval, and the latency-regression rule.
#pragma once

#include "comparator/classify.hpp"
#include "shadowpipe/sketch.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace shadowpipe::comparator {

struct FingerprintStats {
  bool analyzed = false;  // false while only shadow results (with a plan) were seen
  std::string normalized_sql;
  StatementTraits traits;
  // Since this instance started: what a regression is judged on.
  LatencySketch primary_latency;
  LatencySketch shadow_latency;
  // Since the last summary record.
  uint64_t compared_interval = 0;
  std::map<std::string, uint64_t> discrepancies_interval;
  std::optional<wire::PlanSummary> latest_plan;  // the shadow's, newest seen
  double reported_ratio = 0;  // ratio of the last latency_regression published, 0 if none
};

struct RegressionPolicy {
  uint64_t min_samples = 50;        // per side
  double ratio_factor = 3;          // how far above the baseline ratio
  double min_difference_us = 1000;  // shadow p95 - primary p95 must exceed this
  // The shadow's median must be this many times the primary's too: a plan
  // that turned slow moves the typical execution, while contention on a busy
  // shadow (lock waits, CPU) only stretches the tail. 0 turns the check off.
  double median_factor = 2;
  double regrow_factor = 1.5;       // publish again only when the ratio grew this much
  size_t min_fingerprints_for_median = 3;
};

struct Regression {
  std::string fingerprint;
  double ratio = 0;          // shadow p95 / primary p95
  double baseline = 1;       // median ratio across fingerprints, or 1 with too few of them
  size_t fingerprints_compared = 0;
  wire::LatencySummary primary;
  wire::LatencySummary shadow;
};

wire::LatencySummary summarize(const LatencySketch& sketch);

// Fingerprints whose shadow p95 is far above the primary's relative to the
// median ratio across fingerprints with enough samples. With fewer than
// min_fingerprints_for_median such fingerprints the median says nothing about
// "normal", so the baseline is 1 (shadow as fast as primary). Marks each
// returned fingerprint as reported, so it is published once (again only when
// its ratio grows by regrow_factor).
std::vector<Regression> find_regressions(std::map<std::string, FingerprintStats>& table,
                                         const RegressionPolicy& policy);

// "p50 1.2 ms, p95 3.4 ms, p99 5.6 ms (n=120)"
std::string describe(const wire::LatencySummary& latency);

}  // namespace shadowpipe::comparator
