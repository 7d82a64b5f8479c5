#include "shadowpipe/sketch.hpp"

#include <algorithm>
#include <cmath>

namespace shadowpipe {

LatencySketch::LatencySketch(double relative_accuracy)
    : gamma_((1 + relative_accuracy) / (1 - relative_accuracy)), log_gamma_(std::log(gamma_)) {}

int LatencySketch::bucket_of(double value) const {
  return static_cast<int>(std::ceil(std::log(value) / log_gamma_));
}

double LatencySketch::value_of(int bucket) const {
  // The midpoint (in relative terms) of the bucket (gamma^(i-1), gamma^i].
  return 2 * std::pow(gamma_, bucket) / (gamma_ + 1);
}

void LatencySketch::add(double value) {
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  if (value <= 0) {
    ++zero_count_;
  } else {
    ++buckets_[bucket_of(value)];
  }
}

void LatencySketch::merge(const LatencySketch& other) {
  if (other.count_ == 0) return;
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  zero_count_ += other.zero_count_;
  for (const auto& [bucket, n] : other.buckets_) buckets_[bucket] += n;
}

double LatencySketch::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1));
  if (rank < zero_count_) return 0;
  uint64_t seen = zero_count_;
  for (const auto& [bucket, n] : buckets_) {
    seen += n;
    if (seen > rank) return std::clamp(value_of(bucket), min_, max_);
  }
  return max_;
}

}  // namespace shadowpipe
