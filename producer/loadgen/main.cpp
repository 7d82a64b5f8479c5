// shop-loadgen: drives the demo shop's workload on the primary and records it
// through the producer library. Logic: producer/src/shop_loadgen.cpp.
#include "shadowpipe/cli.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/shop_loadgen.hpp"

#include <unistd.h>

#include <iostream>

int main(int argc, char** argv) {
  using namespace shadowpipe;
  CLI::App app{"shop-loadgen: the demo shop workload, recorded for shadowing", "shop-loadgen"};
  shop::LoadgenOptions options;
  cli::KafkaOptions kafka;
  double duration_s = 60;
  bool no_shadow = false;
  std::string metrics_port;
  app.add_option("--primary", options.primary_dsn, "primary PostgreSQL connection string")
      ->envname("PRIMARY_DSN")
      ->required();
  app.add_option("--rate", options.rate, "units of work per second over all workers (0: full speed)")
      ->capture_default_str();
  app.add_option("--concurrency", options.concurrency, "workers, one connection each")->capture_default_str();
  app.add_option("--duration", duration_s, "seconds to run")->capture_default_str();
  app.add_option("--seed", options.seed, "random seed (0: random)");
  app.add_option("--long-email-share", options.long_email_share,
                 "share of signups with an e-mail address longer than 64 characters")
      ->capture_default_str();
  app.add_flag("--no-shadow", no_shadow, "run the load without recording it (the overhead baseline)");
  app.add_option("--topic", options.recorder.topic, "requests topic")->capture_default_str();
  app.add_option("--sample-rate", options.recorder.sampling.rate, "share of units published (writes always are)")
      ->capture_default_str();
  app.add_option("--create-topic", options.create_topic_partitions,
                 "create the requests topic with this many partitions if it is missing");
  app.add_option("--metrics-port", metrics_port, "serve the recorder's Prometheus /metrics on this port");
  cli::add_kafka_options(app, kafka);
  return cli::run_main(app, argc, argv, [&] {
    options.duration = std::chrono::duration<double>(duration_s);
    options.shadowing = !no_shadow;
    options.progress = isatty(STDERR_FILENO) != 0;
    options.recorder.kafka = kafka.to_properties();
    options.recorder.source = "shop-loadgen";
    options.recorder.metrics_bind = metrics::bind_address(metrics_port);
    const auto report = shop::run(options);
    shop::print_report(report, options.shadowing, std::cout);
    return 0;
  });
}
