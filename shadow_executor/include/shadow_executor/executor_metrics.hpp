// The executor's Prometheus metrics (served on /metrics by metrics::Endpoint).
#pragma once

#include "shadow_executor/statement_policy.hpp"

#include "shadowpipe/wire.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <string>

namespace shadowpipe::executor {

struct ExecutorMetrics {
  explicit ExecutorMetrics(prometheus::Registry& registry);

  prometheus::Counter& statement_error(const std::string& sqlstate);
  prometheus::Gauge& lag(int32_t partition);
  // Counts one statement's outcome: its status, and why it was not executed.
  void count(const wire::StatementResult& result, const StatementNote& note);

  prometheus::Family<prometheus::Counter>& units_family;
  prometheus::Counter& units_applied;
  prometheus::Counter& units_already_applied;
  prometheus::Family<prometheus::Counter>& statements_family;
  prometheus::Counter& statements_ok;
  prometheus::Counter& statements_error;
  prometheus::Counter& statements_refused;
  prometheus::Family<prometheus::Counter>& errors_family;
  prometheus::Family<prometheus::Counter>& skipped_family;
  prometheus::Counter& refused_by_guard;
  prometheus::Counter& writes_skipped;
  prometheus::Counter& transaction_control_skipped;
  prometheus::Counter& unparsable;
  prometheus::Counter& not_replayable;
  prometheus::Counter& dead_letters;
  prometheus::Counter& reconnects;
  prometheus::Counter& bookkeeping_as_text;  // connections that send the bookkeeping's texts, not prepared
  prometheus::Counter& positions_went_back;
  prometheus::Counter& plans_captured;
  prometheus::Counter& results_republished;
  prometheus::Counter& delivery_failures;
  prometheus::Family<prometheus::Counter>& gap_units_family;
  prometheus::Counter& retention_gap_units;  // requests retention deleted before they were applied
  prometheus::Counter& gap_records_passed;   // gap records a recorder put on the requests topic
  prometheus::Family<prometheus::Gauge>& lag_family;
  prometheus::Histogram& execution_seconds;
  prometheus::Histogram& batch_units;
  // Where the partition workers' wall time goes, summed over the workers:
  // waiting for units (their queue empty), reading units (decode, guard,
  // batch assembly), on the shadow (run_batch: statements, bookkeeping,
  // COMMIT, and any lock waits among them), and after the commit (results
  // counted and handed to the producer, position advanced).
  prometheus::Family<prometheus::Counter>& worker_seconds_family;
  prometheus::Counter& worker_waiting_for_units;
  prometheus::Counter& worker_reading_units;
  prometheus::Counter& worker_on_the_shadow;
  prometheus::Counter& worker_publishing;
};

}  // namespace shadowpipe::executor
