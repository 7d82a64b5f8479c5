// shadow-proxy: a PostgreSQL wire-protocol relay that records the traffic of
// any application for shadowing. Logic: proxy/src/.
#include "shadowpipe/cli.hpp"
#include "shadowpipe/metrics.hpp"
#include "shadowpipe/proxy/program.hpp"

#include <atomic>
#include <csignal>
#include <iostream>

namespace {
std::atomic<bool> stop_requested{false};
void request_stop(int) { stop_requested.store(true); }

// "host:port" or "port".
void split_address(const std::string& text, std::string& host, uint16_t& port, const std::string& what) {
  const auto colon = text.rfind(':');
  const std::string port_text = colon == std::string::npos ? text : text.substr(colon + 1);
  if (colon != std::string::npos) host = text.substr(0, colon);
  try {
    const int value = std::stoi(port_text);
    if (value < 0 || value > 65535) throw std::out_of_range(port_text);
    port = static_cast<uint16_t>(value);
  } catch (const std::exception&) {
    throw shadowpipe::Failure(what + " '" + text + "' is not host:port");
  }
}
}  // namespace

int main(int argc, char** argv) {
  using namespace shadowpipe;
  CLI::App app{
      "shadow-proxy: point the application's DSN here instead of at the primary; every byte is relayed to\n"
      "the primary (one primary connection per client connection, authentication passed through), and\n"
      "what the application ran is recorded to the requests topic for shadowing.",
      "shadow-proxy"};
  proxy::ProgramOptions options;
  cli::KafkaOptions kafka;
  std::string listen = "127.0.0.1:6432";
  std::string primary;
  std::string key_by = "single";
  std::string primary_sslmode = "disable";
  std::string metrics_port;
  std::string normalization_file;
  size_t buffer_kb = options.relay.buffer_bytes / 1024;
  bool no_capture = false;
  bool drop_rollbacks = false;
  options.recorder.source = "shadow-proxy";
  app.add_option("--listen", listen, "host:port clients connect to")->capture_default_str();
  app.add_option("--primary", primary, "host:port of the primary PostgreSQL server")
      ->envname("SHADOW_PROXY_PRIMARY")
      ->required();
  app.add_option("--workers", options.relay.workers, "event-loop threads")->capture_default_str();
  app.add_option("--buffer-kb", buffer_kb, "KiB waiting per connection and direction before reading pauses")
      ->capture_default_str();
  app.add_option("--key-by", key_by,
                 "consistency key of recorded units: single (one key, the primary's commit order; the default), "
                 "connection (order per client connection, spreads writes over partitions), request (no order); "
                 "a /* shadow_key='...' */ tag in a statement's comment keys its unit whatever this is")
      ->check(CLI::IsMember({"single", "connection", "request"}))
      ->capture_default_str();
  app.add_option("--tls-cert", options.relay.tls_certificate_file,
                 "PEM certificate (chain) for clients' TLS; with --tls-key, SSLRequest is answered 'S' and TLS "
                 "ends here (clients using SCRAM over TLS on both hops need channel_binding=disable); without, 'N'")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.relay.tls_key_file, "PEM private key (unencrypted) of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--primary-sslmode", primary_sslmode,
                 "TLS to the primary, whatever the client asked: disable (plain), prefer (TLS when the primary "
                 "offers it), require (refuse clients when it does not); its certificate is not verified")
      ->check(CLI::IsMember({"disable", "prefer", "require"}))
      ->capture_default_str();
  app.add_option("--topic", options.recorder.topic, "requests topic")->capture_default_str();
  app.add_option("--source", options.recorder.source, "application name in the records")->capture_default_str();
  app.add_option("--search-path", options.recorder.default_search_path,
                 "search_path the executor sets for recorded units (PostgreSQL 15 does not report it)");
  app.add_option("--sample-rate", options.recorder.sampling.rate, "share of units published (writes always are)")
      ->capture_default_str();
  app.add_option("--normalization", normalization_file, "digest normalization rules (docs/CONFIGURATION.md)");
  app.add_option("--copy-max-bytes", options.relay.copy_max_bytes,
                 "data of one COPY FROM STDIN recorded with it; a larger COPY's unit is dropped and announced as a gap "
                 "(a record carries it in base64: keep it under the recorder's and the topic's record size)")
      ->capture_default_str();
  app.add_option("--queue-units", options.queue_units, "captured units waiting to be recorded before drops")
      ->capture_default_str();
  app.add_flag("--no-rollbacks", drop_rollbacks, "do not publish rolled-back transactions");
  app.add_flag("--no-capture", no_capture, "relay only: record nothing (no broker needed)");
  app.add_option("--metrics-port", metrics_port, "serve /metrics on this port or host:port");
  app.add_option("--catalog-dsn", options.catalog_dsn,
                 "libpq DSN of the proxy's own connections to the primary (a role that can read pg_type; the "
                 "database is each session's) naming user types (enums, domains, citext...) in the records, so "
                 "the comparator compares them by name; put a password in SHADOW_PROXY_CATALOG_DSN, not here. "
                 "Without it user types are recorded unnamed and their type changes are not reported")
      ->envname("SHADOW_PROXY_CATALOG_DSN");
  cli::add_kafka_options(app, kafka);
  return cli::run_main(app, argc, argv, [&] {
    split_address(listen, options.relay.listen_host, options.relay.listen_port, "--listen");
    split_address(primary, options.relay.primary_host, options.relay.primary_port, "--primary");
    options.relay.buffer_bytes = buffer_kb * 1024;
    options.relay.key_by = key_by == "connection" ? proxy::KeyBy::connection
                         : key_by == "request"    ? proxy::KeyBy::request
                                                  : proxy::KeyBy::single;
    options.relay.primary_tls = primary_sslmode == "require" ? proxy::PrimaryTls::require
                              : primary_sslmode == "prefer"  ? proxy::PrimaryTls::prefer
                                                             : proxy::PrimaryTls::disable;
    options.capture = !no_capture;
    options.recorder.kafka = kafka.to_properties();
    options.recorder.publish_rollbacks = !drop_rollbacks;
    if (!normalization_file.empty()) {
      options.recorder.normalization = digest::NormalizationConfig::load_file(normalization_file);
    }
    options.metrics_bind = metrics::bind_address(metrics_port);
    std::signal(SIGTERM, request_stop);
    std::signal(SIGINT, request_stop);
    std::signal(SIGPIPE, SIG_IGN);
    return proxy::run(options, stop_requested, std::cerr);
  });
}
