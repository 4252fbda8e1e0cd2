#pragma once
// The one place where replies are framed: {"return": ...} / {"id": ..., "error": ...},
// one line each, the 0xFF delimiter only in front of a guest-sync-delimited reply.
#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/error.hpp"

namespace fleetga::protocol {

// Appends `[0xFF]{"return": ` and returns the size of `out` before it (for rollback).
std::size_t begin_return(std::string& out, bool delimited);
// Appends `, "id": <id>}\n` (or `}\n` when id is empty). `id` is already serialised JSON.
void end_return(std::string& out, std::string_view id);
// Appends `{"id": <id>, "error": {"class": "...", "desc": "..."}}\n` (no id member when empty).
void write_error(std::string& out, const error& e, std::string_view id);
// The same for a desc that is not an `error` yet (a framer error: its text is a view into the
// framer, up to QEMU's 64 MiB token, so no copy is made of it).
void write_error(std::string& out, error_class cls, std::string_view desc, std::string_view id);

}  // namespace fleetga::protocol
