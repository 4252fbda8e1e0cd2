#pragma once
// Parses one framed message into a request (wire spec §1.4) with simdjson on-demand over
// the framer's padded buffer: execute, arguments and id are views, no copy of the message.
#include <memory>
#include <string>
#include <string_view>

#include "protocol/error.hpp"
#include "protocol/framer.hpp"

namespace fleetga::protocol {

struct request {
  std::string_view execute;    // command name (decoded)
  std::string_view arguments;  // raw JSON text of the arguments object; empty when absent
  std::string_view id;         // id as QEMU would print it; empty when absent
};

// [A-Za-z0-9_.-]+: every QGA command name; the names request_parser takes without simdjson
// when the request is only {"execute": "name"}.
bool is_plain_command_name(std::string_view name);

class request_parser {
 public:
  request_parser();
  ~request_parser();
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  // On success fills `req` and returns true. On failure fills `err` with the QMP error
  // (texts of §1.4) and `req.id` with the id to echo (empty if none) and returns false.
  // Like QEMU, the id is echoed for every failure once the top-level value is an object
  // (checks run in QEMU's hash order of the request members), never for non-objects.
  // Views stay valid until the next parse() or until the framer's buffer changes.
  // `execute` is decoded (escapes resolved); `arguments` is the raw object text followed by
  // >= input_padding readable bytes (framer buffer, or the parser's padded normalised copy of
  // an extended message), ready for decode_args(); `id` is what QEMU would print: a view of
  // the token for plain integers/ASCII strings/true/false/null, else re-serialised text.
  // Uses a thread_local simdjson parser shared with decode_args(); not re-entrant.
  bool parse(const frame& message, request& req, error& err);

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace fleetga::protocol
