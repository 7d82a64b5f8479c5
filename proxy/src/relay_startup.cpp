// The relay before a session relays: the client's start-up packets (SSL/GSS refusals, CancelRequest forwarding, StartupMessage) and connecting to the primary.
#include "relay_worker.hpp"

#include "shadowpipe/result.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

namespace shadowpipe::proxy {

void Server::Worker::on_client(Connection& connection, uint32_t what) {
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

void Server::Worker::read_startup(Connection& connection) {
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
      CaptureLimits limits;
      limits.max_copy_bytes = server.options_.copy_max_bytes;
      connection.capture = std::make_unique<SessionCapture>(*server.sink_, std::move(key), server.normalization_, limits);
      connection.frontend_sink.capture = connection.capture.get();
      connection.backend_sink.capture = connection.capture.get();
    }
    connection.phase = Phase::connecting;
    if (!rest.empty()) client_bytes(connection, rest);
    if (!connection.closing && connection.phase != Phase::draining) connect_primary(connection);
    return;
  }
}

void Server::Worker::connect_primary(Connection& connection) {
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

void Server::Worker::primary_unreachable(Connection& connection, std::string_view why) {
  if (server.metrics_) server.metrics_->primary_unreachable->Increment();
  if (connection.phase == Phase::cancelling) {
    finish(connection);
    return;
  }
  refuse(connection, "08006",
         "shadow-proxy: cannot reach the primary at " + server.options_.primary_host + ":" +
             std::to_string(server.options_.primary_port) + ": " + std::string(why));
}

}  // namespace shadowpipe::proxy
