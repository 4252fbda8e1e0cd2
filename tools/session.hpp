#pragma once
// Recorded sessions (JSON Lines) and the byte splitter record and replay share.
//
// One line per item:  {"t": SECONDS, "conn": N, "dir": "h2a"|"a2h", "json": VALUE}
//                     {"t": SECONDS, "conn": N, "dir": "h2a"|"a2h", "b64": "BASE64"}
//                     {"t": SECONDS, "conn": N, "dir": "open"|"close"}
// `t` is the offset from the start of the recording, `conn` numbers the host connections
// (optional, default 1), `b64` carries bytes that are not JSON (the 0xFF delimiter, garbage).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::host {

// Splits a byte stream into top-level JSON values (by structure, strings aware), 0xFF bytes
// and other bytes, keeping every byte (unlike the protocol framer, which recovers from
// garbage the way QEMU does and so can't say which bytes it skipped).
class byte_splitter {
 public:
  struct item {
    bool is_json;
    std::string bytes;  // the raw bytes of the value, or of the non-JSON run
  };
  // Feeds bytes; complete items are appended to `out`.
  void feed(std::string_view data, std::vector<item>& out);
  // Whatever is pending becomes a non-JSON item (end of stream).
  void flush(std::vector<item>& out);
  bool idle() const { return cur_.empty(); }

 private:
  void emit(std::vector<item>& out, bool json);
  std::string cur_;
  int depth_ = 0;
  bool in_str_ = false, esc_ = false, junk_ = false;
};

// The JSON text of a session line for `bytes` (validated and minified if JSON, else b64).
std::string session_line(double t, int conn, std::string_view dir, const byte_splitter::item& it);

}  // namespace fleetga::host
