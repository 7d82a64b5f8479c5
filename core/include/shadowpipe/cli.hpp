// Command-line and environment configuration shared by every program, so a
// broker list, TLS or SASL setting is given the same way to all of them.
#pragma once

#include "shadowpipe/kafka.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace shadowpipe::cli {

struct KafkaOptions {
  std::string brokers = "127.0.0.1:19092";
  std::vector<std::string> properties;  // key=value, passed to librdkafka as is
  std::string properties_file;          // Java-style .properties file

  // bootstrap.servers, then the file, then -X options (later wins).
  kafka::Properties to_properties() const;
};

// --brokers (env SHADOWPIPE_BROKERS), -X key=value, --kafka-config FILE.
void add_kafka_options(CLI::App& app, KafkaOptions& options);

// Runs a program's body: prints a Failure or a usage error as
// "<program>: error: ..." and returns 2; otherwise returns the body's status.
// A crash prints where it happened (crash_report.hpp).
int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace shadowpipe::cli
