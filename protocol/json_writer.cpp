#include "protocol/json_writer.hpp"

#include <charconv>
#include <cstring>

namespace fleetga::protocol {

namespace {

// 1 for bytes that can be copied verbatim (printable ASCII except " and \).
constexpr std::array<std::uint8_t, 256> make_plain() {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0x20; c < 0x7F; ++c) t[static_cast<std::size_t>(c)] = 1;
  t['"'] = 0;
  t['\\'] = 0;
  return t;
}
constexpr auto plain = make_plain();

constexpr char hexdig[] = "0123456789ABCDEF";

void append_u(std::string& out, unsigned cp) {
  char b[6] = {'\\', 'u', hexdig[(cp >> 12) & 15], hexdig[(cp >> 8) & 15], hexdig[(cp >> 4) & 15],
               hexdig[cp & 15]};
  out.append(b, 6);
}

// QEMU mod_utf8_codepoint(s, 6, &end) over a bounded buffer (the end of the view acts like
// QEMU's NUL terminator for "continuation byte missing"). `p` points at a byte >= 0x80.
int mod_utf8_codepoint(const unsigned char* p, const unsigned char* e, const unsigned char** end) {
  static constexpr int min_cp[5] = {0x80, 0x800, 0x10000, 0x200000, 0x4000000};
  unsigned byte = *p++;
  int cp;
  if (byte >= 0xFE) {
    cp = -1;
  } else if ((byte & 0x40) == 0) {
    cp = -1;  // unexpected continuation byte
  } else {
    unsigned len = 0, mask;
    for (mask = 0x80; byte & mask; mask >>= 1) ++len;
    cp = static_cast<int>(byte & (mask - 1));
    for (unsigned i = 1; i < len; ++i) {
      unsigned b = p < e ? *p : 0;
      if ((b & 0xC0) != 0x80) {
        *end = p;
        return -1;  // continuation byte missing
      }
      ++p;
      cp = (cp << 6) | static_cast<int>(b & 0x3F);
    }
    if (cp > 0x10FFFF) {
      cp = -1;
    } else if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
      cp = -1;  // noncharacter
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = -1;  // surrogate
    } else if (cp < min_cp[len - 2] && !(cp == 0 && len == 2)) {
      cp = -1;  // overlong, except C0 80
    }
  }
  *end = p;
  return cp;
}

// The escaping of append_string() over a sink: the writer appends, the counter only counts
// (so a huge string is reserved once, at its exact size, before it is written).
template <class Sink>
void escape_into(std::string_view utf8, Sink& out) {
  auto* p = reinterpret_cast<const unsigned char*>(utf8.data());
  auto* e = p + utf8.size();
  while (p < e) {
    const unsigned char* run = p;
    while (p < e && plain[*p]) ++p;
    if (p != run) out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p == e) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      switch (c) {
        case '"': out.append("\\\"", 2); break;
        case '\\': out.append("\\\\", 2); break;
        case '\b': out.append("\\b", 2); break;
        case '\f': out.append("\\f", 2); break;
        case '\n': out.append("\\n", 2); break;
        case '\r': out.append("\\r", 2); break;
        case '\t': out.append("\\t", 2); break;
        default: out.u(c); break;  // other controls, NUL (QEMU's C0 80), DEL
      }
      continue;
    }
    const unsigned char* next;
    int cp = mod_utf8_codepoint(p, e, &next);
    p = next;
    if (cp < 0) cp = 0xFFFD;
    if (cp > 0xFFFF) {
      out.u(0xD800u + ((static_cast<unsigned>(cp) - 0x10000u) >> 10));
      out.u(0xDC00u + ((static_cast<unsigned>(cp) - 0x10000u) & 0x3FFu));
    } else if (cp < 0x20 || cp >= 0x7F) {
      out.u(static_cast<unsigned>(cp));
    } else {
      char ch = static_cast<char>(cp);  // cannot happen for multi-byte input, kept for clarity
      out.append(&ch, 1);
    }
  }
}

struct string_sink {
  std::string& s;
  void append(const char* p, std::size_t n) { s.append(p, n); }
  void u(unsigned cp) { append_u(s, cp); }
};

struct size_sink {
  std::size_t n = 0;
  void append(const char*, std::size_t k) { n += k; }
  void u(unsigned) { n += 6; }
};

// Strings from this size on are measured before they are written: one extra pass instead of
// the doubling growth of `out`, whose peak (old + new buffer) is what a 64 MiB token of
// invalid UTF-8 (a 384 MiB reply) would cost otherwise. Smaller ones take the single pass.
inline constexpr std::size_t measure_from = std::size_t{1} << 20;

}  // namespace

std::size_t json_writer::escaped_size(std::string_view utf8) {
  size_sink n;
  escape_into(utf8, n);
  return n.n + 2;
}

void json_writer::append_string(std::string& out, std::string_view utf8) {
  // + 64: room for what the caller closes the value with ("}}\n" after an error's desc)
  // without growing a huge buffer again for a few bytes.
  if (utf8.size() >= measure_from) out.reserve(out.size() + escaped_size(utf8) + 64);
  out += '"';
  string_sink sink{out};
  escape_into(utf8, sink);
  out += '"';
}

void json_writer::integer(std::int64_t v) {
  sep();
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  out_.append(b, r.ptr);
}

void json_writer::uinteger(std::uint64_t v) {
  sep();
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  out_.append(b, r.ptr);
}

void append_double(std::string& out, double v) {
  // std::to_chars(general, 17) is specified as printf("%.17g") in the C locale; glibc
  // prints infinities as "inf"/"-inf" and NaN as "nan"/"-nan", which to_chars matches
  // (checked in json_writer_test against snprintf).
  char b[64];
  auto r = std::to_chars(b, b + sizeof b, v, std::chars_format::general, 17);
  out.append(b, r.ptr);
}

void json_writer::number(double v) {
  sep();
  append_double(out_, v);
}

}  // namespace fleetga::protocol
