#pragma once
// GLib key-file reading (g_key_file_load_from_data with G_KEY_FILE_NONE) for the files
// qemu-ga reads that way: os-release (with "[os-release]\n" prepended, as qemu-ga does) and
// qga.state. Values are returned raw, like g_key_file_get_value() (no escape processing).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

struct keyfile_entry {
  std::string group, key, value;
};

class keyfile {
 public:
  // nullopt when GLib would refuse the data (a line that is neither comment, group nor
  // key=value, an invalid key or group name, a key before the first group), with the
  // message of GLib's GError for the first refused line in `error`.
  static std::optional<keyfile> parse(std::string_view data, std::string& error);
  static std::optional<keyfile> parse(std::string_view data) {
    std::string error;
    return parse(data, error);
  }

  // The value GLib would return (the last assignment wins), or nullptr.
  const std::string* get(std::string_view group, std::string_view key) const;
  const std::vector<keyfile_entry>& entries() const noexcept { return entries_; }

 private:
  std::vector<keyfile_entry> entries_;
};

// g_utf8_validate() on the whole buffer: strict UTF-8 (no overlongs, surrogates or values
// above U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

}  // namespace fleetga::platform
