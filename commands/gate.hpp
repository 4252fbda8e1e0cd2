#pragma once
// The command gate (wire spec §4.1 + §5): whether a registered command may run right now.
//
// Everything that changes at run time lives in ONE atomic 64-bit word, so a request costs a
// single acquire load and no lock:
//
//   bits  0..15  support level micro
//   bits 16..31  support level minor
//   bits 32..47  support level major
//   bit  48      frozen (guest-fsfreeze-freeze .. -thaw, or qga.state.isfrozen at start)
//
// The allow/block lists never change after start-up; they are folded into a const
// per-command bitmask when the service is built.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "commands/support_level.hpp"

namespace fleetga::commands {

enum class verdict : std::uint8_t {
  enabled,
  not_allowed,    // allow/block list or frozen: "Command X has been disabled: the command is not allowed"
  level_too_low,  // "Command X has been disabled: host support level A is below B"
};

class gate {
 public:
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  static constexpr std::uint64_t level_mask = (std::uint64_t{1} << 48) - 1;
  static constexpr std::uint64_t frozen_bit = std::uint64_t{1} << 48;

  // `list_allowed` bit i: command i survives the allow and block lists.
  gate(std::uint64_t list_allowed, std::uint64_t freeze_safe) noexcept
      : list_allowed_(list_allowed), freeze_safe_(freeze_safe), word_(minimum_support_level.packed()) {}

  std::uint64_t load() const noexcept { return word_.load(std::memory_order_acquire); }

  static support_level level(std::uint64_t w) noexcept { return support_level::unpack(w & level_mask); }
  static bool frozen(std::uint64_t w) noexcept { return (w & frozen_bit) != 0; }

  void set_level(support_level l) noexcept {
    std::uint64_t w = word_.load(std::memory_order_relaxed);
    while (!word_.compare_exchange_weak(w, (w & ~level_mask) | l.packed(), std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
    }
  }
  void set_frozen(bool on) noexcept {
    if (on) word_.fetch_or(frozen_bit, std::memory_order_acq_rel);
    else word_.fetch_and(~frozen_bit, std::memory_order_acq_rel);
  }

  // The §4.1 order: allow list, block list, frozen (only the freeze-safe six), then level.
  verdict check(std::size_t index, support_level needs, std::uint64_t w) const noexcept {
    const std::uint64_t bit = std::uint64_t{1} << index;
    if (!(list_allowed_ & bit)) return verdict::not_allowed;
    if ((w & frozen_bit) && !(freeze_safe_ & bit)) return verdict::not_allowed;
    if ((w & level_mask) < needs.packed()) return verdict::level_too_low;
    return verdict::enabled;
  }

  std::uint64_t list_allowed() const noexcept { return list_allowed_; }

 private:
  const std::uint64_t list_allowed_;
  const std::uint64_t freeze_safe_;
  std::atomic<std::uint64_t> word_;
};

// The CommandNotFound desc for a disabled command. Upstream >= 9.1 text for the lists and
// frozen state; for the level the same prefix and the reason.
inline std::string disabled_text(std::string_view name, verdict v, support_level have, support_level needs) {
  std::string d = "Command ";
  d += name;
  d += " has been disabled: ";
  if (v == verdict::level_too_low) {
    d += "host support level ";
    d += to_string(have);
    d += " is below ";
    d += to_string(needs);
  } else {
    d += "the command is not allowed";
  }
  return d;
}

}  // namespace fleetga::commands
