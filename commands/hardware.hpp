#pragma once
// The hardware family (hardware.cpp): vCPUs, memory blocks, disk and CPU statistics, read
// from /proc and /sys through platform/procsys.hpp under the system's root.
#include "commands/command.hpp"

namespace fleetga::commands::handlers {

task<handler_result> guest_get_vcpus(call&);
task<handler_result> guest_set_vcpus(call&);
task<handler_result> guest_get_memory_blocks(call&);
task<handler_result> guest_set_memory_blocks(call&);
task<handler_result> guest_get_memory_block_info(call&);
task<handler_result> guest_get_diskstats(call&);
task<handler_result> guest_get_cpustats(call&);

}  // namespace fleetga::commands::handlers
