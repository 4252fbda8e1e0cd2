// Sans-I/O request framing, behaviourally identical to QEMU's qobject/json-lexer.c,
// json-streamer.c and the grammar/validation half of json-parser.c (see framer.hpp and
// wire spec §1.1-§1.2). This is an independent reimplementation; no QEMU code is used.
//
// Pipeline per byte: lexer state machine -> "streamer" (brace/bracket counts, limits,
// message boundaries) -> a streaming grammar check that records the FIRST error the QEMU
// recursive-descent parser would report for the same token sequence. QEMU only parses a
// message once it is complete, so the recorded error (if any) is handed out when the
// streamer decides the message ended.
//
// Memory: the buffer holds the pending message (tokens, plus at most `ws_keep` bytes of each
// inter-token whitespace run; longer runs are squeezed out in place), so a peer cannot grow
// it beyond QEMU's own per-message limits by sending whitespace.
#include "protocol/framer.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <vector>

namespace fleetga::protocol {
namespace {

// Lexer states (mirroring QEMU's json_lexer_state; start == IN_START).
enum class lex_state : std::uint8_t {
  start,
  recovery,
  dq,
  dq_esc,
  sq,
  sq_esc,
  zero,
  sign,
  digits,
  mantissa,
  mantissa_digits,
  exp_e,
  exp_sign,
  exp_digits,
  keyword,
};

// The tokens QEMU's lexer hands its streamer (JSON_LCURLY ... JSON_STRING).
enum class token_kind : std::uint8_t { lcurly, rcurly, lsquare, rsquare, colon, comma, integer, flt, keyword, string };

// What the streaming grammar expects next (positions in QEMU's parse_object/parse_array).
enum class expectation : std::uint8_t {
  top,        // first token of a message (parse_value)
  arr_first,  // after '[': value or ']'
  arr_value,  // after ',' in a list: value
  arr_sep,    // after a list element: ',' or ']'
  obj_first,  // after '{': key (any value, must turn out a string) or '}'
  obj_key,    // after ',' in a dict: key
  obj_colon,  // after a key: ':'
  obj_value,  // after ':': value
  obj_sep,    // after a member value: ',' or '}'
  done,       // top-level value complete
};

// Role of a value in its parent.
enum class role : std::uint8_t { top, elem, key, value };

// Inter-token whitespace bytes kept per run inside a pending message; the rest is squeezed out.
constexpr std::size_t ws_keep = 8;
// QEMU formats parser errors into a 1024-byte buffer (vsnprintf), so the message part of a
// parse error is cut to 1023 bytes (matters for absurdly long keywords).
constexpr std::size_t parse_error_max = 1023;

constexpr std::size_t initial_capacity = 16 * 1024;
constexpr std::size_t shrink_threshold = 4u << 20;
constexpr std::size_t err_keep_capacity = 64 * 1024;  // larger error texts are freed after use

// START-state byte classes.
enum : std::uint8_t {
  S_ERR = 0,
  S_WS,
  S_LCURLY,
  S_RCURLY,
  S_LSQUARE,
  S_RSQUARE,
  S_COLON,
  S_COMMA,
  S_DQ,
  S_SQ,
  S_ZERO,
  S_DIGIT,
  S_MINUS,
  S_ALPHA,
};

// String-state byte classes.
enum : std::uint8_t { C_PLAIN = 0, C_HIGH, C_DQ, C_SQ, C_BS, C_BAD };

struct tables {
  std::array<std::uint8_t, 256> start{};
  std::array<std::uint8_t, 256> str{};
  std::array<bool, 256> ws{};
  std::array<bool, 256> resync{};  // where recovery stops (byte is re-lexed from START)
  std::array<bool, 256> lower{};
  std::array<bool, 256> digit{};
  std::array<bool, 256> fast_str{};  // string bytes the fast path takes: ASCII but '"' '\\' '\''

  constexpr tables() {
    for (int c = 0; c < 256; ++c) {
      start[c] = S_ERR;
      if (c < 0x20 || c >= 0xFE) {
        str[c] = C_BAD;
      } else if (c >= 0x80) {
        str[c] = C_HIGH;
      } else {
        str[c] = C_PLAIN;
      }
      resync[c] = (c < 0x20 && c != '\t') || c >= 0xFE;
      lower[c] = c >= 'a' && c <= 'z';
      fast_str[c] = c >= 0x20 && c <= 0x7E && c != '"' && c != '\\' && c != '\'';
      digit[c] = c >= '0' && c <= '9';
      if (lower[c]) start[c] = S_ALPHA;
      if (c >= '1' && c <= '9') start[c] = S_DIGIT;
    }
    str['"'] = C_DQ;
    str['\''] = C_SQ;
    str['\\'] = C_BS;
    for (unsigned char c : {' ', '\t', '\r', '\n'}) {
      ws[c] = true;
      start[c] = S_WS;
    }
    for (unsigned char c : {'[', ']', '{', '}', ':', ','}) resync[c] = true;
    start['{'] = S_LCURLY;
    start['}'] = S_RCURLY;
    start['['] = S_LSQUARE;
    start[']'] = S_RSQUARE;
    start[':'] = S_COLON;
    start[','] = S_COMMA;
    start['"'] = S_DQ;
    start['\''] = S_SQ;
    start['0'] = S_ZERO;
    start['-'] = S_MINUS;
  }
};

// The byte classes every lexer state and the fast path look bytes up in.
constexpr tables char_class{};

int hexval(std::uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at s (stops at the first non-hex byte, so never reads past a closing
// quote); -1 if not all four are hex.
int hex4(const std::uint8_t* s) {
  int cp = 0;
  for (int i = 0; i < 4; ++i) {
    int v = hexval(s[i]);
    if (v < 0) return -1;
    cp = (cp << 4) | v;
  }
  return cp;
}

bool valid_codepoint(long cp) {
  if (cp < 0 || cp > 0x10FFFF) return false;
  if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return false;  // noncharacters
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;                               // surrogates
  return true;
}

// Modified UTF-8 encoding (U+0000 as C0 80), appended to out.
void encode_mutf8(std::string& out, long cp) {
  if (cp > 0 && cp <= 0x7F) {
    out.push_back(static_cast<char>(cp));
  } else if (cp <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | ((cp >> 6) & 0x1F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | ((cp >> 12) & 0x0F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | ((cp >> 18) & 0x07)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decode one modified-UTF-8 sequence starting at s (s[0] >= 0x80). Same acceptance as QEMU's
// mod_utf8_codepoint(s, 6, ...): well-formed, in range, not a surrogate, not one of the 66
// noncharacters, not overlong except C0 80. Continuation bytes are checked one at a time, so
// the closing quote stops it. Returns the code point or -1; *len gets the sequence length.
long decode_mutf8(const std::uint8_t* s, std::size_t* len) {
  static constexpr long min_cp[5] = {0x80, 0x800, 0x10000, 0x200000, 0x4000000};
  unsigned byte = s[0];
  *len = 1;
  if (byte >= 0xFE || (byte & 0x40) == 0) return -1;
  unsigned n = 0;
  unsigned mask = 0x80;
  for (; byte & mask; mask >>= 1) ++n;
  long cp = byte & (mask - 1);
  for (unsigned i = 1; i < n; ++i) {
    unsigned b = s[i];
    if ((b & 0xC0) != 0x80) return -1;
    *len = i + 1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp > 0x10FFFF) return -1;
  if (!valid_codepoint(cp)) return -1;
  if (cp < min_cp[n - 2] && !(cp == 0 && n == 2)) return -1;
  return cp;
}

std::uint64_t hash_bytes(const char* s, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(s[i]);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

struct framer::impl {
  // ---- buffer -------------------------------------------------------------------------
  std::unique_ptr<char[]> buf;
  std::size_t cap = 0;
  std::size_t end = 0;   // committed bytes end here
  std::size_t scan = 0;  // next byte to lex

  // ---- lexer --------------------------------------------------------------------------
  lex_state lex = lex_state::start;
  std::size_t tok_start = 0;  // physical start of the token being lexed
  bool str_bs = false;        // current string has a backslash
  bool str_high = false;      // current string has a byte >= 0x80

  // ---- streamer -----------------------------------------------------------------------
  // Signed: a stray '}' or ']' drives a count negative, which ends the message (emit rule).
  std::int64_t brace = 0;
  std::int64_t bracket = 0;
  std::size_t token_count = 0;
  std::size_t tok_bytes = 0;
  std::size_t msg_start = 0;  // physical start of the pending message (its first token)
  // Whitespace squeezing: bytes [seg, scan) are kept bytes that logically live `gap` bytes
  // lower; they are moved lazily (at the next squeeze, at message end, at end of input).
  std::size_t gap = 0;
  std::size_t seg = 0;
  std::size_t ws_run = 0;

  // ---- grammar ------------------------------------------------------------------------
  struct level {
    std::uint32_t first_key;  // index into keys of this object's first member key
    bool is_object;
    bool dup_pending;  // the member being parsed repeats an earlier key
    role r;            // role of this container in its parent
  };
  bool grammar_failed = false;  // a grammar error was recorded for the pending message
  expectation expect = expectation::top;
  std::vector<level> stack;
  bool extended = false;

  // Member keys of the open objects, innermost object last (entries are pushed and popped in
  // LIFO order, so a chained hash table can pop entries by unlinking bucket heads).
  struct key_entry {
    std::uint64_t hash;
    std::uint32_t off;
    std::uint32_t len;
    std::uint32_t next;  // index+1 of the next entry in the bucket chain, 0 = end
  };
  std::vector<key_entry> keys;
  std::string key_arena;
  std::vector<std::uint32_t> buckets = std::vector<std::uint32_t>(16, 0);

  std::string err;  // text of the last error frame (the frame's view points here)

  impl() { stack.reserve(16); }

  // ---- helpers ------------------------------------------------------------------------
  const std::uint8_t* bytes() const { return reinterpret_cast<const std::uint8_t*>(buf.get()); }

  bool in_token() const { return lex != lex_state::start && lex != lex_state::recovery; }

  std::size_t keep_from() const {
    if (token_count > 0) return msg_start;
    if (in_token()) return tok_start;
    return scan;
  }

  void pop_keys(std::size_t first) {
    if (first >= keys.size()) return;
    key_arena.resize(keys[first].off);
    const std::size_t mask = buckets.size() - 1;
    while (keys.size() > first) {
      const key_entry& e = keys.back();
      buckets[e.hash & mask] = e.next;
      keys.pop_back();
    }
  }

  void reset_message() {
    brace = bracket = 0;
    token_count = 0;
    tok_bytes = 0;
    gap = 0;
    ws_run = 0;
    grammar_failed = false;
    expect = expectation::top;
    stack.clear();
    extended = false;
    pop_keys(0);
    if (keys.capacity() > 4096) {  // give back memory after a huge object
      std::vector<key_entry>().swap(keys);
      std::string().swap(key_arena);
      std::vector<std::uint32_t>(16, 0).swap(buckets);
    }
  }

  void set_parse_error(std::string_view msg) {
    grammar_failed = true;
    err.assign("JSON parse error, ");
    err.append(msg.substr(0, parse_error_max));
  }

  bool error_frame(frame& out) {
    out.type = frame::kind::error;
    out.text = {};
    out.error = err;
    out.extended = false;
    return true;
  }

  bool limit_error(const char* text, frame& out) {
    reset_message();
    err.assign(text);
    return error_frame(out);
  }

  // Lexer error: token text so far is [b, e) (includes the offending byte). QEMU prints it
  // with %s, so it is cut at the first NUL.
  bool stray(std::size_t b, std::size_t e, frame& out) {
    reset_message();
    const char* s = buf.get() + b;
    std::size_t n = e - b;
    if (const void* z = std::memchr(s, 0, n)) n = static_cast<const char*>(z) - s;
    static constexpr std::string_view head = "JSON parse error, stray '";
    err.clear();
    err.reserve(head.size() + n + 1);  // exact: the token may be 64 MiB (no doubling for the ')
    err.append(head);
    err.append(s, n);
    err.push_back('\'');
    lex = lex_state::recovery;
    return error_frame(out);
  }

  void squeeze(std::size_t from, std::size_t to) {
    if (gap > 0) std::memmove(buf.get() + seg - gap, buf.get() + seg, from - seg);
    gap += to - from;
    seg = to;
  }

  void flush_gap_at_end() {
    if (gap == 0) return;
    std::memmove(buf.get() + seg - gap, buf.get() + seg, end - seg);
    if (in_token()) tok_start -= gap;
    end -= gap;
    gap = 0;
  }

  bool finish_message(std::size_t te, frame& out) {
    // Unreachable without QEMU's end-of-input flush (the streamer only ends a message whose
    // prefix is grammatical once the value is complete), kept so no path yields bad JSON.
    if (!grammar_failed && expect != expectation::done) set_parse_error("premature EOI");
    if (grammar_failed) {
      reset_message();
      return error_frame(out);
    }
    if (gap > 0) {
      std::memmove(buf.get() + seg - gap, buf.get() + seg, te - seg);
      te -= gap;
    }
    out.type = frame::kind::message;
    out.text = padded_view(buf.get() + msg_start, te - msg_start);
    out.error = {};
    out.extended = extended;
    reset_message();
    return true;
  }

  // ---- grammar ------------------------------------------------------------------------
  void complete(role r, bool is_string) {
    switch (r) {
      case role::top:
        expect = expectation::done;
        return;
      case role::elem:
        expect = expectation::arr_sep;
        return;
      case role::key:
        if (!is_string) {
          set_parse_error("key is not a string in object");
          return;
        }
        expect = expectation::obj_colon;
        return;
      case role::value:
        if (stack.back().dup_pending) {
          set_parse_error("duplicate key");
          return;
        }
        expect = expectation::obj_sep;
        return;
    }
  }

  void pop_container() {
    level l = stack.back();
    stack.pop_back();
    if (l.is_object) pop_keys(l.first_key);
    complete(l.r, false);
  }

  void add_key(std::size_t off) {
    level& obj = stack.back();
    const char* k = key_arena.data() + off;
    const std::size_t n = key_arena.size() - off;
    const std::uint64_t h = hash_bytes(k, n);
    std::size_t mask = buckets.size() - 1;
    for (std::uint32_t i = buckets[h & mask]; i != 0 && i - 1 >= obj.first_key; i = keys[i - 1].next) {
      const key_entry& e = keys[i - 1];
      if (e.hash == h && e.len == n && std::memcmp(key_arena.data() + e.off, k, n) == 0) {
        obj.dup_pending = true;
        key_arena.resize(off);
        return;
      }
    }
    obj.dup_pending = false;
    if (keys.size() + 1 > buckets.size()) {
      buckets.assign(buckets.size() * 2, 0);
      mask = buckets.size() - 1;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        keys[i].next = buckets[keys[i].hash & mask];
        buckets[keys[i].hash & mask] = static_cast<std::uint32_t>(i + 1);
      }
    }
    keys.push_back({h, static_cast<std::uint32_t>(off), static_cast<std::uint32_t>(n), buckets[h & mask]});
    buckets[h & mask] = static_cast<std::uint32_t>(keys.size());
  }

  // Validate (and for keys decode) a complete string token [s, e) the way QEMU's
  // parse_string() does. Returns false after recording the error.
  bool check_string(const std::uint8_t* s, const std::uint8_t* e, bool is_key) {
    const bool sq = s[0] == '\'';
    if (sq) extended = true;
    const std::uint8_t* p = s + 1;
    const std::uint8_t* const last = e - 1;  // the closing quote
    const std::size_t key_off = key_arena.size();
    if (!str_bs && !str_high) {
      if (is_key) {
        key_arena.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(last - p));
        add_key(key_off);
      }
      return true;
    }
    std::string scratch;
    std::string& out = is_key ? key_arena : scratch;
    while (p < last) {
      const std::uint8_t c = *p;
      if (c == '\\') {
        const std::uint8_t* beg = p;
        const std::uint8_t esc = p[1];
        p += 2;
        switch (esc) {
          case '"':
            if (is_key) out.push_back('"');
            break;
          case '\'':
            extended = true;
            if (is_key) out.push_back('\'');
            break;
          case '\\':
            if (is_key) out.push_back('\\');
            break;
          case '/':
            if (is_key) out.push_back('/');
            break;
          case 'b':
            if (is_key) out.push_back('\b');
            break;
          case 'f':
            if (is_key) out.push_back('\f');
            break;
          case 'n':
            if (is_key) out.push_back('\n');
            break;
          case 'r':
            if (is_key) out.push_back('\r');
            break;
          case 't':
            if (is_key) out.push_back('\t');
            break;
          case 'u': {
            long cp = hex4(p);
            p += 4;  // like QEMU, even when the digits were not all hex (error below)
            if (cp >= 0xD800 && cp <= 0xDBFF && p < last && p[0] == '\\' && p[1] == 'u') {
              cp = 0x10000 + ((cp & 0x3FF) << 10);
              const int trailing = hex4(p + 2);
              if (trailing >= 0xDC00 && trailing <= 0xDFFF) {
                cp |= trailing & 0x3FF;
                p += 6;
              } else {
                cp = -1;
              }
            }
            if (!valid_codepoint(cp)) {
              // "%.*s" of the escape; the token's terminating NUL bounds it.
              const std::uint8_t* stop = std::min(p, e);
              std::string msg(reinterpret_cast<const char*>(beg), static_cast<std::size_t>(stop - beg));
              msg += " is not a valid Unicode character";
              set_parse_error(msg);
              if (is_key) key_arena.resize(key_off);
              return false;
            }
            if (is_key) encode_mutf8(out, cp);
            break;
          }
          default:
            set_parse_error("invalid escape sequence in string");
            if (is_key) key_arena.resize(key_off);
            return false;
        }
      } else if (c < 0x80) {
        if (is_key) out.push_back(static_cast<char>(c));
        ++p;
      } else {
        std::size_t n = 0;
        const long cp = decode_mutf8(p, &n);
        if (cp < 0) {
          set_parse_error("invalid UTF-8 sequence in string");
          if (is_key) key_arena.resize(key_off);
          return false;
        }
        if (cp == 0) extended = true;  // overlong C0 80
        if (is_key) out.append(reinterpret_cast<const char*>(p), n);
        p += n;
      }
    }
    if (is_key) add_key(key_off);
    return true;
  }

  void grammar(token_kind t, std::size_t b, std::size_t e) {
    role r;
    switch (expect) {
      case expectation::arr_first:
        if (t == token_kind::rsquare) return pop_container();
        r = role::elem;
        break;
      case expectation::obj_first:
        if (t == token_kind::rcurly) return pop_container();
        r = role::key;
        break;
      case expectation::top:
        r = role::top;
        break;
      case expectation::arr_value:
        r = role::elem;
        break;
      case expectation::obj_key:
        r = role::key;
        break;
      case expectation::obj_value:
        r = role::value;
        break;
      case expectation::arr_sep:
        if (t == token_kind::comma) {
          expect = expectation::arr_value;
        } else if (t == token_kind::rsquare) {
          pop_container();
        } else {
          set_parse_error("expected separator in list");
        }
        return;
      case expectation::obj_sep:
        if (t == token_kind::comma) {
          expect = expectation::obj_key;
        } else if (t == token_kind::rcurly) {
          pop_container();
        } else {
          set_parse_error("expected separator in dict");
        }
        return;
      case expectation::obj_colon:
        if (t == token_kind::colon) {
          expect = expectation::obj_value;
        } else {
          set_parse_error("missing : in object pair");
        }
        return;
      case expectation::done:
      default:
        // The streamer always ends the message when its top-level value completes.
        assert(false);
        return;
    }
    // A value (or a key, which QEMU parses as a value) starts here.
    switch (t) {
      case token_kind::lcurly:
        stack.push_back({static_cast<std::uint32_t>(keys.size()), true, false, r});
        expect = expectation::obj_first;
        return;
      case token_kind::lsquare:
        stack.push_back({0, false, false, r});
        expect = expectation::arr_first;
        return;
      case token_kind::string:
        if (!check_string(bytes() + b, bytes() + e, r == role::key)) return;
        if (r == role::key) {
          expect = expectation::obj_colon;
          return;
        }
        return complete(r, true);
      case token_kind::integer:
      case token_kind::flt:
        return complete(r, false);
      case token_kind::keyword: {
        const std::string_view kw(buf.get() + b, e - b);
        if (kw != "true" && kw != "false" && kw != "null") {
          std::string msg("invalid keyword '");
          msg.append(kw.substr(0, parse_error_max));
          msg.push_back('\'');
          set_parse_error(msg);
          return;
        }
        return complete(r, false);
      }
      default:
        set_parse_error("expecting value");
        return;
    }
  }

  // ---- streamer (json_message_process_token) -----------------------------------------
  bool token(token_kind t, std::size_t b, std::size_t e, frame& out) {
    switch (t) {
      case token_kind::lcurly:
        ++brace;
        break;
      case token_kind::rcurly:
        --brace;
        break;
      case token_kind::lsquare:
        ++bracket;
        break;
      case token_kind::rsquare:
        --bracket;
        break;
      default:
        break;
    }
    const std::size_t len = e - b;
    if (tok_bytes + len + 1 > max_token_size) return limit_error("JSON token size limit exceeded", out);
    if (token_count + 1 > max_token_count) return limit_error("JSON token count limit exceeded", out);
    if (bracket + brace > static_cast<std::int64_t>(max_nesting)) {
      return limit_error("JSON nesting depth limit exceeded", out);
    }
    if (token_count == 0) msg_start = b;
    ++token_count;
    tok_bytes += len;
    ws_run = 0;
    if (!grammar_failed) grammar(t, b, e);
    // A message ends when both counts are back to zero, or as soon as either goes negative
    // (a stray '}' or ']', reported by the parser as "expecting value" or a separator error).
    if ((brace > 0 || bracket > 0) && brace >= 0 && bracket >= 0) return false;
    return finish_message(e, out);
  }

  // ---- fast path -------------------------------------------------------------------------
  // Nearly every request is a small object of plain parts: ASCII strings without escapes or
  // single quotes, integers, true/false/null, short whitespace runs. Between messages, such a
  // message already complete in the buffer is validated here in one pass (the same grammar,
  // duplicate keys included) and handed out without the token-by-token machinery. Anything
  // else -- other syntax, any error, an incomplete message, deep nesting, many keys, a long
  // whitespace run (which the general path would squeeze) -- returns false having changed
  // nothing, and the general path takes the same bytes. So the fast path decides nothing the
  // general path would decide differently (tests/unit/framer_test.cpp and fuzz_framer feed
  // every input whole and byte by byte, which never completes a message here, and compare).
  static constexpr std::size_t fast_max_bytes = 64 * 1024;
  static constexpr int fast_max_depth = 32;
  static constexpr std::size_t fast_max_keys = 64;

  // [p, q) is the message when true; data[p] == '{'.
  bool fast_message(std::size_t p, std::size_t& q) const {
    const std::uint8_t* const data = bytes();
    const std::size_t lim = std::min(end, p + fast_max_bytes);
    struct span {
      std::uint32_t off, len;
    };
    span keyv[fast_max_keys];
    std::uint8_t first_key[fast_max_depth];
    bool is_obj[fast_max_depth];
    std::size_t nkeys = 0;
    int depth = 0;
    std::size_t i = p;
    // Whitespace between tokens; false at the end of the input or past ws_keep bytes.
    auto skip_ws = [&]() {
      const std::size_t from = i;
      while (i < lim && char_class.ws[data[i]]) ++i;
      return i < lim && i - from <= ws_keep;
    };
    // A plain string at i (data[i] == '"'): [s, e) is its body.
    auto string = [&](std::size_t& s, std::size_t& e) {
      s = ++i;
      while (i < lim && char_class.fast_str[data[i]]) ++i;
      if (i >= lim || data[i] != '"') return false;
      e = i++;
      return true;
    };
    auto open = [&](bool obj) {
      if (depth == fast_max_depth) return false;
      is_obj[depth] = obj;
      first_key[depth] = static_cast<std::uint8_t>(nkeys);
      ++depth;
      ++i;
      return true;
    };
    enum { value, key, after } at = value;
    for (;;) {
      if (at == value) {
        if (!skip_ws()) return false;
        const std::uint8_t c = data[i];
        if (c == '{' || c == '[') {
          if (!open(c == '{')) return false;
          if (!skip_ws()) return false;
          if (data[i] == (c == '{' ? '}' : ']')) {
            ++i;
            --depth;
            at = after;
          } else {
            at = c == '{' ? key : value;
          }
          continue;
        }
        if (c == '"') {
          std::size_t s, e;
          if (!string(s, e)) return false;
        } else if (c == '-' || char_class.digit[c]) {
          // An integer: -?(0|[1-9][0-9]*), ended by a byte that is not a digit, '.', e, E.
          if (c == '-') ++i;
          if (i >= lim || !char_class.digit[data[i]]) return false;
          if (data[i] == '0') {
            ++i;
          } else {
            while (i < lim && char_class.digit[data[i]]) ++i;
          }
          if (i >= lim || char_class.digit[data[i]] || data[i] == '.' || data[i] == 'e' || data[i] == 'E') return false;
        } else if (char_class.lower[c]) {
          const std::size_t s = i;
          while (i < lim && char_class.lower[data[i]]) ++i;
          if (i >= lim) return false;
          const std::string_view kw(reinterpret_cast<const char*>(data) + s, i - s);
          if (kw != "true" && kw != "false" && kw != "null") return false;
        } else {
          return false;
        }
        at = after;
      } else if (at == key) {
        if (!skip_ws() || data[i] != '"') return false;
        std::size_t s, e;
        if (!string(s, e) || nkeys == fast_max_keys) return false;
        const std::size_t n = e - s;
        for (std::size_t k = first_key[depth - 1]; k < nkeys; ++k) {
          if (keyv[k].len == n && std::memcmp(data + keyv[k].off, data + s, n) == 0) return false;
        }
        keyv[nkeys++] = {static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(n)};
        if (!skip_ws() || data[i] != ':') return false;
        ++i;
        at = value;
      } else {  // after a value
        if (depth == 0) {
          q = i;
          return true;
        }
        if (!skip_ws()) return false;
        const std::uint8_t c = data[i];
        const bool obj = is_obj[depth - 1];
        if (c == ',') {
          ++i;
          at = obj ? key : value;
        } else if (c == (obj ? '}' : ']')) {
          ++i;
          nkeys = first_key[--depth];
        } else {
          return false;
        }
      }
    }
  }

  // ---- the scan loop -------------------------------------------------------------------
  bool run(frame& out) {
    // The previous frame's error text is no longer referenced: a huge one (a stray token of
    // up to 64 MiB) gives its memory back rather than staying with an idle agent.
    if (err.capacity() > err_keep_capacity) std::string().swap(err);
    // The committed input is data[0, input_end), both kept in locals (the buffer is written
    // through char pointers, which may alias members).
    const std::uint8_t* const data = bytes();
    const std::size_t input_end = end;
    if (lex == lex_state::start && token_count == 0) {
      // Between messages: whitespace is dropped, then a plain message may take the fast path.
      while (scan < input_end && char_class.ws[data[scan]]) ++scan;
      std::size_t q;
      if (scan < input_end && data[scan] == '{' && fast_message(scan, q)) {
        out.type = frame::kind::message;
        out.text = padded_view(buf.get() + scan, q - scan);
        out.error = {};
        out.extended = false;
        scan = q;
        return true;
      }
    }
    std::size_t p = scan;
    auto lexer_limit = [&]() { return p - tok_start > max_token_size; };
    auto token_limit_error = [&]() {
      lex = lex_state::start;
      return limit_error("JSON token size limit exceeded", out);
    };
    while (p < input_end) {
      switch (lex) {
        case lex_state::start: {
          const std::uint8_t c = data[p];
          token_kind t;
          switch (char_class.start[c]) {
            case S_WS:
              if (token_count == 0) {
                ++p;
                while (p < input_end && char_class.ws[data[p]]) ++p;
              } else {
                while (p < input_end && ws_run < ws_keep && char_class.ws[data[p]]) {
                  ++p;
                  ++ws_run;
                }
                if (p < input_end && char_class.ws[data[p]]) {
                  std::size_t q = p + 1;
                  while (q < input_end && char_class.ws[data[q]]) ++q;
                  squeeze(p, q);
                  p = q;
                }
              }
              continue;
            case S_LCURLY:
              t = token_kind::lcurly;
              break;
            case S_RCURLY:
              t = token_kind::rcurly;
              break;
            case S_LSQUARE:
              t = token_kind::lsquare;
              break;
            case S_RSQUARE:
              t = token_kind::rsquare;
              break;
            case S_COLON:
              t = token_kind::colon;
              break;
            case S_COMMA:
              t = token_kind::comma;
              break;
            case S_DQ:
            case S_SQ:
              tok_start = p++;
              str_bs = str_high = false;
              lex = c == '"' ? lex_state::dq : lex_state::sq;
              continue;
            case S_ZERO:
              tok_start = p++;
              lex = lex_state::zero;
              continue;
            case S_DIGIT:
              tok_start = p++;
              lex = lex_state::digits;
              continue;
            case S_MINUS:
              tok_start = p++;
              lex = lex_state::sign;
              continue;
            case S_ALPHA:
              tok_start = p++;
              lex = lex_state::keyword;
              continue;
            default:  // S_ERR
              tok_start = p++;
              scan = p;
              return stray(tok_start, p, out);
          }
          const std::size_t b = p++;
          if (token(t, b, p, out)) {
            scan = p;
            return true;
          }
          continue;
        }

        case lex_state::recovery:
          while (p < input_end && !char_class.resync[data[p]]) ++p;
          if (p < input_end) lex = lex_state::start;
          continue;

        case lex_state::dq:
        case lex_state::sq: {
          const std::uint8_t quote = lex == lex_state::dq ? C_DQ : C_SQ;
          const std::size_t lim = std::min(input_end, tok_start + max_token_size + 1);
          for (;;) {
            while (p < lim && char_class.str[data[p]] == C_PLAIN) ++p;
            if (p >= lim) break;
            const std::uint8_t k = char_class.str[data[p]];
            if (k == C_HIGH) {
              str_high = true;
              ++p;
              continue;
            }
            if (k == C_BS) {
              str_bs = true;
              ++p;
              lex = lex == lex_state::dq ? lex_state::dq_esc : lex_state::sq_esc;
              break;
            }
            if (k == quote) {
              ++p;
              lex = lex_state::start;
              if (token(token_kind::string, tok_start, p, out)) {
                scan = p;
                return true;
              }
              break;
            }
            if (k == C_DQ || k == C_SQ) {  // the other quote is an ordinary character
              ++p;
              continue;
            }
            ++p;  // C_BAD: control byte, 0xFE, 0xFF
            scan = p;
            return stray(tok_start, p, out);
          }
          if (in_token() && lexer_limit()) {
            scan = p;
            return token_limit_error();
          }
          continue;
        }

        case lex_state::dq_esc:
        case lex_state::sq_esc: {
          const std::uint8_t c = data[p++];
          if (c < 0x20 || c > 0xFD) {
            scan = p;
            return stray(tok_start, p, out);
          }
          lex = lex == lex_state::dq_esc ? lex_state::dq : lex_state::sq;
          if (lexer_limit()) {
            scan = p;
            return token_limit_error();
          }
          continue;
        }

        case lex_state::zero: {
          const std::uint8_t c = data[p];
          if (char_class.digit[c]) {
            ++p;
            scan = p;
            return stray(tok_start, p, out);
          }
          if (c == '.') {
            ++p;
            lex = lex_state::mantissa;
            if (lexer_limit()) {
              scan = p;
              return token_limit_error();
            }
            continue;
          }
          lex = lex_state::start;
          if (token(token_kind::integer, tok_start, p, out)) {
            scan = p;
            return true;
          }
          continue;
        }

        case lex_state::sign: {
          const std::uint8_t c = data[p++];
          if (c == '0') {
            lex = lex_state::zero;
          } else if (c >= '1' && c <= '9') {
            lex = lex_state::digits;
          } else {
            scan = p;
            return stray(tok_start, p, out);
          }
          if (lexer_limit()) {
            scan = p;
            return token_limit_error();
          }
          continue;
        }

        case lex_state::mantissa:
        case lex_state::exp_sign: {
          const std::uint8_t c = data[p++];
          if (!char_class.digit[c]) {
            scan = p;
            return stray(tok_start, p, out);
          }
          lex = lex == lex_state::mantissa ? lex_state::mantissa_digits : lex_state::exp_digits;
          if (lexer_limit()) {
            scan = p;
            return token_limit_error();
          }
          continue;
        }

        case lex_state::exp_e: {
          const std::uint8_t c = data[p++];
          if (c == '+' || c == '-') {
            lex = lex_state::exp_sign;
          } else if (char_class.digit[c]) {
            lex = lex_state::exp_digits;
          } else {
            scan = p;
            return stray(tok_start, p, out);
          }
          if (lexer_limit()) {
            scan = p;
            return token_limit_error();
          }
          continue;
        }

        case lex_state::digits:
        case lex_state::mantissa_digits:
        case lex_state::exp_digits:
        case lex_state::keyword: {
          const bool kw = lex == lex_state::keyword;
          const auto& cls = kw ? char_class.lower : char_class.digit;
          const std::size_t lim = std::min(input_end, tok_start + max_token_size + 1);
          while (p < lim && cls[data[p]]) ++p;
          if (p - tok_start > max_token_size) {
            scan = p;
            return token_limit_error();
          }
          if (p == input_end) continue;
          const std::uint8_t c = data[p];
          if (lex == lex_state::digits) {
            if (c == 'e' || c == 'E') {
              ++p;
              lex = lex_state::exp_e;
              if (lexer_limit()) {
                scan = p;
                return token_limit_error();
              }
              continue;
            }
            if (c == '.') {
              ++p;
              lex = lex_state::mantissa;
              if (lexer_limit()) {
                scan = p;
                return token_limit_error();
              }
              continue;
            }
          } else if (lex == lex_state::mantissa_digits && (c == 'e' || c == 'E')) {
            ++p;
            lex = lex_state::exp_e;
            if (lexer_limit()) {
              scan = p;
              return token_limit_error();
            }
            continue;
          }
          // Terminal reached by look-ahead: c is not consumed and is lexed again from START.
          const token_kind t =
              kw ? token_kind::keyword : (lex == lex_state::digits ? token_kind::integer : token_kind::flt);
          lex = lex_state::start;
          if (token(t, tok_start, p, out)) {
            scan = p;
            return true;
          }
          continue;
        }
      }
    }
    scan = p;
    flush_gap_at_end();
    scan = end;
    return false;
  }

  // ---- buffer management -----------------------------------------------------------------
  void shift(std::size_t head) {
    if (head == 0) return;
    std::memmove(buf.get(), buf.get() + head, end - head);
    end -= head;
    scan -= head;
    tok_start = tok_start >= head ? tok_start - head : 0;
    msg_start = msg_start >= head ? msg_start - head : 0;
    seg = seg >= head ? seg - head : 0;
  }

  void reallocate(std::size_t head, std::size_t new_cap) {
    std::unique_ptr<char[]> nb(new char[new_cap]);
    const std::size_t live = end - head;
    if (live > 0) std::memcpy(nb.get(), buf.get() + head, live);
    buf = std::move(nb);
    cap = new_cap;
    end = live;
    scan -= head;
    tok_start = tok_start >= head ? tok_start - head : 0;
    msg_start = msg_start >= head ? msg_start - head : 0;
    seg = seg >= head ? seg - head : 0;
  }

  std::span<char> prepare(std::size_t at_least) {
    assert(gap == 0);
    if (at_least == 0) at_least = 1;
    const std::size_t head = keep_from();
    const std::size_t live = end - head;
    const std::size_t need = live + at_least + input_padding;
    if (!buf) {
      reallocate(0, std::max(initial_capacity, need));
    } else if (cap > shrink_threshold && need * 4 < cap) {
      // A huge message went through earlier; don't keep its buffer forever.
      reallocate(head, std::max({initial_capacity, need * 2}));
    } else if (cap - end < at_least + input_padding) {
      // Moving the live tail to the front pays when it frees a good share of the buffer;
      // otherwise grow geometrically (both keep the copying amortised O(1) per byte).
      if (head > 0 && cap - live >= std::max(at_least + input_padding, cap / 4)) {
        shift(head);
      } else {
        reallocate(head, std::max(cap * 2, need));
      }
    }
    return {buf.get() + end, cap - input_padding - end};
  }
};

padded_view padded_view::for_tests(const std::string& padded) noexcept {
  assert(padded.size() >= padding);
  return {padded.data(), padded.size() - padding};
}

framer::framer() : p_(std::make_unique<impl>()) {}
framer::~framer() = default;

std::span<char> framer::prepare(std::size_t at_least) { return p_->prepare(at_least); }

void framer::commit(std::size_t n) {
  assert(p_->buf && p_->end + n + input_padding <= p_->cap);
  p_->end += n;
}

bool framer::next(frame& out) { return p_->run(out); }

std::size_t framer::pending_bytes() const noexcept { return p_->end - p_->keep_from(); }

}  // namespace fleetga::protocol
