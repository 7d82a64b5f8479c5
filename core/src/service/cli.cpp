#include "shadowpipe/cli.hpp"

#include "shadowpipe/crash_report.hpp"
#include "shadowpipe/result.hpp"

#include <fstream>
#include <iostream>

namespace shadowpipe::cli {

namespace {
std::string trim(std::string text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

std::pair<std::string, std::string> split_property(const std::string& entry, const std::string& origin) {
  const auto eq = entry.find('=');
  if (eq == std::string::npos || eq == 0) {
    // Only what looks like the key: the rest may be a secret (sasl.password:...).
    const auto key_end = entry.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    throw Failure("a Kafka property from " + origin + " is not key=value: the entry starting with '" +
                  entry.substr(0, key_end) + "' (the rest is not shown)");
  }
  return {trim(entry.substr(0, eq)), trim(entry.substr(eq + 1))};
}
}  // namespace

kafka::Properties KafkaOptions::to_properties() const {
  kafka::Properties out;
  out.emplace_back("bootstrap.servers", brokers);
  if (!properties_file.empty()) {
    std::ifstream in(properties_file);
    if (!in) throw Failure("cannot read Kafka properties file " + properties_file + ": check the path");
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      line = trim(line);
      if (line.empty() || line[0] == '#' || line[0] == '!') continue;
      out.push_back(split_property(line, properties_file + ":" + std::to_string(number)));
    }
  }
  for (const auto& entry : properties) out.push_back(split_property(entry, "-X"));
  return out;
}

void add_kafka_options(CLI::App& app, KafkaOptions& options) {
  app.add_option("--brokers", options.brokers, "Kafka bootstrap servers (host:port,...)")
      ->envname("SHADOWPIPE_BROKERS")
      ->capture_default_str();
  app.add_option("-X,--kafka-property", options.properties,
                 "librdkafka property key=value (TLS, SASL, tuning); repeatable");
  app.add_option("--kafka-config", options.properties_file,
                 "file of librdkafka properties, one key=value per line")
      ->check(CLI::ExistingFile);
}

int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  install_crash_report(app.get_name().c_str());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  try {
    return body();
  } catch (const Failure& failure) {
    std::cerr << app.get_name() << ": error: " << failure.what() << '\n';
    return 2;
  } catch (const std::exception& unexpected) {
    std::cerr << app.get_name() << ": internal error: " << unexpected.what()
              << " (please report this with the command that caused it)\n";
    return 3;
  }
}

}  // namespace shadowpipe::cli
