// libFuzzer target: decode_request_into, what the comparator calls on every
// request with one record it keeps, against decode_request, which starts
// from an empty record. For any bytes both must give the same record or the
// same error (code, field and message): whatever the kept record held before
// must never leak into the next one, nor change how an input is judged.
//
// Two kept records per limit: one that carries over from input to input, as
// in the comparator (after an error its contents are unspecified, and the
// next decode must not care), and one refilled before each input with a
// request that has every optional member set, so each input is decoded over
// a record with more statements, parameters and columns than it brings.
#include "fuzz_limits.hpp"
#include "schemas/wire_samples.hpp"
#include "shadowpipe/wire.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace shadowpipe;
using namespace shadowpipe::wire;

[[noreturn]] void broken(const char* promise, std::string_view input, const std::string& detail = {}) {
  std::fprintf(stderr, "request_into_fuzz: broken promise: %s\n%s\ninput: %.*s\n", promise, detail.c_str(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void same_as_fresh(std::string_view bytes, const Limits& limits, Request& kept) {
  const Result<Request> fresh = decode_request(bytes, limits);
  const Result<void> decoded = decode_request_into(bytes, kept, limits);
  if (fresh.ok() && !decoded) {
    broken("decode_request_into refused what decode_request accepts", bytes, decoded.error().describe());
  }
  if (!fresh.ok() && decoded) broken("decode_request_into accepted what decode_request refuses", bytes,
                                    fresh.error().describe() + "\nkept: " + encode(kept));
  if (fresh.ok()) {
    if (!(kept == *fresh)) broken("decode_request_into gave another record", bytes,
                                  "fresh: " + encode(*fresh) + "\nkept:  " + encode(kept));
    return;
  }
  const Error& expected = fresh.error();
  const Error& error = decoded.error();
  if (error.code != expected.code || error.field != expected.field || error.message != expected.message) {
    broken("decode_request_into gave another error", bytes,
           "fresh: " + expected.describe() + "\nkept:  " + error.describe());
  }
}

const Request& full_request() {
  static const Request full = [] {
    Request request = samples::request();
    // Longer than most inputs in every list the decoder reuses in place.
    for (int i = 0; i < 3; ++i) request.statements.push_back(request.statements.front());
    for (auto& statement : request.statements) {
      statement.params.push_back(std::nullopt);
      statement.params.push_back(std::string(40, 'p'));
    }
    return request;
  }();
  return full;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // One carried record per limits, as the comparator keeps one per consumer.
  static std::array<Request, 2> carried;
  const auto& limits = fuzzing::fuzz_limits();
  for (size_t i = 0; i < limits.size(); ++i) {
    same_as_fresh(bytes, limits[i], carried[i]);
    Request refilled = full_request();
    same_as_fresh(bytes, limits[i], refilled);
  }
  return 0;
}
