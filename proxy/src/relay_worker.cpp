// The relay worker's event loop: accepting clients, closing connections, and the epoll interest that bounds each direction's buffer.
#include "relay_worker.hpp"

#include "shadowpipe/result.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shadowpipe::proxy {

Server::Worker::Worker(Server& owner) : server(owner) {
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

Server::Worker::~Worker() {
  for (auto* connection : connections) {
    if (connection->client >= 0) close(connection->client);
    if (connection->server >= 0) close(connection->server);
    delete connection;
  }
  if (epoll_fd >= 0) close(epoll_fd);
  if (wake_fd >= 0) close(wake_fd);
}

void Server::Worker::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto written = write(wake_fd, &one, sizeof one);
}

void Server::Worker::run() {
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

void Server::Worker::accept_all() {
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

void Server::Worker::finish(Connection& connection) {
  if (connection.closing) return;
  connection.closing = true;
  if (connection.capture) connection.capture->closed(UnitDrop::client_gone);
  if (connection.client >= 0) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection.client, nullptr);
    connection.client_tls.close_notify();
    close(connection.client);
  }
  if (connection.server >= 0) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection.server, nullptr);
    connection.server_tls.close_notify();
    close(connection.server);
  }
  connection.client = connection.server = -1;
  if (server.metrics_ && connection.phase != Phase::cancelling) server.metrics_->active->Decrement();
  connections.erase(&connection);
  closed.push_back(&connection);
}

void Server::Worker::drop_server(Connection& connection) {
  if (connection.server < 0) return;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection.server, nullptr);
  connection.server_tls.close_notify();
  connection.server_tls.reset();
  close(connection.server);
  connection.server = -1;
  connection.server_events = 0;
}

void Server::Worker::refuse(Connection& connection, std::string_view sqlstate, std::string_view message) {
  connection.to_client.append(protocol::error_response("FATAL", sqlstate, message));
  connection.phase = Phase::draining;
  drop_server(connection);
  if (connection.capture) connection.capture->closed(UnitDrop::client_gone);
  flush_client(connection);
}

void Server::Worker::protocol_violation(Connection& connection, std::string_view message) {
  if (server.metrics_) server.metrics_->protocol_errors->Increment();
  refuse(connection, "08P01", message);
}


namespace {
// Asks epoll for `wanted` on one end of a connection, when that changed.
void watch(int epoll_fd, int fd, uint32_t wanted, uint32_t& current, void* end) {
  if (fd < 0 || wanted == current) return;
  epoll_event event{};
  event.events = wanted;
  event.data.ptr = end;
  epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &event);
  current = wanted;
}

// One end's interest while relaying. Over TLS a read may wait for the
// socket to be writable, or a write for it to be readable (a key update).
uint32_t relay_interest(bool may_read, bool has_output, const TlsStream& tls) {
  uint32_t events = 0;
  if (may_read) events |= tls.receive_waits_on_write() ? EPOLLIN | EPOLLOUT : EPOLLIN;
  if (has_output) events |= tls.transmit_waits_on_read() ? EPOLLOUT | EPOLLIN : EPOLLOUT;
  return events;
}

uint32_t handshake_interest(const TlsStream& tls) { return tls.wants_write() ? EPOLLOUT : EPOLLIN; }
}  // namespace

void Server::Worker::update_interest(Connection& connection) {
  const size_t limit = server.options_.buffer_bytes;
  uint32_t client_events = 0;
  uint32_t server_events = 0;
  switch (connection.phase) {
    case Phase::startup:
      client_events = relay_interest(true, !connection.to_client.empty(), connection.client_tls);
      break;
    case Phase::client_tls:
      // The 'S' goes out in plain text first, then the handshake.
      client_events = connection.to_client.empty() ? handshake_interest(connection.client_tls) : EPOLLOUT;
      break;
    case Phase::connecting:
    case Phase::cancelling:
    case Phase::primary_ssl_request:
    case Phase::primary_tls:
      server_events = connection.phase == Phase::primary_ssl_request ? EPOLLIN
                    : connection.phase == Phase::primary_tls         ? handshake_interest(connection.server_tls)
                                                                     : EPOLLOUT;
      client_events = relay_interest(false, !connection.to_client.empty(), connection.client_tls);
      break;
    case Phase::relaying:
      client_events = relay_interest(connection.to_server.size() < limit, !connection.to_client.empty(),
                                     connection.client_tls);
      server_events = relay_interest(connection.to_client.size() < limit, !connection.to_server.empty(),
                                     connection.server_tls);
      break;
    case Phase::draining:
      client_events = relay_interest(false, true, connection.client_tls);
      break;
  }
  watch(epoll_fd, connection.client, client_events, connection.client_events, &connection.client_end);
  watch(epoll_fd, connection.server, server_events, connection.server_events, &connection.server_end);
}

}  // namespace shadowpipe::proxy
