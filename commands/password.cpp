// guest-set-user-password (wire spec §3.2; qmp_guest_set_user_password in upstream
// qga/commands-posix.c, >= 9.1 through ga_run_command): chpasswd, or chpasswd -e for a
// crypted password, with "<user>:<password>\n" on its stdin. The helper runs through the
// clock family's platform::system_effects (commands/clock.hpp), so it only really runs in the
// armed agent on the real root; unit tests record it instead.
#include <string.h>  // explicit_bzero

#include <string>
#include <variant>

#include "commands/accounts.hpp"
#include "commands/clock.hpp"
#include "commands/state.hpp"
#include "protocol/args.hpp"
#include "protocol/base64.hpp"

namespace fleetga::commands {
namespace {
struct set_password_args {
  std::string username;
  std::string password;
  bool crypted = false;
};
}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
template <>
struct arg_schema<commands::set_password_args> {
  static constexpr auto members = std::make_tuple(member("username", &commands::set_password_args::username),
                                                  member("password", &commands::set_password_args::password),
                                                  member("crypted", &commands::set_password_args::crypted));
};
}  // namespace fleetga::protocol

namespace fleetga::commands::password_detail {

std::variant<std::string, chpasswd_job> prepare(std::string_view username, std::string_view password_b64,
                                                bool crypted) {
  std::optional<std::string> raw = protocol::base64_decode(password_b64);
  if (!raw) return std::string("Base64 data contains invalid characters");
  // Upstream handles the decoded bytes as a C string: everything from the first NUL on is
  // ignored (also for the newline check).
  if (const auto nul = raw->find('\0'); nul != std::string::npos) raw->resize(nul);
  if (raw->find('\n') != std::string::npos) return std::string("forbidden characters in raw password");
  // QEMU keeps a JSON \u0000 in a string as the bytes C0 80: never ':' or '\n'.
  if (username.find_first_of(":\n") != std::string_view::npos) return std::string("forbidden characters in username");
  chpasswd_job job;
  job.argv = crypted ? std::vector<std::string>{"chpasswd", "-e"} : std::vector<std::string>{"chpasswd"};
  job.input.reserve(username.size() + raw->size() + 2);
  for (char ch : username) {
    if (ch == '\0') job.input += "\xC0\x80";
    else job.input += ch;
  }
  job.input += ':';
  job.input += *raw;
  job.input += '\n';
  return job;
}

}  // namespace fleetga::commands::password_detail

namespace fleetga::commands::handlers {

// Reply: {} (no members, so no member order to check).
task<handler_result> guest_set_user_password(call& c) {
  set_password_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  for (std::size_t i = a.username.find('\0'); i != std::string::npos; i = a.username.find('\0', i + 2))
    a.username.replace(i, 1, "\xC0\x80");  // QEMU's C string of a JSON \u0000
  auto prepared = password_detail::prepare(a.username, a.password, a.crypted);
  if (auto* err = std::get_if<std::string>(&prepared)) co_return protocol::generic(std::move(*err));
  auto& job = std::get<password_detail::chpasswd_job>(prepared);
  // Never the password; the name has no newline by now.
  c.state.audit("guest-set-user-password called, username: " + a.username +
                ", crypted: " + (a.crypted ? "true" : "false"));
  platform::system_effects& fx = *c.state.clock.fx;
  std::optional<std::string> err = co_await offload(c.state.pool, [&fx, &job] {
    return platform::helper_error(fx.run(job.argv, job.input), password_action);
  });
  // The stdin text held the password: wipe it before the memory goes back.
  ::explicit_bzero(job.input.data(), job.input.size());
  if (err) co_return protocol::generic(std::move(*err));
  c.out.begin_object();
  c.out.end_object();
  co_return std::nullopt;
}

}  // namespace fleetga::commands::handlers
