#pragma once
// Every handler, by family (one .cpp per family). Only the command table (table.hpp) needs these.
#include <string>

#include "commands/command.hpp"

namespace fleetga::commands::handlers {

// core.cpp
task<handler_result> guest_sync_delimited(call&);
task<handler_result> guest_sync(call&);
task<handler_result> guest_ping(call&);
task<handler_result> guest_info(call&);
task<handler_result> guest_set_support_level(call&);

// system.cpp
task<handler_result> guest_get_time(call&);
task<handler_result> guest_get_host_name(call&);
task<handler_result> guest_get_timezone(call&);
task<handler_result> guest_get_osinfo(call&);
task<handler_result> guest_get_load(call&);

// file.cpp
task<handler_result> guest_file_open(call&);
task<handler_result> guest_file_close(call&);
task<handler_result> guest_file_read(call&);
task<handler_result> guest_file_write(call&);
task<handler_result> guest_file_seek(call&);
task<handler_result> guest_file_flush(call&);

// fsfreeze.cpp
task<handler_result> guest_fsfreeze_status(call&);

}  // namespace fleetga::commands::handlers

namespace fleetga::commands {
struct agent_state;
// Fills guest-get-osinfo's cache (system.cpp) at start-up: os-release is read before the first
// request, not by it. Blocking (file reads).
void warm_osinfo(agent_state& st);
// ga_osrelease_replace_special() (system.cpp), exposed for its unit test.
std::string osrelease_unquote(std::string value);
}  // namespace fleetga::commands
