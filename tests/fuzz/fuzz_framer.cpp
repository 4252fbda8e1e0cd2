// libFuzzer target for protocol/framer: feeds the input once whole and once in pseudo-random
// chunk sizes (derived from the data), and checks the framer's invariants:
//  - never crashes (ASan/UBSan), frames do not depend on how the bytes were split;
//  - a message view is followed by input_padding readable bytes;
//  - a message re-framed on its own is exactly one identical message;
//  - pending memory never exceeds what QEMU itself would hold for the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "protocol/framer.hpp"

namespace fp = fleetga::protocol;

namespace {

struct out_frame {
  bool error;
  bool extended;
  std::string body;
  bool operator==(const out_frame&) const = default;
};

void drain(fp::framer& fr, std::vector<out_frame>& out) {
  fp::frame f;
  while (fr.next(f)) {
    if (f.type == fp::frame::kind::message) {
      FUZZ_CHECK(!f.text.empty());
      FUZZ_CHECK(f.error.empty());
      volatile unsigned char sink = 0;
      for (std::size_t i = 0; i < fp::input_padding; ++i) sink = sink ^ static_cast<unsigned char>(f.text.data()[f.text.size() + i]);
      (void)sink;
      out.push_back({false, f.extended, std::string(f.text)});
    } else {
      FUZZ_CHECK(f.error.substr(0, 5) == "JSON ");
      out.push_back({true, false, std::string(f.error)});
    }
  }
}

void feed(fp::framer& fr, const std::uint8_t* data, std::size_t n, std::vector<out_frame>& out) {
  auto span = fr.prepare(n);
  FUZZ_CHECK(span.size() >= n);
  if (n) std::memcpy(span.data(), data, n);
  fr.commit(n);
  drain(fr, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<out_frame> whole;
  {
    fp::framer fr;
    feed(fr, data, size, whole);
    FUZZ_CHECK(fr.pending_bytes() <= size);
  }

  std::vector<out_frame> chunked;
  {
    fp::framer fr;
    std::uint64_t x = 0x9E3779B97F4A7C15ull ^ size;
    for (std::size_t i = 0; i < size && i < 16; ++i) x = (x ^ data[i]) * 0x100000001B3ull;
    std::size_t pos = 0;
    while (pos < size) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      // Mostly tiny chunks (split tokens everywhere), sometimes large ones.
      std::size_t n = (x & 3) ? 1 + (x >> 8) % 8 : 1 + (x >> 8) % 4096;
      if (n > size - pos) n = size - pos;
      feed(fr, data + pos, n, chunked);
      pos += n;
      // Whitespace inside a message is squeezed to <= 8 bytes per run, so what is held is
      // never more than the input seen so far.
      FUZZ_CHECK(fr.pending_bytes() <= pos);
    }
  }
  FUZZ_CHECK(whole == chunked);

  // Every message, framed alone (plus one look-ahead byte for top-level scalars), comes back
  // unchanged: the view covers exactly one complete value.
  for (const auto& f : whole) {
    if (f.error) continue;
    std::vector<out_frame> again;
    fp::framer fr;
    const std::string in = f.body + "\n";
    feed(fr, reinterpret_cast<const std::uint8_t*>(in.data()), in.size(), again);
    FUZZ_CHECK(again.size() == 1 && again[0] == f);
    FUZZ_CHECK(fr.pending_bytes() == 0);
  }
  return 0;
}
