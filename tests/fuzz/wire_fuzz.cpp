// libFuzzer target: arbitrary bytes into every wire decoder. Beyond "no
// crash, no leak, no hang", it checks the codec's own promises on whatever
// decodes: re-encoding and decoding gives the same record, and a DLQ record
// made from any refused input is itself a valid record.
#include "fuzz_limits.hpp"
#include "shadowpipe/wire.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace shadowpipe;
using namespace shadowpipe::wire;

[[noreturn]] void broken(const char* promise, std::string_view detail = {}) {
  std::fprintf(stderr, "wire_fuzz: broken promise: %s\n%.*s\n", promise, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

template <class Record, class Decode>
void exercise(std::string_view bytes, const Limits& limits, Decode decode) {
  const Result<Record> first = decode(bytes, limits);
  if (first) {
    const std::string encoded = encode(*first);
    const Result<Record> again = decode(encoded, Limits{});
    if (!again) broken("encode() output does not decode", again.error().describe() + "\n" + encoded);
    if (!(*again == *first)) broken("decode(encode(x)) != x");
    return;
  }
  const DeadLetter letter = make_dead_letter(first.error(), "wire_fuzz", "fuzz", 0, 0, bytes, 256);
  if (letter.payload.size() > 256) broken("DLQ payload over max_payload");
  const std::string encoded = encode(letter);
  const Result<DeadLetter> dead = decode_dead_letter(encoded);
  if (!dead) broken("a DLQ record does not decode", dead.error().describe() + "\n" + encoded);
  if (!(*dead == letter)) broken("DLQ record does not round-trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (const Limits& limits : fuzzing::fuzz_limits()) {
    exercise<Request>(bytes, limits, decode_request);
    exercise<ShadowResult>(bytes, limits, decode_result);
    exercise<Mismatch>(bytes, limits, decode_mismatch);
    exercise<Summary>(bytes, limits, decode_summary);
    exercise<DeadLetter>(bytes, limits, decode_dead_letter);
  }
  return 0;
}
