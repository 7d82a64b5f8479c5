// shadow-replay: executes a statement file on a primary and publishes it
// through the producer library. Logic: producer/src/replay.cpp.
#include "shadowpipe/cli.hpp"
#include "shadowpipe/replay.hpp"

#include <unistd.h>

#include <iostream>
#include <map>

int main(int argc, char** argv) {
  using namespace shadowpipe;
  CLI::App app{
      "shadow-replay: run a statement file on the primary and publish it for shadowing.\n"
      "Input: JSON lines {\"sql\", \"params\", \"key\", \"tx\"} (consecutive lines with one \"tx\" form a\n"
      "transaction) or a .sql file (BEGIN ... COMMIT groups a transaction). Lines that do not parse\n"
      "are reported with their line number and skipped; the exit status is then 1.",
      "shadow-replay"};
  replay::ReplayOptions options;
  cli::KafkaOptions kafka;
  double duration_s = 0;
  std::string format = "auto";
  app.add_option("input", options.input, "statement file (.sql, or JSON lines); - for standard input")->required();
  app.add_option("--format", format, "auto (by extension), jsonl or sql")
      ->check(CLI::IsMember({"auto", "jsonl", "sql"}))
      ->capture_default_str();
  app.add_option("--primary", options.primary_dsn, "primary PostgreSQL connection string")
      ->envname("PRIMARY_DSN")
      ->required();
  app.add_option("--topic", options.recorder.topic, "requests topic")->capture_default_str();
  app.add_option("--key", options.key,
                 "consistency key of units that name none (default: the file name for .sql, the request id for JSON lines)");
  app.add_option("--rate", options.rate, "units per second (0: as fast as the primary allows)")->capture_default_str();
  app.add_option("--concurrency", options.concurrency, "connections to the primary; a key always uses the same one")
      ->capture_default_str();
  app.add_option("--duration", duration_s, "stop after this many seconds (0: at the end of the input)")
      ->capture_default_str();
  app.add_option("--sample-rate", options.recorder.sampling.rate, "share of units published (writes always are)")
      ->capture_default_str();
  bool drop_rollbacks = false;
  app.add_flag("--no-rollbacks", drop_rollbacks, "do not publish rolled-back transactions");
  cli::add_kafka_options(app, kafka);
  return cli::run_main(app, argc, argv, [&] {
    options.format = format == "jsonl" ? replay::Format::jsonl
                   : format == "sql"   ? replay::Format::sql
                                       : replay::Format::automatic;
    options.duration = std::chrono::duration<double>(duration_s);
    options.progress = isatty(STDERR_FILENO) != 0;
    options.recorder.kafka = kafka.to_properties();
    options.recorder.source = "shadow-replay";
    options.recorder.publish_rollbacks = !drop_rollbacks;
    const auto report = replay::run(options, std::cerr);
    replay::print_report(report, std::cout);
    return report.bad_lines > 0 ? 1 : 0;
  });
}
