#pragma once
// base64 with qemu-ga's rules (util/base64.c + the guest-file-write charset check).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fleetga::protocol {

// Appends the standard (padded, no line breaks) encoding of `data` to `out`.
void base64_encode(std::string_view data, std::string& out);
// Decodes like qemu_base64_decode(): characters outside A-Za-z0-9+/=\n (and the rest of
// its rules) -> nullopt; the caller reports "Base64 data contains invalid characters".
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace fleetga::protocol
