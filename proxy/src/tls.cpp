// OpenSSL for the relay: contexts built once at start (bad files fail there,
// named), and each end's non-blocking stream mapped onto recv/send's contract.
#include "tls.hpp"

#include "shadowpipe/result.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace shadowpipe::proxy {

std::string openssl_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char line[256];
    ERR_error_string_n(code, line, sizeof line);
    if (!text.empty()) text += "; ";
    text += line;
  }
  return text.empty() ? std::string("no reason given by OpenSSL") : text;
}

namespace {
// What every context shares: TLS 1.2 at least (PostgreSQL's default minimum),
// no renegotiation; SSL_write may take part of a buffer and see it move
// (Outbound appends and compacts between retries).
SslContext new_context(const SSL_METHOD* method, const char* what) {
  SslContext context(SSL_CTX_new(method));
  if (!context) throw Failure(std::string("cannot create the TLS context ") + what + ": " + openssl_errors());
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(context.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return context;
}

void require_readable(const std::string& file, const char* option) {
  if (access(file.c_str(), R_OK) != 0) {
    throw Failure(std::string("cannot read ") + option + " " + file + ": " + std::strerror(errno));
  }
}
}  // namespace

SslContext server_tls_context(const std::string& certificate_file, const std::string& key_file) {
  require_readable(certificate_file, "--tls-cert");
  require_readable(key_file, "--tls-key");
  SslContext context = new_context(TLS_server_method(), "for clients");
  // As PostgreSQL: no session tickets (no client resumes a session).
  SSL_CTX_set_options(context.get(), SSL_OP_NO_TICKET);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(context.get(), certificate_file.c_str()) != 1) {
    throw Failure("--tls-cert " + certificate_file + " is not a PEM certificate: " + openssl_errors());
  }
  // Checked against the certificate loaded above: a key of another fails here.
  if (SSL_CTX_use_PrivateKey_file(context.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw Failure("--tls-key " + key_file + " is not the PEM private key of --tls-cert " + certificate_file + ": " +
                  openssl_errors());
  }
  return context;
}

SslContext primary_tls_context() { return new_context(TLS_client_method(), "for the primary"); }

bool TlsStream::start(SSL_CTX* context, int fd, bool server, const std::string& sni) {
  ERR_clear_error();
  ssl_.reset(SSL_new(context));
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd) != 1) {
    error_ = openssl_errors();
    ssl_.reset();
    return false;
  }
  if (server) {
    SSL_set_accept_state(ssl_.get());
  } else {
    unsigned char address[sizeof(in6_addr)];
    // Server Name Indication for a host name, as libpq sends it; never for an address.
    const bool numeric =
        inet_pton(AF_INET, sni.c_str(), address) == 1 || inet_pton(AF_INET6, sni.c_str(), address) == 1;
    if (!sni.empty() && !numeric) SSL_set_tlsext_host_name(ssl_.get(), sni.c_str());
    SSL_set_connect_state(ssl_.get());
  }
  return true;
}

TlsStream::Handshake TlsStream::handshake() {
  ERR_clear_error();
  errno = 0;
  const int result = SSL_do_handshake(ssl_.get());
  if (result == 1) return Handshake::done;
  if (blocked_or_failed(result) < 0 && errno == EAGAIN) return Handshake::blocked;
  if (error_.empty()) error_ = "the peer closed the connection during the TLS handshake";
  return Handshake::failed;
}

ssize_t TlsStream::receive(int fd, char* buffer, size_t length) {
  if (!ssl_) return recv(fd, buffer, length, 0);
  ERR_clear_error();
  errno = 0;
  const int result = SSL_read(ssl_.get(), buffer, static_cast<int>(std::min<size_t>(length, INT_MAX)));
  receive_blocked_on_write_ = false;
  if (result > 0) return result;
  const ssize_t outcome = blocked_or_failed(result);
  receive_blocked_on_write_ = outcome < 0 && errno == EAGAIN && wants_write_;
  return outcome;
}

ssize_t TlsStream::transmit(int fd, const char* buffer, size_t length) {
  if (!ssl_) return send(fd, buffer, length, MSG_NOSIGNAL);
  if (length == 0) return 0;
  ERR_clear_error();
  errno = 0;
  const int result = SSL_write(ssl_.get(), buffer, static_cast<int>(std::min<size_t>(length, INT_MAX)));
  transmit_blocked_on_read_ = false;
  if (result > 0) return result;
  const ssize_t outcome = blocked_or_failed(result);
  transmit_blocked_on_read_ = outcome < 0 && errno == EAGAIN && !wants_write_;
  if (outcome == 0) {
    // A write cannot see an orderly close: the peer is gone.
    errno = EPIPE;
    return -1;
  }
  return outcome;
}

void TlsStream::close_notify() {
  // Best effort and never waiting, as a server closing its end: the peer
  // learns the end was not a truncation. Not after a failure (OpenSSL forbids it).
  if (ssl_ && !failed_) SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

ssize_t TlsStream::blocked_or_failed(int result) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      wants_write_ = false;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      wants_write_ = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or (IGNORE_UNEXPECTED_EOF) a plain close
      return 0;
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      if (saved_errno == 0) return 0;  // EOF
      error_ = std::strerror(saved_errno);
      errno = saved_errno;
      return -1;
    default:
      failed_ = true;
      error_ = openssl_errors();
      errno = EPROTO;
      return -1;
  }
}

}  // namespace shadowpipe::proxy
