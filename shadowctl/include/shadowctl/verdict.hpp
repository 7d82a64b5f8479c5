// `shadowctl verdict`: PASS or FAIL with reasons, for a deploy pipeline to
// gate a migration on. Exit 0 PASS, 1 FAIL, 2 usage or connection error.
#pragma once

#include "shadowctl/report.hpp"

#include <string>
#include <vector>

namespace shadowpipe::shadowctl {

struct VerdictOptions {
  uint64_t min_requests = 1000;    // fewer compared requests prove nothing
  double max_mismatch_rate = 0.0;  // discrepancies (latency aside) per compared request
  double max_latency_ratio = 3.0;  // a latency regression above this fails
  // A column whose type changed fails the verdict only where its rendered
  // values differ (then a value or representation discrepancy is counted);
  // with this set, every type change fails it.
  bool fail_on_type_change = false;
};

struct Verdict {
  bool pass = false;
  std::vector<std::string> reasons;  // why it failed, or what passed
};

Verdict judge(const Report& report, const VerdictOptions& options);
std::string render(const Verdict& verdict);

}  // namespace shadowpipe::shadowctl
