#pragma once
// qemu-ga's config file (wire spec §4.2): a GLib key file whose [general] group gives the
// defaults the command line then overrides, and --dump-conf, which prints the effective
// configuration in the same format.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/options.hpp"

namespace fleetga::agent {

// config_load(): reads `path` into `out`. A missing file is fine unless `required` (-c).
// Returns GLib's error text for "error loading configuration from path: <path>, <text>".
std::optional<std::string> load_config(const std::string& path, bool required, options& out);

// config_dump(): g_key_file_to_data() of the effective configuration, byte for byte as
// qemu-ga 10.2 prints it; fleetga's own keys follow only when they were set.
std::string dump_config(const options& opts);

// qemu-ga's g_list_concat(list, split_list(arg, ",")) for -b/-a and the list keys.
void append_rpc_list(std::vector<std::string>& list, std::string_view arg);

// GLib's key-file value escaping (g_key_file_set_string) and unescaping
// (g_key_file_get_string; nullopt where GLib fails: a bad escape sequence).
std::string keyfile_escape(std::string_view value);
std::optional<std::string> keyfile_unescape(std::string_view raw);

}  // namespace fleetga::agent
