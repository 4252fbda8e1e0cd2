#pragma once
// The host support level (wire spec §5): the highest host capability the management layer
// says it has. Default and minimum 1.0.0; lower values are raised to it.
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fleetga::commands {

struct support_level {
  std::uint16_t major = 1, minor = 0, micro = 0;

  constexpr std::uint64_t packed() const noexcept {
    return (std::uint64_t{major} << 32) | (std::uint64_t{minor} << 16) | micro;
  }
  static constexpr support_level unpack(std::uint64_t w) noexcept {
    return {static_cast<std::uint16_t>(w >> 32), static_cast<std::uint16_t>(w >> 16),
            static_cast<std::uint16_t>(w)};
  }
  // Lexicographic, like ga_has_support_level().
  friend constexpr auto operator<=>(const support_level& a, const support_level& b) noexcept {
    return a.packed() <=> b.packed();
  }
  friend constexpr bool operator==(const support_level&, const support_level&) = default;
};

inline constexpr support_level minimum_support_level{1, 0, 0};

constexpr support_level clamp_to_minimum(support_level l) noexcept {
  return l < minimum_support_level ? minimum_support_level : l;
}

// "MAJ.MIN" or "MAJ.MIN.MIC", decimal components 0..65535, nothing else. Not clamped.
std::optional<support_level> parse_support_level(std::string_view text) noexcept;
// "MAJ.MIN.MIC"
std::string to_string(support_level l);

}  // namespace fleetga::commands
