// Server: binding the listening socket, resolving the primary, starting and stopping the relay workers; and the relay's metrics.
#include "shadowpipe/proxy/server.hpp"

#include "relay_worker.hpp"
#include "shadowpipe/result.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shadowpipe::proxy {

namespace {
prometheus::Counter* counter(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}
}  // namespace

RelayMetrics::RelayMetrics(prometheus::Registry& registry) {
  connections = counter(registry, "shadowpipe_proxy_connections_total", "Client connections accepted");
  active = &prometheus::BuildGauge()
                .Name("shadowpipe_proxy_connections_active")
                .Help("Client connections open now")
                .Register(registry)
                .Add({});
  protocol_errors = counter(registry, "shadowpipe_proxy_protocol_errors_total",
                            "Client connections closed with 08P01 (not the PostgreSQL protocol)");
  primary_unreachable = counter(registry, "shadowpipe_proxy_primary_unreachable_total",
                                "Client connections refused because the primary could not be reached");
  cancels = counter(registry, "shadowpipe_proxy_cancel_requests_total", "CancelRequests forwarded to the primary");
  auto& handshakes = prometheus::BuildCounter()
                         .Name("shadowpipe_proxy_tls_handshakes_total")
                         .Help("TLS handshakes completed, with clients (--tls-cert) and with the primary")
                         .Register(registry);
  client_tls = &handshakes.Add({{"side", "client"}});
  primary_tls = &handshakes.Add({{"side", "primary"}});
  auto& failures = prometheus::BuildCounter()
                       .Name("shadowpipe_proxy_tls_failures_total")
                       .Help("TLS handshakes that failed (the connection closed), with clients and with the primary")
                       .Register(registry);
  client_tls_failures = &failures.Add({{"side", "client"}});
  primary_tls_failures = &failures.Add({{"side", "primary"}});
}

Server::Server(ProxyOptions options, UnitSink* sink, const digest::NormalizationConfig& normalization,
               RelayMetrics* metrics)
    : options_(std::move(options)), sink_(sink), normalization_(normalization), metrics_(metrics) {
  if (options_.workers < 1) throw Failure("--workers must be at least 1");
  if (options_.buffer_bytes < 8192) throw Failure("the buffer per direction must be at least 8192 bytes");
  if (options_.tls_certificate_file.empty() != options_.tls_key_file.empty()) {
    throw Failure("--tls-cert and --tls-key go together (TLS for clients needs both)");
  }
  if (!options_.tls_certificate_file.empty() || options_.primary_tls != PrimaryTls::disable) {
    tls_ = std::make_unique<TlsContexts>();
    if (!options_.tls_certificate_file.empty()) {
      tls_->clients = server_tls_context(options_.tls_certificate_file, options_.tls_key_file);
    }
    if (options_.primary_tls != PrimaryTls::disable) tls_->primary = primary_tls_context();
  }

  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string primary_port = std::to_string(options_.primary_port);
  if (int error = getaddrinfo(options_.primary_host.c_str(), primary_port.c_str(), &hints, &found); error != 0) {
    throw Failure("cannot resolve the primary's host " + options_.primary_host + ": " + gai_strerror(error));
  }
  primary_address_.assign(reinterpret_cast<char*>(found->ai_addr),
                          reinterpret_cast<char*>(found->ai_addr) + found->ai_addrlen);
  primary_address_length_ = found->ai_addrlen;
  freeaddrinfo(found);

  found = nullptr;
  hints.ai_flags = AI_PASSIVE;
  const std::string listen_port = std::to_string(options_.listen_port);
  if (int error = getaddrinfo(options_.listen_host.c_str(), listen_port.c_str(), &hints, &found); error != 0) {
    throw Failure("cannot resolve the listen address " + options_.listen_host + ": " + gai_strerror(error));
  }
  listen_fd_ = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool bound = listen_fd_ >= 0 && bind(listen_fd_, found->ai_addr, found->ai_addrlen) == 0 &&
                     listen(listen_fd_, 1024) == 0;
  const int error = errno;
  freeaddrinfo(found);
  if (!bound) {
    if (listen_fd_ >= 0) close(listen_fd_);
    throw Failure("cannot listen on " + options_.listen_host + ":" + listen_port + ": " + std::strerror(error) +
                  " (choose another with --listen)");
  }
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  for (int i = 0; i < options_.workers; ++i) workers_.push_back(std::make_unique<Worker>(*this));
}

Server::~Server() {
  stop();
  workers_.clear();
  if (listen_fd_ >= 0) close(listen_fd_);
}

void Server::start() {
  for (auto& worker : workers_) {
    if (!worker->thread.joinable()) worker->thread = std::thread([&worker] { worker->run(); });
  }
}

void Server::stop() {
  for (auto& worker : workers_) {
    worker->stopping.store(true, std::memory_order_relaxed);
    worker->wake();
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

}  // namespace shadowpipe::proxy
