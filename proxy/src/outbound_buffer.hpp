// Outbound: the bytes waiting to be written to one side of a relayed connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace shadowpipe::proxy {

class Outbound {
 public:
  size_t size() const { return data_.size() - head_; }
  bool empty() const { return size() == 0; }
  void append(std::string_view bytes) {
    if (head_ > 0 && head_ == data_.size()) {
      data_.clear();
      head_ = 0;
    }
    data_.append(bytes);
  }
  std::string_view pending() const { return std::string_view(data_).substr(head_); }
  void consume(size_t count) {
    head_ += count;
    if (head_ == data_.size()) {
      data_.clear();
      head_ = 0;
    } else if (head_ > 64 * 1024 && head_ * 2 > data_.size()) {
      data_.erase(0, head_);
      head_ = 0;
    }
  }
  void release() {
    std::string().swap(data_);
    head_ = 0;
  }

 private:
  std::string data_;
  size_t head_ = 0;
};

}  // namespace shadowpipe::proxy
