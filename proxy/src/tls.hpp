// TLS for the relay, through OpenSSL: the context that terminates clients'
// TLS (--tls-cert/--tls-key), the context for TLS to the primary, and one
// end's non-blocking stream, read and written with recv/send's contract so
// the relay's loops stay as they are for plain sockets.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>
#include <sys/types.h>

namespace shadowpipe::proxy {

// The most plaintext one TLS record carries.
inline constexpr size_t kTlsRecordPlaintext = 16384;

struct SslContextFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslContext = std::unique_ptr<SSL_CTX, SslContextFree>;

// The server side: clients' TLS terminated with this certificate and key
// (PEM files). Throws Failure naming the file and OpenSSL's reason.
SslContext server_tls_context(const std::string& certificate_file, const std::string& key_file);
// The client side, to the primary: encrypted, the certificate not verified
// (as libpq's sslmode=require).
SslContext primary_tls_context();

// The last OpenSSL errors of this thread, as one line (and the queue cleared).
std::string openssl_errors();

// One end of a connection, plain until start(): then every byte is TLS.
class TlsStream {
 public:
  bool active() const { return ssl_ != nullptr; }
  // Binds a new TLS session to `fd`; server: accept a client's handshake, else
  // start one (sni: the primary's host name, empty for an address).
  bool start(SSL_CTX* context, int fd, bool server, const std::string& sni);
  // Ends the session before its socket closes: a close_notify (best effort).
  void close_notify();
  void reset() {
    ssl_.reset();
    failed_ = false;
  }

  enum class Handshake { done, blocked, failed };
  // Advances the handshake; blocked: call again when wants_write() says.
  Handshake handshake();
  // recv/send's contract: bytes moved; 0 from receive: the peer closed; -1
  // with errno EAGAIN: call again on readiness (wants_write() says which);
  // -1 with another errno: failed (EPROTO for a TLS error).
  // OpenSSL writes with write(), not send(MSG_NOSIGNAL): the program ignores
  // SIGPIPE (main.cpp), so a peer gone makes an error, not a signal.
  ssize_t receive(int fd, char* buffer, size_t length);
  ssize_t transmit(int fd, const char* buffer, size_t length);
  // The last call that blocked needs the socket writable (else readable).
  bool wants_write() const { return wants_write_; }
  // A receive blocked on writing, or a transmit on reading (a TLS key update):
  // that call waits for the other readiness than its own.
  bool receive_waits_on_write() const { return receive_blocked_on_write_; }
  bool transmit_waits_on_read() const { return transmit_blocked_on_read_; }
  // Why the last call failed (OpenSSL's reason).
  const std::string& error() const { return error_; }

 private:
  // Maps SSL_get_error after a call that returned `result` <= 0.
  ssize_t blocked_or_failed(int result);
  std::unique_ptr<SSL, SslFree> ssl_;
  bool wants_write_ = false;
  bool receive_blocked_on_write_ = false;
  bool transmit_blocked_on_read_ = false;
  bool failed_ = false;  // no close_notify after a failure
  std::string error_;
};

}  // namespace shadowpipe::proxy
