// base64 with qemu-ga's acceptance rules: qbase64_decode() (util/base64.c) first rejects any
// byte outside "A-Za-z0-9+/=\n" (NUL included: QEMU's strlen/strspn stop there, and a JSON
// \u0000 reaches it as the invalid bytes C0 80), then GLib's g_base64_decode() runs, which:
//  * skips '\n';
//  * treats '=' as a digit of value 0 anywhere; in every complete group of 4 digits the
//    second output byte is dropped when the group's 3rd digit is '=', the third output
//    byte when its 4th digit is '=' (so "QQ==QQ==" -> "AA", "QU=D" -> 2 bytes);
//  * silently drops an incomplete trailing group ("QUJD" "QQ" -> "ABC").
#include "protocol/base64.hpp"

#include <array>
#include <cstdint>

namespace fleetga::protocol {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Two output characters for every 12-bit input value.
struct pair_table {
  std::array<char, 8192> t{};
  constexpr pair_table() {
    for (int i = 0; i < 4096; ++i) {
      t[static_cast<std::size_t>(2 * i)] = alphabet[i >> 6];
      t[static_cast<std::size_t>(2 * i + 1)] = alphabet[i & 63];
    }
  }
};
constexpr pair_table pairs;

constexpr std::uint16_t k_pad = 0x40, k_nl = 0x80, k_bad = 0x100;
constexpr std::array<std::uint16_t, 256> make_rank() {
  std::array<std::uint16_t, 256> r{};
  for (auto& x : r) x = k_bad;
  for (int i = 0; i < 64; ++i) r[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint16_t>(i);
  r['='] = k_pad;
  r['\n'] = k_nl;
  return r;
}
constexpr auto rank = make_rank();

}  // namespace

void base64_encode(std::string_view data, std::string& out) {
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  std::size_t base = out.size();
  out.resize(base + (n + 2) / 3 * 4);
  char* o = out.data() + base;
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) | in[i + 2];
    const char* a = &pairs.t[(v >> 12) * 2];
    const char* b = &pairs.t[(v & 0xFFF) * 2];
    o[0] = a[0];
    o[1] = a[1];
    o[2] = b[0];
    o[3] = b[1];
    o += 4;
  }
  if (n - i == 1) {
    std::uint32_t v = std::uint32_t{in[i]} << 16;
    o[0] = alphabet[v >> 18];
    o[1] = alphabet[(v >> 12) & 63];
    o[2] = '=';
    o[3] = '=';
  } else if (n - i == 2) {
    std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8);
    o[0] = alphabet[v >> 18];
    o[1] = alphabet[(v >> 12) & 63];
    o[2] = alphabet[(v >> 6) & 63];
    o[3] = '=';
  }
}

std::optional<std::string> base64_decode(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* e = p + text.size();
  std::string out;
  out.resize(text.size() / 4 * 3 + 3);
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  std::uint16_t seen = 0;  // OR of all ranks seen on the slow path
  for (;;) {
    // Fast path: whole groups of four plain digits.
    while (e - p >= 4) {
      std::uint32_t a = rank[p[0]], b = rank[p[1]], c = rank[p[2]], d = rank[p[3]];
      if ((a | b | c | d) & 0x1C0) break;
      std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
      o[0] = static_cast<unsigned char>(v >> 16);
      o[1] = static_cast<unsigned char>(v >> 8);
      o[2] = static_cast<unsigned char>(v);
      o += 3;
      p += 4;
    }
    if (p == e) break;
    // Slow path (GLib's g_base64_decode_step loop) until a group completes.
    std::uint32_t v = 0;
    int i = 0;
    unsigned char last0 = 0, last1 = 0;
    while (p < e) {
      unsigned char ch = *p++;
      std::uint16_t r = rank[ch];
      seen |= r;
      if (r & (k_nl | k_bad)) continue;
      last1 = last0;
      last0 = ch;
      v = (v << 6) | (r & 63u);
      if (++i == 4) {
        *o++ = static_cast<unsigned char>(v >> 16);
        if (last1 != '=') *o++ = static_cast<unsigned char>(v >> 8);
        if (last0 != '=') *o++ = static_cast<unsigned char>(v);
        break;
      }
    }
    if (i != 4) break;  // input exhausted: an incomplete group is dropped
  }
  if (seen & k_bad) return std::nullopt;
  out.resize(static_cast<std::size_t>(o - reinterpret_cast<unsigned char*>(out.data())));
  return out;
}

}  // namespace fleetga::protocol
