#pragma once
// Sans-I/O framing of the request byte stream, byte-for-byte like QEMU's JSON lexer +
// streamer + parser (wire spec §1.1-§1.2): top-level values are found by structure, lexer
// errors recover exactly as QEMU recovers, limits trip with QEMU's texts, and grammar errors
// (expecting value, duplicate key, ...) are reported with QEMU's descs. A message handed out
// as kind::message is valid QEMU JSON.
//
// The framer owns the input buffer so that a message is contiguous in memory and followed by
// at least `input_padding` readable bytes (simdjson's requirement; frame::text is a
// padded_view, a type only the framer makes), and so memory stays
// bounded whatever the peer sends.
//
// Usage: prepare() -> read into the span -> commit() -> next() until it returns false. Inside
// a pending message each inter-token whitespace run is cut to its first 8 bytes (QEMU does not
// count whitespace against its limits), so a message's text may differ from the wire bytes in
// whitespace only. Held bytes stay below QEMU's own per-message bounds.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace fleetga::protocol {

inline constexpr std::size_t max_token_size = std::size_t{64} << 20;   // QEMU MAX_TOKEN_SIZE
inline constexpr std::size_t max_token_count = std::size_t{2} << 20;   // QEMU MAX_TOKEN_COUNT
inline constexpr std::size_t max_nesting = 1024;                       // QEMU MAX_NESTING
// Readable bytes after every message in the framer's buffer: simdjson's SIMDJSON_PADDING, so
// a message parses in place (static_assert'ed where it is handed to simdjson, request.cpp).
inline constexpr std::size_t input_padding = 64;

class framer;

// A message's text, followed in memory by at least `padding` readable bytes. Only the framer
// makes one, from its own buffer (padding it keeps by construction), so a function that takes a
// padded_view can hand it to simdjson in place. Reads like a std::string_view.
class padded_view {
 public:
  static constexpr std::size_t padding = input_padding;

  constexpr padded_view() noexcept = default;
  constexpr const char* data() const noexcept { return text_.data(); }
  constexpr std::size_t size() const noexcept { return text_.size(); }
  constexpr bool empty() const noexcept { return text_.empty(); }
  constexpr std::string_view view() const noexcept { return text_; }
  constexpr operator std::string_view() const noexcept { return text_; }
  friend constexpr bool operator==(const padded_view& a, std::string_view b) noexcept { return a.text_ == b; }

  // TESTS ONLY (they build frames by hand): `padded` minus its last `padding` bytes, which the
  // test appended as the stand-in for the framer's buffer. `padded` must outlive the view.
  static padded_view for_tests(const std::string& padded) noexcept;
  static padded_view for_tests(std::string&&) = delete;

 private:
  friend class framer;
  constexpr padded_view(const char* text, std::size_t size) noexcept : text_(text, size) {}
  std::string_view text_;
};

struct frame {
  enum class kind : std::uint8_t { message, error };
  kind type = kind::message;
  // kind::message: the complete top-level value, a view into the framer's buffer. Valid until
  // the next prepare()/commit()/next().
  padded_view text;
  // kind::error: QEMU's desc ("JSON parse error, stray '...'"), raw bytes (not JSON-escaped).
  std::string_view error;
  // The message uses syntax only QEMU accepts (single-quoted strings, \' escapes, the
  // overlong C0 80 encoding of NUL): request parsing rewrites it to standard JSON first.
  bool extended = false;
};

class framer {
 public:
  framer();
  ~framer();
  framer(const framer&) = delete;
  framer& operator=(const framer&) = delete;

  // Writable space for at least `at_least` bytes at the end of the buffered input.
  std::span<char> prepare(std::size_t at_least);
  // `n` bytes were written into the span returned by prepare().
  void commit(std::size_t n);
  // Next complete frame, or false when more input is needed.
  bool next(frame& out);
  // Bytes held for a message that is not complete yet (bounded).
  std::size_t pending_bytes() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace fleetga::protocol
