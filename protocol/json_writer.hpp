#pragma once
// Appends JSON exactly as QEMU's json-writer prints it (wire spec §1.3): ", " and ": "
// separators, pure ASCII output with upper-case \uXXXX (surrogate pairs above the BMP),
// invalid UTF-8 as \uFFFD, doubles as %.17g.
//
// Member order: QEMU prints objects in its hash-table order. qemu_bucket() is constexpr so
// every reply type can state its member order once and have it checked at compile time
// (static_assert(in_qemu_order(...))).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fleetga::protocol {

// QEMU qdict: tdb_hash(key) % 512.
constexpr std::uint32_t qemu_bucket(std::string_view key) noexcept {
  std::uint32_t value = 0x238F13AFu * static_cast<std::uint32_t>(key.size());
  for (std::size_t i = 0; i < key.size(); ++i)
    value += static_cast<std::uint32_t>(static_cast<unsigned char>(key[i])) << (i * 5 % 24);
  return (1103515243u * value + 12345u) % 512u;
}

// True when `printed` (the order a reply writes its members) is the order QEMU prints an
// object whose members were inserted in `inserted` order (schema order). Members that a
// given reply omits don't change the relative order of the rest.
template <std::size_t N, std::size_t M>
constexpr bool in_qemu_order(const std::array<std::string_view, N>& inserted,
                             const std::array<std::string_view, M>& printed) {
  auto rank = [&](std::string_view k) -> std::int64_t {
    for (std::size_t i = 0; i < N; ++i)
      if (inserted[i] == k)  // later insertion comes first within a bucket
        return static_cast<std::int64_t>(qemu_bucket(k)) * 4096 + static_cast<std::int64_t>(N - i);
    return -1;
  };
  for (std::size_t i = 0; i < M; ++i) {
    if (rank(printed[i]) < 0) return false;
    if (i > 0 && rank(printed[i - 1]) >= rank(printed[i])) return false;
  }
  return true;
}

// Appends `v` exactly as C printf("%.17g") prints it (QEMU's double format; inf/nan included).
void append_double(std::string& out, double v);

// The order QEMU prints an object whose members were inserted in `inserted` (schema) order:
// indices into `inserted`, and the names themselves. For replies whose members are written in
// a loop over a table (osinfo, diskstats, cpustats, routes, ...).
template <std::size_t N>
constexpr std::array<std::size_t, N> qemu_print_order(const std::array<std::string_view, N>& inserted) {
  std::array<std::size_t, N> idx{};
  for (std::size_t i = 0; i < N; ++i) idx[i] = i;
  auto rank = [&](std::size_t i) {
    return static_cast<std::int64_t>(qemu_bucket(inserted[i])) * 4096 + static_cast<std::int64_t>(N - i);
  };
  for (std::size_t i = 1; i < N; ++i)  // insertion sort: constexpr-friendly
    for (std::size_t j = i; j > 0 && rank(idx[j - 1]) > rank(idx[j]); --j) {
      auto t = idx[j - 1];
      idx[j - 1] = idx[j];
      idx[j] = t;
    }
  return idx;
}

template <std::size_t N>
constexpr std::array<std::string_view, N> qemu_printed(const std::array<std::string_view, N>& inserted) {
  auto idx = qemu_print_order(inserted);
  std::array<std::string_view, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = inserted[idx[i]];
  return out;
}

class json_writer {
 public:
  explicit json_writer(std::string& out) noexcept : out_(out) {}

  std::string& buffer() noexcept { return out_; }

  void begin_object() { sep(); out_ += '{'; push(); }
  void end_object() { pop(); out_ += '}'; }
  void begin_array() { sep(); out_ += '['; push(); }
  void end_array() { pop(); out_ += ']'; }
  // Member name; the value written next belongs to it. `k` must be plain ASCII without
  // characters that need escaping (every member name of every reply type is).
  void key(std::string_view k) {
    sep();
    out_ += '"';
    out_ += k;
    out_ += "\": ";
    after_key_ = true;
  }

  void string(std::string_view utf8) { sep(); append_string(out_, utf8); }
  void integer(std::int64_t v);
  void uinteger(std::uint64_t v);
  void number(double v);
  void boolean(bool v) { sep(); out_ += v ? "true" : "false"; }
  void null() { sep(); out_ += "null"; }
  // Already-serialised JSON (e.g. a request id re-serialised by request_parser).
  void raw(std::string_view json) { sep(); out_ += json; }

  // QEMU's string escaping, appended to `out` with the surrounding quotes.
  static void append_string(std::string& out, std::string_view utf8);
  // Bytes append_string() writes for `utf8`, quotes included.
  static std::size_t escaped_size(std::string_view utf8);

 private:
  void sep() {
    if (after_key_) { after_key_ = false; return; }
    if (depth_ > 0) {
      if (has_items_ & (std::uint64_t{1} << (depth_ - 1))) out_ += ", ";
      has_items_ |= std::uint64_t{1} << (depth_ - 1);
    }
  }
  void push() { ++depth_; has_items_ &= ~(std::uint64_t{1} << (depth_ - 1)); }
  void pop() { --depth_; }

  std::string& out_;
  unsigned depth_ = 0;            // replies nest far less than 64 levels
  std::uint64_t has_items_ = 0;   // bit d: level d already has a member/element
  bool after_key_ = false;
};

}  // namespace fleetga::protocol
