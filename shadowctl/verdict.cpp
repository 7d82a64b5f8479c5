#include "shadowctl/verdict.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace shadowpipe::shadowctl {

namespace {
std::string fixed(double value, const char* format) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string format_time(int64_t us) {
  const std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

// Requests never compared, listed one by one in the verdict up to this many
// (results lost to retention leave a record a request).
constexpr size_t kGapDetailsShown = 10;

}  // namespace

Verdict judge(const Report& report, const VerdictOptions& options) {
  Verdict verdict;
  if (report.compared < options.min_requests) {
    verdict.reasons.push_back("only " + std::to_string(report.compared) + " requests were compared, fewer than " +
                              "--min-requests " + std::to_string(options.min_requests) +
                              ": let more traffic through the shadow before deciding");
  }
  // The rate is of what comparing found: the gaps (listed apart) fail the
  // verdict below whatever the rate.
  const uint64_t discrepancies = report.discrepancies(false);
  const double rate = report.compared ? static_cast<double>(discrepancies) / static_cast<double>(report.compared)
                                      : (discrepancies ? 1.0 : 0.0);
  if (rate > options.max_mismatch_rate) {
    verdict.reasons.push_back(std::to_string(discrepancies) + " discrepancies in " + std::to_string(report.compared) +
                              " requests (rate " + fixed(rate, "%.5f") + " > --max-mismatch-rate " +
                              fixed(options.max_mismatch_rate, "%.5f") + ")");
    for (const auto& fingerprint : report.fingerprints) {
      std::string kinds;
      for (const auto& [kind, count] : fingerprint.discrepancies) {
        if (kind != "latency_regression") kinds += (kinds.empty() ? "" : ", ") + kind + " " + std::to_string(count);
      }
      if (kinds.empty()) continue;
      std::string what = "  " + fingerprint.fingerprint + ": " + kinds;
      if (!fingerprint.sqlstates.empty()) what += "; SQLSTATE " + *fingerprint.sqlstates.begin();
      if (!fingerprint.columns_differ.empty()) what += "; columns " + *fingerprint.columns_differ.begin();
      what += " — " + fingerprint.normalized_sql.substr(0, 80);
      verdict.reasons.push_back(what);
    }
  }
  if (options.fail_on_type_change) {
    for (const auto& fingerprint : report.fingerprints) {
      const auto changed = fingerprint.notices.find("type_changed");
      if (changed == fingerprint.notices.end()) continue;
      for (const auto& detail : changed->second) {
        verdict.reasons.push_back("--fail-on-type-change: " + fingerprint.fingerprint + ": " + detail + " — " +
                                  fingerprint.normalized_sql.substr(0, 80));
      }
    }
  }
  for (const auto& fingerprint : report.fingerprints) {
    if (!fingerprint.latency_regression) continue;
    const double ratio = fingerprint.latency_regression->latency_ratio;
    if (ratio > options.max_latency_ratio) {
      std::string what = "latency regression on " + fingerprint.fingerprint + ": shadow p95 " + fixed(ratio, "%.1f") +
                         "x the primary's (> --max-latency-ratio " + fixed(options.max_latency_ratio, "%.1f") + ")";
      if (fingerprint.latency_regression->plan && !fingerprint.latency_regression->plan->seq_scans.empty()) {
        what += "; the shadow plan scans " + fingerprint.latency_regression->plan->seq_scans.front() + " sequentially";
      }
      what += " — " + fingerprint.normalized_sql.substr(0, 80);
      verdict.reasons.push_back(what);
    }
  }
  uint64_t lost_write_units = 0;
  for (const auto& gap : report.gaps) lost_write_units += gap.write_units;
  if (!report.gaps.empty()) {
    verdict.reasons.push_back("shadow no longer follows the primary: " + std::to_string(lost_write_units) +
                              " write units never applied — reset the shadow (shadowctl reset)");
    for (const auto& gap : report.gaps) verdict.reasons.push_back("  " + gap.detail);
  }
  const uint64_t never_compared = report.requests_never_compared();
  if (!report.comparison_gaps.empty()) {
    verdict.reasons.push_back(std::to_string(never_compared) +
                              " requests never compared: retention deleted them, or their shadow results, before a "
                              "comparator decided them");
    // One record a request when results were lost: a few say where.
    const size_t shown = std::min(report.comparison_gaps.size(), kGapDetailsShown);
    for (size_t i = 0; i < shown; ++i) verdict.reasons.push_back("  " + report.comparison_gaps[i].detail);
    if (report.comparison_gaps.size() > shown) {
      verdict.reasons.push_back("  ... and " + std::to_string(report.comparison_gaps.size() - shown) +
                                " more (shadowctl report --format json lists every one)");
    }
  }
  if (!report.progress_unknown.empty()) {
    verdict.reasons.push_back("cannot tell whether every request is decided: " + report.progress_unknown);
  }
  for (const auto& partition : report.partitions) {
    if (partition.undecided() == 0) continue;
    std::string what = "partition " + std::to_string(partition.partition) + ": " +
                       std::to_string(partition.undecided()) + " requests not decided yet (comparators at offset " +
                       std::to_string(partition.decided) + " of " + std::to_string(partition.end) + ")";
    if (partition.stall) {
      what += "; stalled since " + format_time(partition.stall->since_us) + ": no shadow results for " +
              std::to_string(partition.stall->undecided) + " waiting requests — is its executor running?";
    } else {
      what += "; wait for the comparators to catch up";
    }
    verdict.reasons.push_back(what);
  }
  verdict.pass = verdict.reasons.empty();
  if (verdict.pass) {
    verdict.reasons.push_back(std::to_string(report.compared) + " requests compared across " +
                              std::to_string(report.fingerprints.size()) + " fingerprints; " +
                              std::to_string(discrepancies) + " discrepancies; no latency regression above " +
                              fixed(options.max_latency_ratio, "%.1f") + "x");
  }
  return verdict;
}

std::string render(const Verdict& verdict) {
  std::string out = verdict.pass ? "PASS\n" : "FAIL\n";
  for (const auto& reason : verdict.reasons) out += "  " + reason + "\n";
  return out;
}

}  // namespace shadowpipe::shadowctl
