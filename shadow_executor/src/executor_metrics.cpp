#include "shadow_executor/executor_metrics.hpp"

namespace shadowpipe::executor {

namespace {
using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}
}  // namespace

ExecutorMetrics::ExecutorMetrics(prometheus::Registry& registry)
    : units_family(BuildCounter()
                       .Name("shadowpipe_executor_units_total")
                       .Help("Request units consumed, by outcome")
                       .Register(registry)),
      units_applied(units_family.Add({{"outcome", "applied"}})),
      units_already_applied(units_family.Add({{"outcome", "already_applied"}})),
      statements_family(BuildCounter()
                            .Name("shadowpipe_executor_statements_total")
                            .Help("Statements reported, by shadow status")
                            .Register(registry)),
      statements_ok(statements_family.Add({{"status", "ok"}})),
      statements_error(statements_family.Add({{"status", "error"}})),
      statements_refused(statements_family.Add({{"status", "refused"}})),
      errors_family(BuildCounter()
                        .Name("shadowpipe_executor_statement_errors_total")
                        .Help("Statements that failed on the shadow, by SQLSTATE")
                        .Register(registry)),
      skipped_family(BuildCounter()
                         .Name("shadowpipe_executor_statements_not_executed_total")
                         .Help("Statements the executor did not send to the shadow, by reason")
                         .Register(registry)),
      refused_by_guard(skipped_family.Add({{"reason", "reaches_outside"}})),
      writes_skipped(skipped_family.Add({{"reason", "writes_skipped"}})),
      transaction_control_skipped(skipped_family.Add({{"reason", "transaction_control"}})),
      unparsable(skipped_family.Add({{"reason", "unparsable"}})),
      not_replayable(skipped_family.Add({{"reason", "not_replayable"}})),
      dead_letters(BuildCounter()
                       .Name("shadowpipe_executor_dead_letters_total")
                       .Help("Request records sent to the dead-letter topic")
                       .Register(registry)
                       .Add({})),
      reconnects(BuildCounter()
                     .Name("shadowpipe_executor_reconnects_total")
                     .Help("Shadow connections re-established after a drop")
                     .Register(registry)
                     .Add({})),
      bookkeeping_as_text(BuildCounter()
                              .Name("shadowpipe_executor_bookkeeping_as_text_total")
                              .Help("Shadow connections that could not keep the executor's prepared bookkeeping "
                                    "statements (PREPARE refused, or lost three times: a transaction-mode pooler?) "
                                    "and send their texts with every batch")
                              .Register(registry)
                              .Add({})),
      positions_went_back(BuildCounter()
                              .Name("shadowpipe_executor_positions_went_back_total")
                              .Help("Reconnects that found the shadow's position below what was applied (lost commits), "
                                    "so the partition was applied again from there")
                              .Register(registry)
                              .Add({})),
      plans_captured(BuildCounter()
                         .Name("shadowpipe_executor_plans_captured_total")
                         .Help("EXPLAIN plans captured and attached to results")
                         .Register(registry)
                         .Add({})),
      results_republished(BuildCounter()
                              .Name("shadowpipe_executor_records_republished_total")
                              .Help("Logged results re-published after an assignment or reconnect")
                              .Register(registry)
                              .Add({})),
      delivery_failures(BuildCounter()
                            .Name("shadowpipe_executor_delivery_failures_total")
                            .Help("Result or dead-letter records Kafka failed to deliver (retried)")
                            .Register(registry)
                            .Add({})),
      gap_units_family(BuildCounter()
                           .Name("shadowpipe_executor_gap_units_total")
                           .Help("Request units the shadow never applied, announced as gap records, by reason")
                           .Register(registry)),
      retention_gap_units(gap_units_family.Add({{"reason", "retention"}})),
      gap_records_passed(BuildCounter()
                             .Name("shadowpipe_executor_gap_records_passed_total")
                             .Help("Gap records found on the requests topic (announced by a recorder), passed over")
                             .Register(registry)
                             .Add({})),
      lag_family(BuildGauge()
                     .Name("shadowpipe_executor_lag_records")
                     .Help("Records of the partition not yet executed (high watermark - next offset)")
                     .Register(registry)),
      execution_seconds(BuildHistogram()
                            .Name("shadowpipe_executor_statement_seconds")
                            .Help("Execution latency of statements on the shadow")
                            .Register(registry)
                            .Add({}, latency_buckets())),
      batch_units(BuildHistogram()
                      .Name("shadowpipe_executor_batch_units")
                      .Help("Units per shadow transaction (group commit)")
                      .Register(registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128})),
      worker_seconds_family(BuildCounter()
                                .Name("shadowpipe_executor_worker_seconds_total")
                                .Help("Partition workers' wall time, summed over the workers, by what they did")
                                .Register(registry)),
      worker_waiting_for_units(worker_seconds_family.Add({{"state", "waiting_for_units"}})),
      worker_reading_units(worker_seconds_family.Add({{"state", "reading_units"}})),
      worker_on_the_shadow(worker_seconds_family.Add({{"state", "on_the_shadow"}})),
      worker_publishing(worker_seconds_family.Add({{"state", "publishing"}})) {}

prometheus::Counter& ExecutorMetrics::statement_error(const std::string& sqlstate) {
  return errors_family.Add({{"sqlstate", sqlstate.empty() ? "none" : sqlstate}});
}

prometheus::Gauge& ExecutorMetrics::lag(int32_t partition) {
  return lag_family.Add({{"partition", std::to_string(partition)}});
}

void ExecutorMetrics::count(const wire::StatementResult& result, const StatementNote& note) {
  switch (result.status) {
    case wire::Status::ok: statements_ok.Increment(); break;
    case wire::Status::error:
      statements_error.Increment();
      statement_error(result.sqlstate).Increment();
      break;
    case wire::Status::refused: statements_refused.Increment(); break;
  }
  switch (note.disposition) {
    case Disposition::executed:
      execution_seconds.Observe(static_cast<double>(result.latency_us) / 1e6);
      break;
    case Disposition::refused_by_guard: refused_by_guard.Increment(); break;
    case Disposition::writes_skipped: writes_skipped.Increment(); break;
    case Disposition::transaction_control: transaction_control_skipped.Increment(); break;
    case Disposition::unparsable: unparsable.Increment(); break;
    case Disposition::not_replayable: not_replayable.Increment(); break;
    case Disposition::not_reached: break;
  }
}

}  // namespace shadowpipe::executor
