#include "platform/memory.hpp"

#include <malloc.h>

namespace fleetga::platform {

void return_free_heap_memory() noexcept {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace fleetga::platform
