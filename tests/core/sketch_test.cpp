#include "shadowpipe/sketch.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using shadowpipe::LatencySketch;

namespace {
double exact_quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(q * static_cast<double>(values.size() - 1))];
}
}  // namespace

TEST(LatencySketch, QuantilesStayWithinTheRelativeAccuracy) {
  std::mt19937_64 random(42);
  std::lognormal_distribution<double> latency(7.0, 1.2);  // ~1 ms median, long tail
  LatencySketch sketch(0.01);
  std::vector<double> samples;
  for (int i = 0; i < 100'000; ++i) {
    double value = latency(random);
    samples.push_back(value);
    sketch.add(value);
  }
  for (double q : {0.5, 0.9, 0.95, 0.99, 0.999}) {
    const double exact = exact_quantile(samples, q);
    EXPECT_NEAR(sketch.quantile(q), exact, exact * 0.011) << "q=" << q;
  }
  EXPECT_EQ(sketch.count(), 100'000u);
  EXPECT_LT(sketch.bucket_count(), 2'000u) << "memory must not grow with the sample count";
}

TEST(LatencySketch, MergeEqualsOneSketchOfAllSamples) {
  LatencySketch left, right, whole;
  for (int i = 1; i <= 5'000; ++i) {
    (i % 2 ? left : right).add(i);
    whole.add(i);
  }
  left.merge(right);
  EXPECT_EQ(left.count(), whole.count());
  for (double q : {0.1, 0.5, 0.95, 0.99}) EXPECT_DOUBLE_EQ(left.quantile(q), whole.quantile(q));
  EXPECT_EQ(left.max(), 5'000);
  EXPECT_EQ(left.min(), 1);
}

TEST(LatencySketch, EmptyZeroAndSingleValues) {
  LatencySketch sketch;
  EXPECT_EQ(sketch.quantile(0.5), 0);
  sketch.add(0);
  sketch.add(0);
  sketch.add(250);
  EXPECT_EQ(sketch.quantile(0.0), 0);
  EXPECT_NEAR(sketch.quantile(1.0), 250, 2.5);
  EXPECT_EQ(sketch.count(), 3u);
}
