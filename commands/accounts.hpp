#pragma once
// The accounts family (commands/accounts.cpp): guest-get-users and
// guest-ssh-get/add/remove-authorized-keys; commands/password.cpp: guest-set-user-password.
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/command.hpp"

namespace fleetga::commands {

// ga_run_command()'s action for chpasswd ("child process has failed to set user password: ...").
inline constexpr std::string_view password_action = "set user password";

// guest-set-user-password's checks, exposed for unit tests (password.cpp).
namespace password_detail {
struct chpasswd_job {
  std::vector<std::string> argv;  // {"chpasswd"} or {"chpasswd", "-e"} (PATH search)
  std::string input;              // "<user>:<password>\n" for its stdin
};
// qmp_guest_set_user_password() up to the spawn, in upstream's order: base64 ("Base64 data
// contains invalid characters"; the decoded bytes end at the first NUL, a C string), a
// newline in the password ("forbidden characters in raw password"), ':' or a newline in the
// user name ("forbidden characters in username"). Error text or the job.
std::variant<std::string, chpasswd_job> prepare(std::string_view username, std::string_view password_b64,
                                                bool crypted);
}  // namespace password_detail

}  // namespace fleetga::commands

namespace fleetga::commands::handlers {

task<handler_result> guest_get_users(call&);
task<handler_result> guest_ssh_get_authorized_keys(call&);
task<handler_result> guest_ssh_add_authorized_keys(call&);
task<handler_result> guest_ssh_remove_authorized_keys(call&);
task<handler_result> guest_set_user_password(call&);

}  // namespace fleetga::commands::handlers
