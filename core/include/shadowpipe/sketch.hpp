// A streaming quantile sketch for latencies (DDSketch: logarithmic buckets
// with a relative-accuracy guarantee). Memory grows with the log of the value
// range, not with the sample count, and two sketches merge exactly, so the
// comparator keeps one per fingerprint and side without sorting samples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

namespace shadowpipe {

class LatencySketch {
 public:
  // Every quantile is within relative_accuracy of a true sample value.
  explicit LatencySketch(double relative_accuracy = 0.01);

  void add(double value);  // values <= 0 are counted in a zero bucket
  void merge(const LatencySketch& other);
  // The q-quantile (0 <= q <= 1); 0 when empty.
  double quantile(double q) const;
  uint64_t count() const { return count_; }
  double max() const { return max_; }
  double min() const { return min_; }
  size_t bucket_count() const { return buckets_.size(); }

 private:
  int bucket_of(double value) const;
  double value_of(int bucket) const;

  double gamma_;
  double log_gamma_;
  std::map<int, uint64_t> buckets_;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
  double max_ = 0;
  double min_ = 0;
};

}  // namespace shadowpipe
