#include "shadow_executor/plan.hpp"

#include <simdjson.h>

#include <algorithm>
#include <vector>

namespace shadowpipe::executor {

namespace {
void walk(simdjson::dom::object node, wire::PlanSummary& summary) {
  std::string_view type;
  if (node["Node Type"].get(type) == simdjson::SUCCESS) {
    if (std::find(summary.node_types.begin(), summary.node_types.end(), type) == summary.node_types.end()) {
      summary.node_types.emplace_back(type);
    }
    std::string_view relation;
    if (type == "Seq Scan" && node["Relation Name"].get(relation) == simdjson::SUCCESS &&
        std::find(summary.seq_scans.begin(), summary.seq_scans.end(), relation) == summary.seq_scans.end()) {
      summary.seq_scans.emplace_back(relation);
    }
  }
  simdjson::dom::array children;
  if (node["Plans"].get(children) == simdjson::SUCCESS) {
    for (auto child : children) {
      simdjson::dom::object object;
      if (child.get(object) == simdjson::SUCCESS) walk(object, summary);
    }
  }
}

double number_or_zero(simdjson::dom::object node, std::string_view field) {
  double value = 0;
  if (node[field].get(value) == simdjson::SUCCESS) return value;
  int64_t whole = 0;
  if (node[field].get(whole) == simdjson::SUCCESS) return static_cast<double>(whole);
  return 0;
}
}  // namespace

Result<wire::PlanSummary> summarize_plan(std::string_view explain_json) {
  simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (parser.parse(explain_json.data(), explain_json.size()).get(document) != simdjson::SUCCESS) {
    return Error{ErrorCode::malformed, "", "EXPLAIN output is not JSON"};
  }
  // EXPLAIN (FORMAT JSON) returns [ { "Plan": { ... } } ].
  simdjson::dom::array top;
  simdjson::dom::object plan;
  if (document.get(top) != simdjson::SUCCESS || top.size() == 0 ||
      top.at(0)["Plan"].get(plan) != simdjson::SUCCESS) {
    return Error{ErrorCode::malformed, "[0].Plan", "EXPLAIN output has no Plan object"};
  }
  wire::PlanSummary summary;
  walk(plan, summary);
  summary.total_cost = number_or_zero(plan, "Total Cost");
  summary.plan_rows = number_or_zero(plan, "Plan Rows");
  return summary;
}

PlanPolicy::PlanPolicy(int per_minute, double latency_factor)
    : per_minute_(std::max(per_minute, 0)),
      latency_factor_(latency_factor),
      tokens_(per_minute_),
      refilled_(Clock::now()) {}

bool PlanPolicy::take_token(Clock::time_point now) {
  const double elapsed_minutes = std::chrono::duration<double, std::ratio<60>>(now - refilled_).count();
  if (elapsed_minutes > 0) {
    tokens_ = std::min<double>(per_minute_, tokens_ + elapsed_minutes * per_minute_);
    refilled_ = now;
  }
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

bool PlanPolicy::should_capture(const std::string& fingerprint, int64_t latency_us, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (history_.size() >= kMaxFingerprints && !history_.contains(fingerprint)) history_.clear();
  History& history = history_[fingerprint];
  bool slow = false;
  auto& sorted = history.sorted;
  if (sorted.size() >= kMinSamplesForMedian) {
    const double median = static_cast<double>(sorted[sorted.size() / 2]);
    slow = static_cast<double>(latency_us) > latency_factor_ * std::max(median, 1.0);
  }
  history.recent.push_back(latency_us);
  sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), latency_us), latency_us);
  if (history.recent.size() > kWindow) {
    sorted.erase(std::lower_bound(sorted.begin(), sorted.end(), history.recent.front()));
    history.recent.pop_front();
  }
  if ((history.planned && !slow) || !take_token(now)) return false;
  history.planned = true;
  return true;
}

}  // namespace shadowpipe::executor
