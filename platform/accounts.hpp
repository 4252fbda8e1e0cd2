#pragma once
// Accounts on Linux, for guest-get-users and guest-ssh-*-authorized-keys: who is logged in
// (utmpx, else systemd-logind's session files), passwd lookups, and the authorized_keys file
// (read with GLib's error texts, replaced atomically).
//
// Everything here blocks (NSS may ask LDAP; files live in home directories on any
// filesystem) except read_users(), which reads tmpfs files only (see commands/accounts.cpp).
// Every system path is below the injectable root; with a non-empty root, passwd comes from
// <root>/etc/passwd and home directories are taken below the root too (a chroot's view), so
// tests run on a fixture tree and never touch a real home.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

// ---------------------------------------------------------------------------------------
// Logged-in users

struct guest_user {
  std::string name;
  double login_time = 0;  // seconds since the epoch, microseconds as the fraction
  friend bool operator==(const guest_user&, const guest_user&) = default;
};

// qemu-ga's ga_get_login_time(): (double)sec + (double)usec / 1000000, in that order (the
// sum of the two doubles, not one division of the total: the last bit can differ).
double login_time_of(std::int64_t sec, std::int64_t usec) noexcept;

// One entry per user name in first-seen order, keeping the earliest login time.
class user_collector {
 public:
  void add(std::string_view name, double login_time);
  std::vector<guest_user>& users() noexcept { return users_; }

 private:
  std::vector<guest_user> users_;
  std::vector<std::size_t> index_;  // open-addressing hash of users_ (built past a few users)
  void rehash();
};

// The bytes of a utmp file are whole `struct utmpx` records (glibc's layout, 384 bytes on
// every 64-bit Linux); a trailing partial record is ignored (glibc's getutxent too). Every
// USER_PROCESS record is added. ut_user is a fixed 32-byte field that is not always
// NUL-terminated: the name stops at the first NUL or at 32 bytes (qemu-ga would run on into
// ut_host for a 32-byte name).
void collect_utmp(std::string_view records, user_collector& out);

// One systemd-logind session file (/run/systemd/sessions/<id>, KEY=VALUE lines).
struct logind_session {
  std::string user;            // USER=
  std::uint64_t realtime = 0;  // REALTIME= (microseconds since the epoch)
  std::string cls;             // CLASS= (user, user-early, greeter, manager, background, ...)
  std::string state;           // STATE= (online, active, closing)
};
// nullopt when the file has no USER= or no valid REALTIME= (a session still being set up).
std::optional<logind_session> parse_logind_session(std::string_view text);
// Whether a session is a login a utmp USER_PROCESS record would stand for: an interactive
// class (user, user-early, user-light, ... but not user-incomplete) that is not closing.
bool is_login_session(const logind_session& s) noexcept;

enum class users_source : std::uint8_t { utmp, logind, none };

// utmp at `utmp_path` (records in file order); when that file does not exist at all (newer
// distributions build systemd and glibc without utmp), the login sessions found in
// `sessions_dir`, ordered by login time (then session name) so "first seen" is "logged in
// first". Neither there: no users (qemu-ga's answer without utmp). Unreadable files are
// skipped, never an error: qemu-ga cannot fail either.
users_source read_users(const std::string& utmp_path, const std::string& sessions_dir,
                        std::vector<guest_user>& out);

// ---------------------------------------------------------------------------------------
// passwd

struct passwd_entry {
  std::string home;  // pw_dir (below the root when there is one)
  uid_t uid = 0;
  gid_t gid = 0;
};

// g_unix_get_passwd_entry(): an entry, or the errno getpwnam_r() gave — 0 when the user
// simply does not exist (GLib then says "Success", and so does qemu-ga).
struct user_lookup {
  std::optional<passwd_entry> entry;
  int err = 0;
};

// The entry called `name` in passwd(5) text; fields after the home directory are optional.
std::optional<passwd_entry> find_passwd_entry(std::string_view passwd_text, std::string_view name);

// g_build_filename(dir, name): one '/' between the parts whatever their own slashes.
std::string build_filename(std::string_view dir, std::string_view name);

class accounts {
 public:
  virtual ~accounts() = default;
  virtual user_lookup lookup_user(const std::string& name) = 0;
  virtual std::string utmp_path() const = 0;
  virtual std::string sessions_dir() const = 0;
};

class linux_accounts final : public accounts {
 public:
  explicit linux_accounts(std::string root = {}) : root_(std::move(root)) {}
  // root "": getpwnam_r() (NSS). Otherwise <root>/etc/passwd, home = root + pw_dir.
  user_lookup lookup_user(const std::string& name) override;
  std::string utmp_path() const override { return root_ + "/var/run/utmp"; }  // _PATH_UTMPX
  std::string sessions_dir() const override { return root_ + "/run/systemd/sessions"; }

 private:
  std::string root_;
};

// ---------------------------------------------------------------------------------------
// authorized_keys

// Largest authorized_keys file read (qemu-ga has no limit; ~30,000 keys).
inline constexpr std::size_t authorized_keys_max = std::size_t{16} << 20;

// g_file_get_contents() with its error texts ("Failed to open file “…”: …", "Error reading
// file “…”: …", ...); nullopt on success. Content is cut at the first NUL, because qemu-ga
// handles it as a C string. Larger than `max`: "File “…” is too large".
struct read_failure {
  int err = 0;          // errno (EFBIG for too large)
  std::string message;  // GLib's text
};
std::optional<read_failure> read_text_file(const std::string& path, std::size_t max, std::string& out);

// g_strsplit(text, "\n", -1): "" gives no lines, "a\n" gives {"a", ""}.
std::vector<std::string> split_lines(std::string_view text);
// g_strjoinv("\n", lines): no newline added at the end.
std::string join_lines(const std::vector<std::string>& lines);

// stat() says directory / anything exists (g_file_test IS_DIR / EXISTS: symlinks followed).
bool is_directory(const std::string& path) noexcept;
bool path_exists(const std::string& path) noexcept;

// qemu-ga's mkdir_for_user(): mkdir, chown, chmod, with its texts ("failed to create
// directory '…': …"); nullopt on success.
std::optional<std::string> mkdir_for_user(const std::string& path, uid_t uid, gid_t gid, mode_t mode);

// Replaces `path` with `content`, owned by uid:gid, mode 0600, atomically: the data goes to
// an unnamed O_TMPFILE inode in the same directory (a named "<name>.XXXXXX" file where the
// filesystem lacks O_TMPFILE) that gets owner and mode, is fsync()ed, linked and renamed over
// `path`; the directory is fsync()ed after. A crash leaves the old file or the new one, never
// a part of either; every failure removes what it created. Error texts are qemu-ga's
// write_authkeys() ones ("failed to write to '…': <GLib text>", "failed to set ownership of
// directory '…': …" (sic), "failed to set permissions of '…': …"); nullopt on success.
// `unnamed_first` = false goes straight to the named temporary file (tests of that path).
std::optional<std::string> replace_file_for_user(const std::string& path, std::string_view content,
                                                 uid_t uid, gid_t gid, bool unnamed_first = true);
// The same in the directory open as `dir_fd` (`path` = that directory's path + "/" + `name`,
// for the messages): nothing outside that directory can be reached through a link.
std::optional<std::string> replace_file_for_user_at(int dir_fd, const std::string& path, const std::string& name,
                                                    std::string_view content, uid_t uid, gid_t gid,
                                                    bool unnamed_first = true);

// A user's ~/.ssh/authorized_keys, reached so that a symbolic link the account's owner plants
// cannot redirect what the agent (root) reads or writes (qemu-ga follows them: a link to
// /etc/shadow is copied into ~/.ssh by add or remove, and returned to the host by get).
//   - the home directory is opened as passwd names it (root's configuration: links there are
//     the administrator's);
//   - `.ssh` is opened with O_NOFOLLOW: a symbolic link is refused, and so is a directory not
//     owned by the user or root; created by the agent, it is chowned and chmodded through its
//     descriptor, never by path;
//   - `authorized_keys` is opened with O_NOFOLLOW | O_NONBLOCK below that descriptor: a
//     symbolic link, a FIFO, socket or device, a file owned by someone other than the user,
//     and a root-owned file with other hard links are refused;
//   - the new file is written and renamed inside the `.ssh` descriptor (rename(2) replaces a
//     name, never follows it).
// Refusals are errors naming the path and the reason; the texts of everything else are
// qemu-ga's.
class authorized_keys_file {
 public:
  authorized_keys_file(const passwd_entry& user);
  authorized_keys_file(const authorized_keys_file&) = delete;
  authorized_keys_file& operator=(const authorized_keys_file&) = delete;
  ~authorized_keys_file();

  const std::string& path() const noexcept { return path_; }
  const std::string& dir_path() const noexcept { return dir_path_; }

  // Opens ~/.ssh; with `create`, makes it (mode 0700, the user's) when it does not exist, with
  // mkdir_for_user()'s texts. nullopt on success and when ~/.ssh is missing without `create`
  // (read() then fails as opening the file would, exists() is false); a refusal otherwise.
  std::optional<std::string> open_dir(bool create);
  // read_text_file() of authorized_keys below the opened directory; `refused` is set for the
  // refusals above (which are not GLib read errors a caller may choose to ignore).
  std::optional<read_failure> read(std::size_t max, std::string& out, bool& refused);
  // Whether authorized_keys exists (not following a link at that name).
  bool exists() const noexcept;
  // replace_file_for_user() of authorized_keys below the opened directory.
  std::optional<std::string> replace(std::string_view content);

 private:
  passwd_entry user_;
  std::string dir_path_, path_;
  int dir_fd_ = -1;
  int dir_err_ = 0;  // errno opening ~/.ssh, as open(path) would have met it
};

}  // namespace fleetga::platform
