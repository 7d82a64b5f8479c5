#include "shadowctl/verdict.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

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

// Each offset once: a comparator that found a loss while running starts it
// after the last record it read, and a successor restarted from the
// committed offset (the oldest request then pending, perhaps earlier) finds
// the same loss again from there, under another id. Ids are
// lost:<topic>:<partition>:<first offset> (Kafka topic names have no ':'),
// the count is in write_units; a record whose id does not read that way
// counts as it is.
uint64_t requests_never_compared(const std::vector<GapNotice>& gaps) {
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> lost;  // topic:partition -> [from, to)
  uint64_t total = 0;
  for (const auto& gap : gaps) {
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
}  // namespace

Verdict judge(const Report& report, const VerdictOptions& options) {
  Verdict verdict;
  if (report.compared < options.min_requests) {
    verdict.reasons.push_back("only " + std::to_string(report.compared) + " requests were compared, fewer than " +
                              "--min-requests " + std::to_string(options.min_requests) +
                              ": let more traffic through the shadow before deciding");
  }
  // The rate is of what comparing found: the gaps fail the verdict below
  // whatever the rate.
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
        if (counts_in_findings(kind)) kinds += (kinds.empty() ? "" : ", ") + kind + " " + std::to_string(count);
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
  const uint64_t never_compared = requests_never_compared(report.comparison_gaps);
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
