// shadowctl — topics, report, verdict, reset. Options only; the work is in
// shadowpipe_shadowctl.
#include "shadowctl/report.hpp"
#include "shadowctl/reset.hpp"
#include "shadowctl/since.hpp"
#include "shadowctl/topics.hpp"
#include "shadowctl/verdict.hpp"
#include "shadowpipe/cli.hpp"
#include "shadowpipe/preflight.hpp"
#include "shadowpipe/result.hpp"

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>

namespace shadowctl = shadowpipe::shadowctl;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void add_topic_names(CLI::App& command, shadowctl::TopicNames& names) {
  command.add_option("--requests-topic", names.requests)->capture_default_str();
  command.add_option("--results-topic", names.results)->capture_default_str();
  command.add_option("--mismatches-topic", names.mismatches)->capture_default_str();
  command.add_option("--summary-topic", names.summary)->capture_default_str();
  command.add_option("--dlq-topic", names.dlq)->capture_default_str();
}

volatile std::sig_atomic_t stop_following = 0;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shadowctl: manage shadowpipe topics, read the report and the verdict, reset the shadow"};
  app.name("shadowctl");
  app.require_subcommand(1);
  // Shared options (--brokers, -X) may come after the command too:
  // `shadowctl verdict --brokers host:9092` as readily as before it.
  app.fallthrough();
  shadowpipe::cli::KafkaOptions kafka;
  shadowpipe::cli::add_kafka_options(app, kafka);

  auto* topics = app.add_subcommand("topics", "manage the pipeline's topics");
  auto* create = topics->add_subcommand("create", "create the topics with equal partition counts where it matters");
  topics->require_subcommand(1);
  shadowctl::TopicsOptions topic_options;
  add_topic_names(*create, topic_options.names);
  create->add_option("--partitions", topic_options.partitions, "partitions of requests, results and mismatches")
      ->capture_default_str()->check(CLI::PositiveNumber);
  create->add_option("--replication", topic_options.replication_factor)->capture_default_str()->check(CLI::PositiveNumber);
  create->add_option("--retention-ms", topic_options.retention_ms, "retention of requests and results")->capture_default_str();
  create->add_option("--mismatch-retention-ms", topic_options.mismatch_retention_ms,
                     "retention of mismatches, summaries and the DLQ")->capture_default_str();

  shadowctl::ReadOptions read_options;
  std::string since, format_name = "text", output;
  bool follow = false;
  int timeout_s = 60;
  auto add_read_options = [&](CLI::App* command) {
    add_topic_names(*command, read_options.names);
    command->add_option("--since", since, "from this time (90s, 15m, 2h, 1d, 2026-11-27T09:00:00Z); default: the beginning");
    command->add_option("--timeout", timeout_s, "seconds to read the topics to their end")->capture_default_str();
  };
  auto* report = app.add_subcommand("report", "per fingerprint: discrepancies, evidence, latency");
  add_read_options(report);
  report->add_option("--format", format_name, "text, json or html")->check(CLI::IsMember({"text", "json", "html"}))
      ->capture_default_str();
  report->add_option("-o,--output", output, "write to this file instead of standard output");
  report->add_flag("--follow", follow, "keep reading and print the report again as decisions arrive");

  auto* verdict = app.add_subcommand("verdict", "PASS (exit 0) or FAIL (exit 1) with reasons; 2 on usage or connection errors");
  add_read_options(verdict);
  shadowctl::VerdictOptions verdict_options;
  verdict->add_option("--min-requests", verdict_options.min_requests, "fewer compared requests fail")->capture_default_str();
  verdict->add_option("--max-mismatch-rate", verdict_options.max_mismatch_rate,
                      "discrepancies per compared request allowed (latency aside)")->capture_default_str();
  verdict->add_flag("--fail-on-type-change", verdict_options.fail_on_type_change,
                    "fail on every column whose type changed, not only where its rendered values differ");
  verdict->add_option("--max-latency-ratio", verdict_options.max_latency_ratio,
                      "a latency regression above this shadow/primary p95 ratio fails")->capture_default_str();
  verdict->add_option("--comparator-group", read_options.comparator_group,
                      "the comparators' consumer group: a partition it has not decided to the end fails")
      ->capture_default_str();

  auto* reset = app.add_subcommand("reset", "rebuild the shadow from the primary, migrate it, refuse it if it can reach outside, and start the executors after it");
  shadowctl::ResetOptions reset_options;
  int64_t snapshot_time_ms = 0;
  reset->add_option("--primary", reset_options.primary_dsn, "primary DSN to dump")->envname("PRIMARY_DSN");
  reset->add_option("--shadow", reset_options.shadow_dsn, "shadow DSN to rebuild")->envname("SHADOW_DSN");
  reset->add_option("--dump", reset_options.dump_file, "restore this pg_dump (custom format) instead of dumping the primary");
  reset->add_option("--snapshot-time", snapshot_time_ms, "with --dump: when it was taken, ms since the epoch");
  reset->add_option("--migration", reset_options.migrations, "SQL file applied to the shadow after the restore; repeatable");
  reset->add_option("--group", reset_options.group, "the executors' consumer group")->capture_default_str();
  reset->add_option("--requests-topic", reset_options.requests_topic)->capture_default_str();
  reset->add_option("--pg-bin", reset_options.pg_bin, "folder of pg_dump, pg_restore and psql (default: PATH)");
  reset->add_option(std::string(shadowpipe::preflight::kOverrideFlag), reset_options.allow_outside_reach,
                    "accept this object of the migrated shadow that can reach outside it (a foreign table, a trigger "
                    "calling pg_notify...), named exactly as the refusal lists it; repeatable. Without it reset "
                    "refuses such a shadow, as the executor does")
      ->allow_extra_args(false);
  reset->footer(
      "The dump is kept in a private directory under TMPDIR (0700, file 0600), removed on every exit, SIGINT and "
      "SIGTERM included. Passwords in the DSNs never reach a command line: pg_dump, pg_restore and psql get them "
      "in a private PGPASSFILE. Give DSNs that hold a password through PRIMARY_DSN and SHADOW_DSN: on shadowctl's "
      "own command line they would be visible in ps.");

  return shadowpipe::cli::run_main(app, argc, argv, [&]() -> int {
    const auto properties = kafka.to_properties();
    if (*create) {
      for (const auto& line : shadowctl::create_topics(properties, topic_options)) std::cout << line << '\n';
      return 0;
    }
    if (*reset) {
      if (snapshot_time_ms) reset_options.snapshot_time_ms = snapshot_time_ms;
      auto outcome = shadowctl::reset_shadow(properties, reset_options);
      for (const auto& step : outcome.steps) std::cout << step << '\n';
      std::cout << "snapshot time: " << outcome.snapshot_time_ms << " ms since the epoch\n";
      return 0;
    }
    if (!since.empty()) read_options.since_ms = shadowctl::parse_since(since, now_ms());
    read_options.timeout = std::chrono::seconds(timeout_s);
    if (*verdict) {
      auto result = shadowctl::judge(shadowctl::read_report(properties, read_options), verdict_options);
      std::cout << shadowctl::render(result);
      return result.pass ? 0 : 1;
    }
    const auto format = format_name == "json" ? shadowctl::Format::json
                        : format_name == "html" ? shadowctl::Format::html
                                                : shadowctl::Format::text;
    auto emit = [&](const shadowctl::Report& built) {
      const auto rendered = shadowctl::render(built, format);
      if (output.empty()) {
        std::cout << rendered << std::flush;
      } else {
        std::ofstream file(output, std::ios::trunc);
        if (!(file << rendered)) throw shadowpipe::Failure("cannot write the report to " + output);
      }
    };
    if (!follow) {
      emit(shadowctl::read_report(properties, read_options));
      return 0;
    }
    std::signal(SIGINT, [](int) { stop_following = 1; });
    std::signal(SIGTERM, [](int) { stop_following = 1; });
    shadowctl::follow_report(properties, read_options, [&](const shadowctl::Report& built) {
      if (output.empty() && format == shadowctl::Format::text) std::cout << "\033[H\033[2J";
      emit(built);
    }, [] { return stop_following != 0; });
    return 0;
  });
}
