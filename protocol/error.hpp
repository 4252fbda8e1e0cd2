#pragma once
// Errors are values inside fleetga; protocol/response.cpp turns them into QMP
// {"class", "desc"} in exactly one place.
#include <cstdint>
#include <string>
#include <string_view>

namespace fleetga::protocol {

// The only classes qemu-ga ever produces (wire spec §1.4).
enum class error_class : std::uint8_t { generic_error, command_not_found };

constexpr std::string_view class_name(error_class c) noexcept {
  return c == error_class::command_not_found ? "CommandNotFound" : "GenericError";
}

struct error {
  error_class cls = error_class::generic_error;
  std::string desc;  // UTF-8 (or raw bytes); escaped by the writer
};

inline error generic(std::string desc) { return {error_class::generic_error, std::move(desc)}; }

}  // namespace fleetga::protocol
