// SessionCapture's entry points and the requests from the client: each becomes an Op awaiting its response; and the session's end.
#include "capture_internal.hpp"

#include <algorithm>
#include <cstdio>

namespace shadowpipe::proxy {

using capture_text::Reader;

SessionCapture::SessionCapture(UnitSink& sink, std::string key, const digest::NormalizationConfig& normalization,
                               CaptureLimits limits)
    : sink_(sink), key_(std::move(key)), normalization_(normalization), limits_(limits) {}

SessionCapture::~SessionCapture() = default;

void SessionCapture::problem(UnitDrop why) {
  if (kTrace) std::fprintf(stderr, "trace: problem %s\n", std::string(to_string(why)).c_str());
  if (!unit_problem_) unit_problem_ = why;
}

SessionCapture::Clock::time_point SessionCapture::start_of(const Op& op) const {
  return std::max(op.arrived, last_completion_);
}

// ---- frontend -----------------------------------------------------------

void SessionCapture::frontend(char type, std::string_view payload, Clock::time_point now) {
  if (kTrace) std::fprintf(stderr, "trace: F %c %zu ops=%zu\n", type, payload.size(), ops_.size());
  if (disabled_) return;
  Reader reader(payload);
  // After an error in the extended protocol the server skips every message
  // up to Sync: they get no response, so none is expected.
  if (discarding_ && type != 'S') return;
  switch (type) {
    case 'Q':
      ops_.push_back(Op{OpKind::query, std::string(reader.cstring()), now});
      break;
    case 'P': {
      Op op{OpKind::parse, std::string(reader.cstring()), now};
      op.text.assign(reader.cstring());
      const int16_t count = reader.i16();
      for (int16_t i = 0; i < count && reader.ok(); ++i) op.param_types.push_back(static_cast<uint32_t>(reader.i32()));
      ops_.push_back(std::move(op));
      break;
    }
    case 'B': {
      Op op{OpKind::bind, std::string(reader.cstring()), now};
      op.text.assign(reader.cstring());
      std::vector<int16_t> formats(static_cast<size_t>(std::max<int16_t>(reader.i16(), 0)));
      for (auto& format : formats) format = reader.i16();
      const int16_t count = reader.i16();
      for (int16_t i = 0; i < count && reader.ok(); ++i) {
        const size_t index = static_cast<size_t>(i);
        const int16_t format = formats.empty() ? 0 : formats.size() == 1 ? formats[0] : index < formats.size() ? formats[index] : 0;
        const int32_t length = reader.i32();
        if (length < 0) {
          op.params.emplace_back(std::nullopt);
          continue;
        }
        op.params.emplace_back(std::in_place, reader.bytes(static_cast<size_t>(length)));
        op.param_formats.resize(op.params.size());
        op.param_formats.back() = format;
      }
      op.param_formats.resize(op.params.size());
      op.result_formats.resize(static_cast<size_t>(std::max<int16_t>(reader.i16(), 0)));
      for (auto& format : op.result_formats) format = reader.i16();
      if (!reader.ok() && !op.problem) op.problem = UnitDrop::unmatched;
      ops_.push_back(std::move(op));
      break;
    }
    case 'D': {
      const char what = static_cast<char>(reader.byte());
      ops_.push_back(Op{what == 'S' ? OpKind::describe_statement : OpKind::describe_portal,
                        std::string(reader.cstring()), now});
      break;
    }
    case 'E':
      ops_.push_back(Op{OpKind::execute, std::string(reader.cstring()), now});
      break;
    case 'C': {
      const char what = static_cast<char>(reader.byte());
      Op op{OpKind::close, std::string(reader.cstring()), now};
      op.target = what;
      ops_.push_back(std::move(op));
      break;
    }
    case 'S':
      discarding_ = false;
      ops_.push_back(Op{OpKind::sync, {}, now});
      break;
    case 'F':
      ops_.push_back(Op{OpKind::function, {}, now});
      break;
    case 'd':  // CopyData of a COPY FROM STDIN: kept for the record, up to the bound
    case 'f':  // CopyFail: the COPY fails on the primary; the unit is not recorded
      copy_from_client(type, payload);
      break;
    default:
      // Flush, Terminate, CopyDone, password and SASL messages: no response
      // of their own to match.
      break;
  }
}

void SessionCapture::frontend_skipped(char type, Clock::time_point now) {
  if (disabled_ || (discarding_ && type != 'S')) return;
  switch (type) {
    case 'd': copy_from_client('f', {}); break;  // a CopyData too large to keep
    case 'Q': ops_.push_back(Op{OpKind::query, {}, now, UnitDrop::oversized}); break;
    case 'P':  // its name is in the bytes not read: every statement is in doubt (see ParseComplete)
      ops_.push_back(Op{OpKind::parse, {}, now, UnitDrop::oversized});
      break;
    case 'B':
      ops_.push_back(Op{OpKind::bind, {}, now, UnitDrop::oversized});
      break;
    case 'F': ops_.push_back(Op{OpKind::function, {}, now}); break;
    default: break;
  }
}

void SessionCapture::lost_sync() {
  if (disabled_) return;
  disabled_ = true;
  // What this session writes from here on is not seen: announced once, as a
  // write under its key, so the shadow is known not to follow.
  sink_.dropped(UnitDrop::unmatched, key_);
  statements_.clear();
}

void SessionCapture::closed(UnitDrop why) {
  if (disabled_) return;
  disabled_ = true;
  // Inside a transaction: rolled back by the server. A statement in flight
  // outside one may still commit; its kind is not known before it ends.
  if (!statements_.empty() || in_transaction_ || !ops_.empty()) sink_.dropped(why, std::nullopt);
  statements_.clear();
}

}  // namespace shadowpipe::proxy
