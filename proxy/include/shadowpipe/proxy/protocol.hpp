// The PostgreSQL frontend/backend protocol (version 3.0) as far as the proxy
// reads it: framing of the byte stream into messages, reading a message's
// fields, and the few messages the proxy writes itself.
//
// The proxy never needs a whole result in memory: MessageFramer hands over
// each message as soon as its last byte passed, and a message larger than its
// bound is counted through (its bytes still flow to the other side) and
// reported as skipped, so the framer's memory is bounded by that size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shadowpipe::proxy::protocol {

// Codes of the untyped first messages a client sends.
inline constexpr uint32_t kProtocol3 = 196608;         // 3.0 StartupMessage
inline constexpr uint32_t kCancelRequest = 80877102;
inline constexpr uint32_t kSslRequest = 80877103;
inline constexpr uint32_t kGssEncRequest = 80877104;
// PostgreSQL refuses startup packets above this size (MAX_STARTUP_PACKET_LENGTH).
inline constexpr uint32_t kMaxStartupLength = 10000;

uint32_t read_u32(const char* bytes);

// Splits one direction's byte stream into typed messages: a type byte and a
// length that counts itself but not the type.
class MessageFramer {
 public:
  // max_message: the largest message handed over whole (type and length
  // included); larger ones are skipped through.
  explicit MessageFramer(size_t max_message) : max_message_(max_message) {}

  struct Sink {
    virtual ~Sink() = default;
    virtual void message(char type, std::string_view payload) = 0;
    virtual void skipped(char type, uint64_t payload_bytes) = 0;  // over max_message
  };

  // Feeds the next bytes of the stream. false when the stream is not the
  // protocol (a length below 4): the framer stops and stays failed.
  bool feed(std::string_view bytes, Sink& sink);
  bool failed() const { return failed_; }
  // No message is partly received: a message the proxy writes itself may go
  // into the stream here without cutting one of the server's in two.
  bool at_boundary() const { return header_fill_ == 0 && !in_body_; }
  // The type of the last whole message (0 before the first).
  char last_type() const { return last_type_; }

 private:
  size_t max_message_;
  char header_[5] = {};
  size_t header_fill_ = 0;
  bool in_body_ = false;
  bool skipping_ = false;
  char type_ = 0;
  uint64_t remaining_ = 0;  // body bytes still to come
  uint64_t body_size_ = 0;
  std::string body_;
  bool failed_ = false;
  char last_type_ = 0;
};

// Reads a message's fields in order; any read past the end makes ok() false
// and returns empty values, so a short message never reads out of bounds.
class Reader {
 public:
  explicit Reader(std::string_view payload) : rest_(payload) {}
  uint8_t byte();
  int16_t i16();
  int32_t i32();
  std::string_view cstring();          // NUL-terminated
  std::string_view bytes(size_t count);
  bool ok() const { return ok_; }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

// A StartupMessage's parameter (after its length and protocol code: name and
// value pairs of NUL-terminated strings); empty when absent or malformed.
std::string startup_parameter(std::string_view message, std::string_view name);

// An ErrorResponse as a server writes it: severity, SQLSTATE, message.
std::string error_response(std::string_view severity, std::string_view sqlstate, std::string_view message);

// The fields of an ErrorResponse the proxy records.
struct ErrorFields {
  std::string sqlstate;
  std::string message;
  std::string severity;  // non-localized (V), else the localized one (S)
};
ErrorFields parse_error(std::string_view payload);

// Rows of a CommandComplete tag as libpq's PQcmdTuples reports them
// ("INSERT 0 5" -> 5, "UPDATE 3" -> 3, "CREATE TABLE" -> nullopt).
std::optional<int64_t> command_rows(std::string_view tag);

}  // namespace shadowpipe::proxy::protocol
