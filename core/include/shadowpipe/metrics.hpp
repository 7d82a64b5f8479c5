// Prometheus metrics of a program: one registry, served on /metrics when a
// port is given (prometheus-cpp's exposer), readable in-process either way.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace prometheus {
class Exposer;
}

namespace shadowpipe::metrics {

class Endpoint {
 public:
  // bind: "127.0.0.1:9101", or empty to serve nothing. Throws Failure when
  // the address cannot be bound, naming it.
  explicit Endpoint(const std::string& bind);
  ~Endpoint();
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// "9101" -> "0.0.0.0:9101"; "host:port" kept; "" or "0" -> "" (disabled).
std::string bind_address(const std::string& port_or_address);

}  // namespace shadowpipe::metrics
