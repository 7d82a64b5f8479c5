#include "comparator/decider.hpp"

#include "shadowpipe/statement.hpp"

#include <algorithm>
#include <cstdio>

namespace shadowpipe::comparator {

namespace {
std::string reported_tag(std::string_view kind, int32_t statement_index) {
  return std::string(kind) + "#" + std::to_string(statement_index);
}
}  // namespace

Result<void> Decider::register_fingerprints(std::vector<wire::Statement>& statements) {
  for (size_t i = 0; i < statements.size(); ++i) {
    auto& statement = statements[i];
    if (!statement.fingerprint.empty()) {
      auto known = fingerprints_.find(statement.fingerprint);
      if (known != fingerprints_.end() && known->second.analyzed) continue;
    }
    auto analysis = statement::analyze(statement.sql);
    if (!analysis) {
      Error error = analysis.error();
      error.field = "statements[" + std::to_string(i) + "].sql";
      return error;
    }
    if (statement.fingerprint.empty()) statement.fingerprint = analysis->fingerprint;
    auto& stats = fingerprints_[statement.fingerprint];
    if (!stats.analyzed) {
      stats.analyzed = true;
      stats.normalized_sql = std::move(analysis->normalized_sql);
      stats.traits = traits_of(*analysis);
    }
  }
  return {};
}

void Decider::note_plan(const std::string& fingerprint, wire::PlanSummary plan) {
  // Results may come before their requests: the entry is created here and
  // analyzed when the first request of the fingerprint arrives.
  fingerprints_[fingerprint].latest_plan = std::move(plan);
}

bool Decider::first_divergence(const std::string& key) {
  if (key.empty() || !diverged_keys_.insert(key).second) return false;
  diverged_order_.push_back(key);
  if (diverged_order_.size() > kDivergedKeysCapacity) {
    diverged_keys_.erase(diverged_order_.front());
    diverged_order_.pop_front();
  }
  return true;
}

Decision Decider::publish_findings(const std::string& request_id, const RequestSide& request,
                                   const ResultSide* result, std::vector<Finding> findings) {
  Decision decision;
  decision.tally.request = true;
  const auto previously = reported_.find(request_id);
  for (auto& finding : findings) {
    const size_t index = finding.statement_index >= 0 ? static_cast<size_t>(finding.statement_index) : 0;
    const std::string fingerprint = index < request.statements.size() ? request.statements[index].fingerprint : "";
    // A notice describes a fingerprint, so it is published (and counted) once.
    const bool notice = wire::is_notice_kind(finding.kind);
    if (notice && !notices_published_.insert(fingerprint + '\x1f' + finding.kind + '\x1f' + finding.detail).second) continue;
    decision.tally.discrepancies.emplace_back(fingerprint, finding.kind);
    if (previously != reported_.end() && previously->second.contains(reported_tag(finding.kind, finding.statement_index))) {
      ++decision.suppressed;
      continue;
    }
    wire::Mismatch record;
    record.kind = finding.kind;
    record.request_id = request_id;
    record.key = request.key;
    record.ts_us = request.ts_us;
    if (index < request.statements.size()) {
      const auto& primary = request.statements[index];
      record.fingerprint = primary.fingerprint;
      if (auto it = fingerprints_.find(primary.fingerprint); it != fingerprints_.end()) {
        record.normalized_sql = it->second.normalized_sql;
      }
      if (finding.statement_index >= 0) {
        record.primary = primary.result;
        if (result && index < result->statements.size()) record.shadow = result->statements[index].result;
        if (index < request.params.size()) record.params = request.params[index];
      }
    }
    record.statement_index = finding.statement_index;
    record.columns_differ = std::move(finding.columns_differ);
    record.detail = std::move(finding.detail);
    record.first_divergence_on_key = !notice && first_divergence(request.key);
    decision.publish.push_back(std::move(record));
  }
  return decision;
}

Decision Decider::decide(const Joined& joined) {
  const auto& primary = joined.request.statements;
  const auto& shadow = joined.result.statements;
  std::vector<std::string> compared;
  for (size_t i = 0; i < std::min(primary.size(), shadow.size()); ++i) {
    auto it = fingerprints_.find(primary[i].fingerprint);
    if (it == fingerprints_.end()) continue;
    compared.push_back(primary[i].fingerprint);
    // Latency of a failed statement measures the failure, not the plan.
    if (primary[i].result.status == wire::Status::ok && shadow[i].result.status == wire::Status::ok) {
      it->second.primary_latency.add(static_cast<double>(primary[i].result.latency_us));
      it->second.shadow_latency.add(static_cast<double>(shadow[i].result.latency_us));
    }
  }
  const TraitsLookup traits = [this](const std::string& fingerprint) -> const StatementTraits* {
    auto it = fingerprints_.find(fingerprint);
    return it == fingerprints_.end() ? nullptr : &it->second.traits;
  };
  Decision decision =
      publish_findings(joined.request_id, joined.request, &joined.result, classify_request(primary, shadow, traits));
  decision.tally.fingerprints = std::move(compared);
  return decision;
}

Decision Decider::decide_missing(const Missing& missing) {
  std::string detail = "the executor passed this request (offset " + std::to_string(missing.request.offset) +
                       ") without a shadow result: its results stand at or beyond offset " +
                       std::to_string(missing.passed_at) + " (request of " +
                       std::to_string(missing.request.statements.size()) + " statements)";
  return publish_findings(missing.request_id, missing.request, nullptr,
                          {Finding{"shadow_missing", -1, {}, std::move(detail)}});
}

// Not counted as compared (the tally stays empty): the verdict counts it
// among the requests never compared, one a record.
Decision Decider::decide_never_compared(const Missing& missing, std::string_view results_topic, int32_t partition) {
  wire::Mismatch record;
  record.kind = "comparison_gap";
  record.request_id = missing.request_id;
  record.key = missing.request.key;
  record.ts_us = missing.request.ts_us;
  record.statement_index = -1;
  record.first_divergence_on_key = false;  // nothing is known to differ on its key
  record.primary = wire::StatementResult{};
  record.primary->rows = 1;  // requests never compared
  const LostOffsets lost = missing.results_lost.value_or(LostOffsets{});
  record.detail = "request at offset " + std::to_string(missing.request.offset) + " never compared: its shadow " +
                  "result was not read before retention deleted results within offsets " + std::to_string(lost.from) + ".." +
                  std::to_string(lost.to - 1) + " of " + std::string(results_topic) + "[" +
                  std::to_string(partition) + "] (the executor moved past it; the deleted records cannot " +
                  "tell whether its result was among them) — keep the comparators within the results topic's " +
                  "retention (retention.ms, retention.bytes) and compare again";
  return publish_once(std::move(record));
}

Decision Decider::decide_gap(const wire::Gap& gap, std::string_view topic, int64_t offset) {
  wire::Mismatch record;
  record.kind = "shadow_gap";
  // Deterministic, so a replayed gap is recognized as published.
  record.request_id = "gap:" + std::string(topic) + ":" + std::to_string(gap.partition) + ":" + std::to_string(offset);
  record.key = record.request_id;
  record.ts_us = gap.ts_us;
  record.statement_index = -1;
  record.first_divergence_on_key = true;
  // The primary applied these write units and the shadow never did.
  record.primary = wire::StatementResult{};
  record.primary->rows = static_cast<int64_t>(gap.write_units);
  record.detail = "shadow no longer follows the primary: " + std::to_string(gap.write_units) +
                  " write units never applied (" + gap.reason + " on partition " + std::to_string(gap.partition);
  if (gap.from_offset >= 0) {
    record.detail += ", offsets " + std::to_string(gap.from_offset) + ".." + std::to_string(gap.to_offset - 1);
  }
  record.detail += ", announced by " + gap.source + ") — reset the shadow";
  if (!gap.detail.empty()) record.detail += "; " + gap.detail;
  return publish_once(std::move(record));
}

Decision Decider::publish_once(wire::Mismatch record) const {
  Decision decision;
  if (auto it = reported_.find(record.request_id);
      it != reported_.end() && it->second.contains(reported_tag(record.kind, record.statement_index))) {
    decision.suppressed = 1;
  } else {
    decision.publish.push_back(std::move(record));
  }
  return decision;
}

Decision Decider::decide_lost_requests(std::string_view topic, int32_t partition, int64_t from, int64_t to,
                                       int64_t wall_us) {
  wire::Mismatch record;
  record.kind = "comparison_gap";
  // Deterministic, so the same loss found again after a restart is recognized.
  record.request_id = "lost:" + std::string(topic) + ":" + std::to_string(partition) + ":" + std::to_string(from);
  record.key = record.request_id;
  record.ts_us = wall_us;
  record.statement_index = -1;
  record.first_divergence_on_key = true;
  // How many requests (records of the requests topic) were never compared.
  record.primary = wire::StatementResult{};
  record.primary->rows = to - from;
  record.detail = std::to_string(to - from) + " requests never compared: retention deleted offsets " +
                  std::to_string(from) + ".." + std::to_string(to - 1) + " of " + std::string(topic) + "[" +
                  std::to_string(partition) + "] before a comparator decided them — keep the comparators within the " +
                  "topic's retention (retention.ms, retention.bytes) and compare again";
  return publish_once(std::move(record));
}

void Decider::count(std::vector<Tally> tallies) {
  for (auto& tally : tallies) {
    if (tally.request) ++requests_counted_;
    for (auto& fingerprint : tally.fingerprints) {
      if (auto it = fingerprints_.find(fingerprint); it != fingerprints_.end()) ++it->second.compared_interval;
    }
    for (auto& [fingerprint, kind] : tally.discrepancies) {
      ++request_kinds_counted_[kind];
      if (auto it = fingerprints_.find(fingerprint); it != fingerprints_.end()) ++it->second.discrepancies_interval[kind];
    }
  }
}

std::vector<wire::Summary> Decider::take_summaries(int64_t wall_us, std::vector<wire::Summary::Stall> stalled) {
  std::vector<wire::Summary> out;
  if (requests_counted_ > 0 || !request_kinds_counted_.empty() || !stalled.empty()) {
    wire::Summary all_requests;
    all_requests.ts_us = wall_us;
    all_requests.comparator = options_.comparator_id;
    all_requests.compared = requests_counted_;  // fingerprint stays empty: the whole stream
    all_requests.discrepancies = std::move(request_kinds_counted_);
    all_requests.stalled = std::move(stalled);
    out.push_back(std::move(all_requests));
    requests_counted_ = 0;
    request_kinds_counted_.clear();
  }
  for (auto& [fingerprint, stats] : fingerprints_) {
    if (stats.compared_interval == 0 && stats.discrepancies_interval.empty()) continue;
    wire::Summary summary;
    summary.ts_us = wall_us;
    summary.comparator = options_.comparator_id;
    summary.fingerprint = fingerprint;
    summary.normalized_sql = stats.normalized_sql;
    summary.compared = stats.compared_interval;
    summary.discrepancies = std::move(stats.discrepancies_interval);
    // Counts are this interval's; percentiles are since this instance
    // started, so the newest summary describes the whole distribution
    // (percentiles of separate intervals cannot be added up).
    summary.primary_latency = summarize(stats.primary_latency);
    summary.shadow_latency = summarize(stats.shadow_latency);
    out.push_back(std::move(summary));
    stats.compared_interval = 0;
    stats.discrepancies_interval.clear();
  }
  return out;
}

std::vector<wire::Mismatch> Decider::regressions(int64_t wall_us) {
  std::vector<wire::Mismatch> out;
  for (auto& regression : find_regressions(fingerprints_, options_.regression)) {
    auto& stats = fingerprints_.at(regression.fingerprint);
    wire::Mismatch record;
    record.kind = "latency_regression";
    record.request_id = "latency_regression:" + regression.fingerprint;
    record.key = regression.fingerprint;  // not a request: the fingerprint is its consistency key
    record.ts_us = wall_us;
    record.fingerprint = regression.fingerprint;
    record.normalized_sql = stats.normalized_sql;
    record.latency_ratio = regression.ratio;
    record.plan = stats.latest_plan;
    record.primary = wire::StatementResult{};
    record.primary->latency_us = static_cast<int64_t>(regression.primary.p95_us);
    record.shadow = wire::StatementResult{};
    record.shadow->latency_us = static_cast<int64_t>(regression.shadow.p95_us);
    char ratio_text[96];
    std::snprintf(ratio_text, sizeof ratio_text, "p95 ratio %.2f vs baseline %.2f over %zu fingerprints",
                  regression.ratio, regression.baseline, regression.fingerprints_compared);
    record.detail = std::string(ratio_text) + "; primary " + describe(regression.primary) + "; shadow " +
                    describe(regression.shadow);
    out.push_back(std::move(record));
  }
  return out;
}

void Decider::add_reported(const wire::Mismatch& record, int64_t wall_us) {
  if (reported_.try_emplace(record.request_id).second) reported_order_.emplace_back(wall_us, record.request_id);
  reported_[record.request_id].insert(reported_tag(record.kind, record.statement_index));
  if (!record.key.empty() && diverged_keys_.insert(record.key).second) diverged_order_.push_back(record.key);
}

void Decider::forget_reported_before(int64_t wall_us) {
  while (!reported_order_.empty() && reported_order_.front().first < wall_us) {
    reported_.erase(reported_order_.front().second);
    reported_order_.pop_front();
  }
}

}  // namespace shadowpipe::comparator
