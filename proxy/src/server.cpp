#include "shadowpipe/proxy/server.hpp"

#include "shadowpipe/proxy/protocol.hpp"
#include "shadowpipe/result.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

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
}

namespace {

// Bytes waiting to be written to one side.
class Outbound {
 public:
  size_t size() const { return data_.size() - head_; }
  bool empty() const { return size() == 0; }
  void append(std::string_view bytes) {
    if (head_ > 0 && head_ == data_.size()) {
      data_.clear();
      head_ = 0;
    }
    data_.append(bytes);
  }
  std::string_view pending() const { return std::string_view(data_).substr(head_); }
  void consume(size_t count) {
    head_ += count;
    if (head_ == data_.size()) {
      data_.clear();
      head_ = 0;
    } else if (head_ > 64 * 1024 && head_ * 2 > data_.size()) {
      data_.erase(0, head_);
      head_ = 0;
    }
  }
  void release() {
    std::string().swap(data_);
    head_ = 0;
  }

 private:
  std::string data_;
  size_t head_ = 0;
};

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

struct Server::Worker {
  enum class Phase { startup, connecting, relaying, cancelling, draining };

  struct Connection;
  struct Endpoint {
    Connection* connection;
    bool client;
  };

  // Feeds one direction's messages to the capture.
  struct FrontendSink : protocol::MessageFramer::Sink {
    SessionCapture* capture = nullptr;
    SessionCapture::Clock::time_point now;
    void message(char type, std::string_view payload) override { capture->frontend(type, payload, now); }
    void skipped(char type, uint64_t) override { capture->frontend_skipped(type, now); }
  };
  struct BackendSink : protocol::MessageFramer::Sink {
    SessionCapture* capture = nullptr;
    SessionCapture::Clock::time_point now;
    void message(char type, std::string_view payload) override { capture->backend(type, payload, now); }
    void skipped(char type, uint64_t) override { capture->backend_skipped(type, now); }
  };

  struct Connection {
    Connection(size_t max_message) : frontend(max_message), backend(max_message) {}
    uint64_t id = 0;
    int client = -1;
    int server = -1;
    Phase phase = Phase::startup;
    std::string startup;  // the client's untyped first packet(s), until relaying
    Outbound to_server;
    Outbound to_client;
    protocol::MessageFramer frontend;
    protocol::MessageFramer backend;
    std::unique_ptr<SessionCapture> capture;
    FrontendSink frontend_sink;
    BackendSink backend_sink;
    Endpoint client_end{this, true};
    Endpoint server_end{this, false};
    uint32_t client_events = 0;
    uint32_t server_events = 0;
    bool closing = false;
  };

  Server& server;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::thread thread;
  std::unordered_set<Connection*> connections;
  std::vector<Connection*> closed;

  explicit Worker(Server& owner) : server(owner) {
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd < 0 || wake_fd < 0) throw Failure(std::string("shadow-proxy: epoll: ") + std::strerror(errno));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = nullptr;  // the wake-up
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
    event.events = EPOLLIN | EPOLLEXCLUSIVE;
    event.data.ptr = &server;  // the listening socket
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, server.listen_fd_, &event) != 0) {
      throw Failure(std::string("shadow-proxy: epoll on the listening socket: ") + std::strerror(errno));
    }
  }

  ~Worker() {
    for (auto* connection : connections) {
      if (connection->client >= 0) close(connection->client);
      if (connection->server >= 0) close(connection->server);
      delete connection;
    }
    if (epoll_fd >= 0) close(epoll_fd);
    if (wake_fd >= 0) close(wake_fd);
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto written = write(wake_fd, &one, sizeof one);
  }

  void run() {
    std::vector<epoll_event> events(256);
    while (!stopping.load(std::memory_order_relaxed)) {
      const int count = epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 1000);
      if (count < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < count; ++i) {
        void* tag = events[static_cast<size_t>(i)].data.ptr;
        const uint32_t what = events[static_cast<size_t>(i)].events;
        if (tag == nullptr) continue;  // woken to stop
        if (tag == &server) {
          accept_all();
          continue;
        }
        auto* end = static_cast<Endpoint*>(tag);
        Connection& connection = *end->connection;
        if (connection.closing) continue;
        if (end->client) {
          on_client(connection, what);
        } else {
          on_server(connection, what);
        }
        if (!connection.closing) update_interest(connection);
      }
      for (auto* connection : closed) delete connection;
      closed.clear();
    }
    // Stopping: every session ends here, and a unit still open is counted
    // (client_gone: its client loses the connection) while the sink lives.
    for (auto* connection : std::vector<Connection*>(connections.begin(), connections.end())) finish(*connection);
    for (auto* connection : closed) delete connection;
    closed.clear();
  }

  void accept_all() {
    while (true) {
      const int fd = accept4(server.listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN: another worker took it, or none left
      set_nodelay(fd);
      auto* connection = new Connection(server.options_.max_captured_message);
      connection->id = server.next_connection_.fetch_add(1, std::memory_order_relaxed);
      connection->client = fd;
      connections.insert(connection);
      if (server.metrics_) {
        server.metrics_->connections->Increment();
        server.metrics_->active->Increment();
      }
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.ptr = &connection->client_end;
      connection->client_events = EPOLLIN;
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
    }
  }

  void finish(Connection& connection) {
    if (connection.closing) return;
    connection.closing = true;
    if (connection.capture) connection.capture->closed(UnitDrop::client_gone);
    if (connection.client >= 0) {
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection.client, nullptr);
      close(connection.client);
    }
    if (connection.server >= 0) {
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection.server, nullptr);
      close(connection.server);
    }
    connection.client = connection.server = -1;
    if (server.metrics_ && connection.phase != Phase::cancelling) server.metrics_->active->Decrement();
    connections.erase(&connection);
    closed.push_back(&connection);
  }

  // Closes the primary's side; the client's side stays to drain.
  void drop_server(Connection& connection) {
    if (connection.server < 0) return;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection.server, nullptr);
    close(connection.server);
    connection.server = -1;
    connection.server_events = 0;
  }

  // The client gets this error, then the connection closes once it is written.
  void refuse(Connection& connection, std::string_view sqlstate, std::string_view message) {
    connection.to_client.append(protocol::error_response("FATAL", sqlstate, message));
    connection.phase = Phase::draining;
    drop_server(connection);
    if (connection.capture) connection.capture->closed(UnitDrop::client_gone);
    flush_client(connection);
  }

  void protocol_violation(Connection& connection, std::string_view message) {
    if (server.metrics_) server.metrics_->protocol_errors->Increment();
    refuse(connection, "08P01", message);
  }

  // ---- the client side ---------------------------------------------------

  void on_client(Connection& connection, uint32_t what) {
    if (what & EPOLLOUT) {
      flush_client(connection);
      if (connection.closing) return;
    }
    if (!(what & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    switch (connection.phase) {
      case Phase::startup: read_startup(connection); break;
      case Phase::relaying: read_client(connection); break;
      case Phase::draining:
      case Phase::connecting:
      case Phase::cancelling: {
        // Not reading now; a hang-up still ends the connection.
        if (what & (EPOLLHUP | EPOLLERR)) finish(connection);
        break;
      }
    }
  }

  void read_startup(Connection& connection) {
    char buffer[4096];
    const size_t want = protocol::kMaxStartupLength + 8 - connection.startup.size();
    const ssize_t got = recv(connection.client, buffer, std::min(sizeof buffer, want), 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
      finish(connection);
      return;
    }
    if (got < 0) return;
    connection.startup.append(buffer, static_cast<size_t>(got));
    while (connection.phase == Phase::startup && connection.startup.size() >= 8) {
      const uint32_t length = protocol::read_u32(connection.startup.data());
      const uint32_t code = protocol::read_u32(connection.startup.data() + 4);
      if (length < 8 || length > protocol::kMaxStartupLength) {
        protocol_violation(connection, "invalid length of startup packet");
        return;
      }
      if (connection.startup.size() < length) return;
      if (code == protocol::kSslRequest || code == protocol::kGssEncRequest) {
        if (length != 8) {
          protocol_violation(connection, "invalid length of startup packet");
          return;
        }
        // As a server without TLS (or GSSAPI encryption) answers: the client
        // goes on in plain text or gives up, as it is configured to.
        connection.startup.erase(0, 8);
        connection.to_client.append("N");
        flush_client(connection);
        continue;
      }
      if (code == protocol::kCancelRequest) {
        if (length != 16) {
          protocol_violation(connection, "invalid length of cancel request");
          return;
        }
        // The BackendKeyData passed through unchanged, so the same 16 bytes
        // sent to the primary reach the backend they name.
        connection.to_server.append(std::string_view(connection.startup).substr(0, 16));
        connection.startup.clear();
        connection.phase = Phase::cancelling;
        if (server.metrics_) {
          server.metrics_->cancels->Increment();
          server.metrics_->active->Decrement();  // not a session
        }
        connect_primary(connection);
        return;
      }
      if ((code >> 16) != 3) {
        protocol_violation(connection, "unsupported frontend protocol " + std::to_string(code >> 16) + "." +
                                           std::to_string(code & 0xFFFF) + ": server supports 3.0 to 3.0");
        return;
      }
      // A StartupMessage: the primary answers it (authentication included).
      connection.to_server.append(std::string_view(connection.startup).substr(0, length));
      const std::string rest = connection.startup.substr(length);
      connection.startup.clear();
      connection.startup.shrink_to_fit();
      if (server.sink_) {
        std::string key;
        if (server.options_.key_by == KeyBy::single) key = server.options_.single_key;
        if (server.options_.key_by == KeyBy::connection) key = "connection-" + std::to_string(connection.id);
        connection.capture = std::make_unique<SessionCapture>(*server.sink_, std::move(key), server.normalization_);
        connection.frontend_sink.capture = connection.capture.get();
        connection.backend_sink.capture = connection.capture.get();
      }
      connection.phase = Phase::connecting;
      if (!rest.empty()) client_bytes(connection, rest);
      if (!connection.closing && connection.phase != Phase::draining) connect_primary(connection);
      return;
    }
  }

  void connect_primary(Connection& connection) {
    const int fd = socket(reinterpret_cast<sockaddr*>(server.primary_address_.data())->sa_family,
                          SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      primary_unreachable(connection, std::strerror(errno));
      return;
    }
    set_nodelay(fd);
    const int status = connect(fd, reinterpret_cast<sockaddr*>(server.primary_address_.data()),
                               server.primary_address_length_);
    if (status != 0 && errno != EINPROGRESS) {
      const int error = errno;
      close(fd);
      primary_unreachable(connection, std::strerror(error));
      return;
    }
    connection.server = fd;
    epoll_event event{};
    event.events = EPOLLOUT;
    event.data.ptr = &connection.server_end;
    connection.server_events = EPOLLOUT;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
  }

  void primary_unreachable(Connection& connection, std::string_view why) {
    if (server.metrics_) server.metrics_->primary_unreachable->Increment();
    if (connection.phase == Phase::cancelling) {
      finish(connection);
      return;
    }
    refuse(connection, "08006",
           "shadow-proxy: cannot reach the primary at " + server.options_.primary_host + ":" +
               std::to_string(server.options_.primary_port) + ": " + std::string(why));
  }

  // Bytes from the client while relaying: captured, then queued for the primary.
  void client_bytes(Connection& connection, std::string_view bytes) {
    if (connection.capture) connection.frontend_sink.now = SessionCapture::Clock::now();
    protocol::MessageFramer::Sink* sink = connection.capture ? &connection.frontend_sink : nullptr;
    NullSink none;
    if (!connection.frontend.feed(bytes, sink ? *sink : none)) {
      if (connection.capture) connection.capture->lost_sync();
      // The error may only go between two of the server's messages.
      if (connection.backend.at_boundary()) {
        protocol_violation(connection, "invalid message length");
      } else {
        if (server.metrics_) server.metrics_->protocol_errors->Increment();
        finish(connection);
      }
      return;
    }
    connection.to_server.append(bytes);
  }

  struct NullSink : protocol::MessageFramer::Sink {
    void message(char, std::string_view) override {}
    void skipped(char, uint64_t) override {}
  };

  void read_client(Connection& connection) {
    char buffer[64 * 1024];
    while (connection.to_server.size() < server.options_.buffer_bytes) {
      const size_t room = server.options_.buffer_bytes - connection.to_server.size();
      const ssize_t got = recv(connection.client, buffer, std::min(sizeof buffer, room), 0);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        // The client went away: what it sent last (a Terminate) goes on,
        // then the primary's connection closes with it (session mode).
        flush_server(connection);
        finish(connection);
        return;
      }
      if (got < 0) break;
      client_bytes(connection, std::string_view(buffer, static_cast<size_t>(got)));
      if (connection.closing || connection.phase != Phase::relaying) return;
      if (static_cast<size_t>(got) < std::min(sizeof buffer, room)) break;
    }
    flush_server(connection);
  }

  void flush_client(Connection& connection) {
    while (!connection.to_client.empty()) {
      const auto pending = connection.to_client.pending();
      const ssize_t sent = send(connection.client, pending.data(), pending.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        finish(connection);
        return;
      }
      connection.to_client.consume(static_cast<size_t>(sent));
    }
    if (connection.phase == Phase::draining) finish(connection);
  }

  // ---- the primary side --------------------------------------------------

  void on_server(Connection& connection, uint32_t what) {
    if (connection.phase == Phase::connecting || connection.phase == Phase::cancelling) {
      if (!(what & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int error = 0;
      socklen_t length = sizeof error;
      getsockopt(connection.server, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        drop_server(connection);
        primary_unreachable(connection, std::strerror(error));
        return;
      }
      if (connection.phase == Phase::cancelling) {
        // The server closes a cancel connection without an answer.
        const auto pending = connection.to_server.pending();
        [[maybe_unused]] auto sent = send(connection.server, pending.data(), pending.size(), MSG_NOSIGNAL);
        finish(connection);
        return;
      }
      connection.phase = Phase::relaying;
      flush_server(connection);
      return;
    }
    if (connection.phase != Phase::relaying) return;
    if (what & EPOLLOUT) {
      flush_server(connection);
      if (connection.closing) return;
    }
    if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_server(connection);
  }

  void read_server(Connection& connection) {
    char buffer[64 * 1024];
    while (connection.to_client.size() < server.options_.buffer_bytes) {
      const size_t room = server.options_.buffer_bytes - connection.to_client.size();
      const ssize_t got = recv(connection.server, buffer, std::min(sizeof buffer, room), 0);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        primary_gone(connection);
        return;
      }
      if (got < 0) break;
      const std::string_view bytes(buffer, static_cast<size_t>(got));
      if (connection.capture) {
        connection.backend_sink.now = SessionCapture::Clock::now();
        if (!connection.backend.feed(bytes, connection.backend_sink)) connection.capture->lost_sync();
      } else {
        NullSink none;
        connection.backend.feed(bytes, none);
      }
      connection.to_client.append(bytes);
      if (static_cast<size_t>(got) < std::min(sizeof buffer, room)) break;
    }
    flush_client(connection);
  }

  void primary_gone(Connection& connection) {
    if (connection.frontend.last_type() == 'X') {
      // The client said Terminate: the primary closing is the answer, and
      // the client closes too; an error now would reach a client that
      // already said goodbye (node-postgres raises it as unhandled).
      if (connection.capture) connection.capture->closed(UnitDrop::client_gone);
      drop_server(connection);
      connection.phase = Phase::draining;
      flush_client(connection);
      return;
    }
    // Whatever the primary said last (its FATAL, when it shut down in
    // order or ended the session) reaches the client; a primary that
    // vanished without a word gets one from the proxy, if it fits between
    // two messages.
    if (connection.capture) connection.capture->closed(UnitDrop::primary_gone);
    if (!connection.backend.failed() && connection.backend.at_boundary() && connection.backend.last_type() != 'E') {
      connection.to_client.append(protocol::error_response(
          "FATAL", "08006", "shadow-proxy: the primary closed the connection"));
    }
    drop_server(connection);
    connection.phase = Phase::draining;
    flush_client(connection);
  }

  void flush_server(Connection& connection) {
    if (connection.server < 0 || connection.phase != Phase::relaying) return;
    while (!connection.to_server.empty()) {
      const auto pending = connection.to_server.pending();
      const ssize_t sent = send(connection.server, pending.data(), pending.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        primary_gone(connection);
        return;
      }
      connection.to_server.consume(static_cast<size_t>(sent));
    }
  }

  // Level-triggered interest from the buffers: read a side only while the
  // other side's queue has room; ask to write only what waits.
  void update_interest(Connection& connection) {
    const size_t limit = server.options_.buffer_bytes;
    uint32_t client_events = 0;
    uint32_t server_events = 0;
    switch (connection.phase) {
      case Phase::startup:
        client_events = EPOLLIN;
        if (!connection.to_client.empty()) client_events |= EPOLLOUT;
        break;
      case Phase::connecting:
      case Phase::cancelling:
        server_events = EPOLLOUT;
        if (!connection.to_client.empty()) client_events |= EPOLLOUT;
        break;
      case Phase::relaying:
        if (connection.to_server.size() < limit) client_events |= EPOLLIN;
        if (!connection.to_client.empty()) client_events |= EPOLLOUT;
        if (connection.to_client.size() < limit) server_events |= EPOLLIN;
        if (!connection.to_server.empty()) server_events |= EPOLLOUT;
        break;
      case Phase::draining:
        client_events = EPOLLOUT;
        break;
    }
    if (connection.client >= 0 && client_events != connection.client_events) {
      epoll_event event{};
      event.events = client_events;
      event.data.ptr = &connection.client_end;
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, connection.client, &event);
      connection.client_events = client_events;
    }
    if (connection.server >= 0 && server_events != connection.server_events) {
      epoll_event event{};
      event.events = server_events;
      event.data.ptr = &connection.server_end;
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, connection.server, &event);
      connection.server_events = server_events;
    }
  }
};

Server::Server(ProxyOptions options, UnitSink* sink, const digest::NormalizationConfig& normalization,
               RelayMetrics* metrics)
    : options_(std::move(options)), sink_(sink), normalization_(normalization), metrics_(metrics) {
  if (options_.workers < 1) throw Failure("--workers must be at least 1");
  if (options_.buffer_bytes < 8192) throw Failure("the buffer per direction must be at least 8192 bytes");

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
