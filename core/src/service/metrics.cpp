#include "shadowpipe/metrics.hpp"

#include "shadowpipe/result.hpp"

#include <prometheus/exposer.h>

namespace shadowpipe::metrics {

Endpoint::Endpoint(const std::string& bind) : registry_(std::make_shared<prometheus::Registry>()) {
  if (bind.empty()) return;
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind);
  } catch (const std::exception& error) {
    throw Failure("cannot serve /metrics on " + bind + ": " + error.what() +
                  " — choose a free port with --metrics-port");
  }
  exposer_->RegisterCollectable(registry_);
}

Endpoint::~Endpoint() = default;

std::string bind_address(const std::string& port_or_address) {
  if (port_or_address.empty() || port_or_address == "0") return "";
  if (port_or_address.find(':') != std::string::npos) return port_or_address;
  return "0.0.0.0:" + port_or_address;
}

}  // namespace shadowpipe::metrics
