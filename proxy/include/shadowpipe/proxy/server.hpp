// shadow-proxy's relay: clients connect to it as to PostgreSQL; each client
// connection gets one connection to the primary (session mode) and every
// byte passes through unchanged, in both directions. A few worker threads,
// each with its own epoll set, serve all connections; none waits on another
// connection or on recording.
//
// Per connection and direction at most `buffer_bytes` wait to be written:
// when the client reads slowly, the proxy stops reading from the primary, so
// a result of any size streams through in bounded memory.
#pragma once

#include "shadowpipe/proxy/capture.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
}  // namespace prometheus

namespace shadowpipe::proxy {

// How units are keyed (the consistency key: units of one key are replayed in
// the order the proxy saw them end).
enum class KeyBy {
  single,      // one key for every unit: the primary's commit order, one partition (the default)
  connection,  // per client connection: order within a session only; spreads load over partitions
  request,     // no key (each unit its own): no order at all; reads only
};

// TLS from the proxy to the primary (the relay's own, whatever the client asked).
enum class PrimaryTls {
  disable,  // plain (the default; the stack's servers have no TLS)
  prefer,   // SSLRequest first; plain when the primary answers 'N'
  require,  // SSLRequest first; a primary without TLS: the client is refused (08006)
};

struct ProxyOptions {
  // Where clients connect. Port 0: any free port (see Server::port()).
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 6432;
  // The primary every connection is relayed to.
  std::string primary_host = "127.0.0.1";
  uint16_t primary_port = 5432;
  // Event loops (threads). Two serve thousands of connections; more only
  // help when the proxy's CPU is the limit.
  int workers = 2;
  // Bytes waiting per connection and direction before the proxy stops
  // reading from the sender. Larger: fewer wakeups on big results; memory
  // per connection is up to twice this.
  size_t buffer_bytes = 256 * 1024;
  // The largest message the capture reads whole (larger ones pass through
  // and their unit is dropped as oversized). Bounds capture memory per
  // connection.
  size_t max_captured_message = 1024 * 1024 + 5;
  // The data of one COPY FROM STDIN recorded with it (--copy-max-bytes);
  // a larger COPY's unit is dropped (copy_data) and, as a write, announced.
  size_t copy_max_bytes = CaptureLimits{}.max_copy_bytes;
  KeyBy key_by = KeyBy::single;
  std::string single_key = "shadow-proxy";  // the key under KeyBy::single
  // TLS for clients (PEM files, the key unencrypted): with both, SSLRequest
  // is answered 'S' and the client's TLS ends here; without, 'N', as a
  // server without TLS answers. A bad file fails the start.
  std::string tls_certificate_file;
  std::string tls_key_file;
  // TLS to the primary. Its certificate is not verified (libpq's
  // sslmode=require): it protects the wire, not against an impostor.
  PrimaryTls primary_tls = PrimaryTls::disable;
};

// Counters of the relay, in a Prometheus registry.
struct RelayMetrics {
  explicit RelayMetrics(prometheus::Registry& registry);
  prometheus::Counter* connections = nullptr;       // accepted client connections
  prometheus::Gauge* active = nullptr;              // open client connections
  prometheus::Counter* protocol_errors = nullptr;   // connections closed with 08P01
  prometheus::Counter* primary_unreachable = nullptr;
  prometheus::Counter* cancels = nullptr;           // CancelRequests forwarded
  // TLS handshakes completed and failed, with clients and with the primary.
  prometheus::Counter* client_tls = nullptr;
  prometheus::Counter* client_tls_failures = nullptr;
  prometheus::Counter* primary_tls = nullptr;
  prometheus::Counter* primary_tls_failures = nullptr;
};

class Server {
 public:
  // sink: where captured units go (nullptr: relay only, nothing captured).
  // normalization must outlive the server. Binds the listening socket
  // (throws Failure when it cannot) and resolves the primary's address.
  Server(ProxyOptions options, UnitSink* sink, const digest::NormalizationConfig& normalization,
         RelayMetrics* metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  void start();  // the worker threads
  void stop();   // closes every connection, joins the workers

 private:
  struct Worker;
  struct TlsContexts;  // OpenSSL's, when TLS is configured (relay_worker.hpp)
  ProxyOptions options_;
  UnitSink* sink_;
  const digest::NormalizationConfig& normalization_;
  RelayMetrics* metrics_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<char> primary_address_;  // sockaddr storage
  unsigned primary_address_length_ = 0;
  std::unique_ptr<TlsContexts> tls_;
  std::atomic<uint64_t> next_connection_{1};
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace shadowpipe::proxy
