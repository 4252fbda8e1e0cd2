#pragma once
// The accounts family (commands/accounts.cpp): guest-get-users and
// guest-ssh-get/add/remove-authorized-keys.
#include "commands/command.hpp"

namespace fleetga::commands::handlers {

task<handler_result> guest_get_users(call&);
task<handler_result> guest_ssh_get_authorized_keys(call&);
task<handler_result> guest_ssh_add_authorized_keys(call&);
task<handler_result> guest_ssh_remove_authorized_keys(call&);

}  // namespace fleetga::commands::handlers
