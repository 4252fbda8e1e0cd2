#pragma once
// Giving freed heap memory back to the system.
#include <cstddef>

namespace fleetga::platform {

// malloc_trim(0): glibc returns the free pages of its heap to the system, those in the
// middle too (MADV_DONTNEED), not only the free top that free() trims by itself. For the
// places that have just freed many small-to-medium blocks (guest-exec output is kept in
// 64 KiB blocks, below the agent's 256 KiB mmap threshold): without it an agent that handed
// out 20 × 20 MB of output stayed at ~125 MiB because a later small allocation pinned the
// heap's top. Costs a walk of the free lists and one madvise per free run. No-op without
// glibc's allocator.
void return_free_heap_memory() noexcept;

// Callers trim only after freeing at least this much.
inline constexpr std::size_t trim_after_bytes = std::size_t{1} << 20;

}  // namespace fleetga::platform
