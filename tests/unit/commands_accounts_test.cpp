// guest-get-users and guest-ssh-*-authorized-keys through service::handle, on fixture roots:
// utmp/logind trees from tests/data/accounts, and a temporary root with its own etc/passwd
// whose homes live in the temporary directory (no real home is ever touched). The Ssh* cases
// include a port of every upstream /qga/ssh/* case (qga/commands-posix-ssh.c).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

std::string data(std::string_view name) { return std::string(FLEETGA_TEST_DATA) + "/accounts/" + std::string(name); }

const std::string ok = "{\"return\": {}}\n";
std::string err(std::string_view desc) {
  return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(desc) + "\"}}\n";
}
// “ and ” as QEMU's writer prints them.
const std::string lq = "\\u201C", rq = "\\u201D";

// A service on a fixture root.
struct rooted_service {
  fake_system sys;
  commands::inline_offloader pool;
  temp_dir state;
  std::unique_ptr<commands::service> svc;
  explicit rooted_service(std::string root) : sys(std::move(root)) {
    commands::options o;
    o.statedir = state.path;
    svc = std::make_unique<commands::service>(std::move(o), pool, sys);
    auto e = svc->init();
    EXPECT_FALSE(e) << *e;
  }
  std::string operator()(std::string_view json) { return run(*svc, json); }
};

// ---------------------------------------------------------------------------------------
// guest-get-users

TEST(CommandsAccounts, UsersFromUtmp) {
  rooted_service t(data("utmp"));
  // Byte for byte what qemu-ga 7.2 answers for this utmp file (as /run/utmp).
  EXPECT_EQ(t(R"({"execute":"guest-get-users"})"),
            "{\"return\": [{\"login-time\": 1700000050.999999, \"user\": \"alice\"}, "
            "{\"login-time\": 1700000200.000001, \"user\": \"bob\"}, "
            "{\"login-time\": 1700000000, \"user\": \"root\"}]}\n");
}

TEST(CommandsAccounts, UsersOddUtmp) {
  rooted_service t(data("utmp-odd"));
  // qemu-ga 7.2 says "abcdefghijklmnopqrstuvwxyz012345host.example" (it reads past the
  // 32-byte ut_user into ut_host); the rest is the same.
  EXPECT_EQ(t(R"({"execute":"guest-get-users"})"),
            "{\"return\": [{\"login-time\": 1700000000.000001, \"user\": \"abcdefghijklmnopqrstuvwxyz012345\"}, "
            "{\"login-time\": 1700000001.0000019, \"user\": \"j\\u00FCrgen\"}]}\n");
}

TEST(CommandsAccounts, UsersFromLogindWithoutUtmp) {
  rooted_service t(data("logind"));
  EXPECT_EQ(t(R"({"execute":"guest-get-users"})"),
            "{\"return\": [{\"login-time\": 1700000050.000001, \"user\": \"root\"}, "
            "{\"login-time\": 1700000090, \"user\": \"alice\"}, "
            "{\"login-time\": 1700000100.25, \"user\": \"dave\"}]}\n");
}

TEST(CommandsAccounts, UsersNoneAnywhere) {
  rooted_service t(data(""));  // has etc/passwd only
  EXPECT_EQ(t(R"({"execute":"guest-get-users"})"), "{\"return\": []}\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-users","arguments":{}})"), "{\"return\": []}\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-users","arguments":{"x":1}})"), err("Parameter 'x' is unexpected"));
}

// ---------------------------------------------------------------------------------------
// guest-ssh-*-authorized-keys

const bool as_root = ::geteuid() == 0;
const uid_t alice_uid = as_root ? 4242 : ::geteuid();
const gid_t alice_gid = as_root ? 4343 : ::getegid();

// A temporary root with etc/passwd: alice (home exists), bob (home missing).
struct ssh_fixture {
  temp_dir root;
  std::unique_ptr<rooted_service> t;
  ssh_fixture() {
    ::mkdir((root / "etc").c_str(), 0755);
    ::mkdir((root / "home").c_str(), 0755);
    ::mkdir((root / "home/alice").c_str(), 0755);
    EXPECT_EQ(::chown((root / "home/alice").c_str(), alice_uid, alice_gid), 0);
    spit(root / "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
                              "alice:x:" + std::to_string(alice_uid) + ":" + std::to_string(alice_gid) +
                                  ":Alice:/home/alice:/bin/sh\n"
                              "bob:x:4244:4244::/home/bob:/bin/sh\n");
    t = std::make_unique<rooted_service>(root.path);
  }
  std::string operator()(std::string_view json) { return (*t)(json); }
  std::string ssh_dir() const { return root / "home/alice/.ssh"; }
  std::string keys_path() const { return root / "home/alice/.ssh/authorized_keys"; }
  std::string contents() const { return slurp(keys_path()); }
  void set_contents(std::string_view text) {  // test_authorized_keys_set()
    ::mkdir(ssh_dir().c_str(), 0700);
    spit(keys_path(), text);
  }
  std::set<std::string> ssh_entries() const {
    std::set<std::string> s;
    for (auto& e : std::filesystem::directory_iterator(ssh_dir())) s.insert(e.path().filename().string());
    return s;
  }
};

const char* add_key2 = R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo key2 comments"]}})";
const char* add_key1_2 =
    R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo key1 comments","algo key2 comments"]}})";

TEST(CommandsAccounts, SshInvalidUser) {  // /qga/ssh/invalid_user
  ssh_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"","keys":[]}})"),
            err("failed to lookup user '': Success"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"","keys":[]}})"),
            err("failed to lookup user '': Success"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"nosuchuser"}})"),
            err("failed to lookup user 'nosuchuser': Success"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"a/b","keys":["k"]}})"),
            err("failed to lookup user 'a/b': Success"));
}

TEST(CommandsAccounts, SshInvalidKey) {  // /qga/ssh/invalid_key
  ssh_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["not a valid\nkey"]}})"),
            err("invalid OpenSSH public key: 'not a valid\\nkey'"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["not a valid\nkey"]}})"),
            err("invalid OpenSSH public key: 'not a valid\\nkey'"));
  // Keys are checked before the user is looked up, in order.
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"nosuch","keys":["ok","# bad","a\nb"]}})"),
            err("invalid OpenSSH public key: '# bad'"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"nosuch","keys":["ok", "#x"]}})"),
            err("invalid OpenSSH public key: '#x'"));
  EXPECT_FALSE(std::filesystem::exists(t.ssh_dir()));
}

TEST(CommandsAccounts, SshAddKeys) {  // /qga/ssh/add_keys
  ssh_fixture t;
  EXPECT_EQ(t(add_key2), ok);
  EXPECT_EQ(t.contents(), "algo key2 comments");
  EXPECT_EQ(t(add_key1_2), ok);
  // key2 came first, and isn't duplicated
  EXPECT_EQ(t.contents(), "algo key2 comments\nalgo key1 comments");

  struct stat st {};
  ASSERT_EQ(::stat(t.ssh_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, alice_uid);
  EXPECT_EQ(st.st_gid, alice_gid);
  ASSERT_EQ(::stat(t.keys_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, alice_uid);
  EXPECT_EQ(st.st_gid, alice_gid);
  EXPECT_EQ(t.ssh_entries(), std::set<std::string>{"authorized_keys"});
}

TEST(CommandsAccounts, SshAddResetKeys) {  // /qga/ssh/add_reset_keys
  ssh_fixture t;
  EXPECT_EQ(t(add_key1_2), ok);
  EXPECT_EQ(t.contents(), "algo key1 comments\nalgo key2 comments");
  // reset with key2 only
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo key2 comments"],"reset":true}})"),
            ok);
  EXPECT_EQ(t.contents(), "algo key2 comments");
  // empty should clear file
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":[],"reset":true}})"), ok);
  EXPECT_TRUE(std::filesystem::exists(t.keys_path()));
  EXPECT_EQ(t.contents(), "");
  // reset: false is no reset
  EXPECT_EQ(t(add_key2), ok);
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo key3"],"reset":false}})"),
            ok);
  EXPECT_EQ(t.contents(), "algo key2 comments\nalgo key3");
  EXPECT_EQ(t.ssh_entries(), std::set<std::string>{"authorized_keys"});
}

TEST(CommandsAccounts, SshRemoveKeys) {  // /qga/ssh/remove_keys
  ssh_fixture t;
  const std::string authkeys =
      "algo key1 comments\n"
      // originally duplicated
      "algo key1 comments\n"
      "# a commented line\n"
      "algo some-key another\n";
  t.set_contents(authkeys);
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["algo key2 comments"]}})"),
            ok);
  EXPECT_EQ(t.contents(), authkeys);
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["algo key1 comments","algo key2 comments"]}})"),
            ok);
  EXPECT_EQ(t.contents(), "# a commented line\nalgo some-key another\n");
  EXPECT_EQ(t.ssh_entries(), std::set<std::string>{"authorized_keys"});
}

TEST(CommandsAccounts, SshGetKeys) {  // /qga/ssh/get_keys
  ssh_fixture t;
  t.set_contents(
      "algo key1 comments\n"
      "# a commented line\n"
      "algo some-key another\n");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            "{\"return\": {\"keys\": [\"algo some-key another\", \"algo key1 comments\"]}}\n");
}

TEST(CommandsAccounts, SshGetStripsSkipsAndReverses) {
  ssh_fixture t;
  t.set_contents("  algo a  \n\n\t# c\n#d\nalgo b\r\n   \n\x0b algo c \x0c");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            "{\"return\": {\"keys\": [\"\\u000B algo c\", \"algo b\", \"algo a\"]}}\n");  // as qemu-ga 7.2
  t.set_contents("");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            "{\"return\": {\"keys\": []}}\n");
  t.set_contents(std::string("algo x\nalgo y\0algo z\n", 21));  // a C string: ends at the NUL
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            "{\"return\": {\"keys\": [\"algo y\", \"algo x\"]}}\n");
}

TEST(CommandsAccounts, SshGetWithoutFileIsAnError) {
  ssh_fixture t;
  const std::string p = t.keys_path();
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            err("failed to read '" + p + "': Failed to open file " + lq + p + rq + ": No such file or directory"));
  ::mkdir(t.ssh_dir().c_str(), 0700);
  ::mkdir(p.c_str(), 0700);
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            err("failed to read '" + p + "': Error reading file " + lq + p + rq + ": Is a directory"));
}

TEST(CommandsAccounts, SshAddToFileEndingInNewline) {
  // g_strsplit() keeps the empty last line: qemu-ga 7.2 writes "algo a\n\nalgo b" too.
  ssh_fixture t;
  t.set_contents("algo a\n");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo b","algo b","algo a"]}})"),
            ok);
  EXPECT_EQ(t.contents(), "algo a\n\nalgo b");
  // An empty key is a valid key, and the empty line is already there.
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":[""]}})"), ok);
  EXPECT_EQ(t.contents(), "algo a\n\nalgo b");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":[""]}})"), ok);
  EXPECT_EQ(t.contents(), "algo a\nalgo b");
}

TEST(CommandsAccounts, SshRemoveWithoutFileIsSuccess) {
  ssh_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["algo a"]}})"), ok);
  EXPECT_FALSE(std::filesystem::exists(t.ssh_dir()));
  // bob has no home at all: still nothing to remove.
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"bob","keys":[]}})"), ok);
}

TEST(CommandsAccounts, SshRemoveRewritesOwnerAndMode) {
  ssh_fixture t;
  t.set_contents("algo a\n");
  ASSERT_EQ(::chmod(t.keys_path().c_str(), 0644), 0);
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["algo z"]}})"), ok);
  EXPECT_EQ(t.contents(), "algo a\n");
  struct stat st {};
  ASSERT_EQ(::stat(t.keys_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, alice_uid);
}

TEST(CommandsAccounts, SshAddMkdirFailures) {
  ssh_fixture t;
  const std::string bob_ssh = t.root / "home/bob/.ssh";
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"bob","keys":["algo a"]}})"),
            err("failed to create directory '" + bob_ssh + "': No such file or directory"));
  EXPECT_FALSE(std::filesystem::exists(t.root / "home/bob"));
  spit(t.ssh_dir(), "not a directory");
  EXPECT_EQ(t(add_key2), err("failed to create directory '" + t.ssh_dir() + "': File exists"));
  EXPECT_EQ(slurp(t.ssh_dir()), "not a directory");
}

TEST(CommandsAccounts, SshAddKeepsExistingSshDir) {
  ssh_fixture t;
  ASSERT_EQ(::mkdir(t.ssh_dir().c_str(), 0755), 0);
  EXPECT_EQ(t(add_key2), ok);
  struct stat st {};
  ASSERT_EQ(::stat(t.ssh_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // an existing ~/.ssh is not touched
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(t.contents(), "algo key2 comments");
}

// Issue 16, defect 2: links and foreign files the account owner plants in ~/.ssh are refused,
// never followed (qemu-ga 7.2 follows them: add/remove copy the target's lines into a file the
// user owns, get returns them to the host).
struct planted : ssh_fixture {
  std::string secret = root / "shadow";  // stands for /etc/shadow: root's, mode 0600
  planted() {
    spit(secret, "root:$6$secret-hash:19000:0:99999:7:::\n");
    EXPECT_EQ(::chmod(secret.c_str(), 0600), 0);
  }
  void expect_secret_untouched() {
    EXPECT_EQ(slurp(secret), "root:$6$secret-hash:19000:0:99999:7:::\n");
    struct stat st {};
    ASSERT_EQ(::stat(secret.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, ::geteuid());
    EXPECT_EQ(st.st_mode & 07777, 0600u);
  }
};

const char* get_alice = R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})";
const char* remove_alice = R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["x"]}})";

TEST(CommandsAccounts, SshRefusesLinkedKeysFile) {
  planted t;
  ::mkdir(t.ssh_dir().c_str(), 0700);
  ASSERT_EQ(::symlink(t.secret.c_str(), t.keys_path().c_str()), 0);
  const std::string p = t.keys_path();
  const std::string why = err("failed to read '" + p + "': '" + p + "' is a symbolic link; fleetga does not follow it");
  EXPECT_EQ(t(get_alice), why);
  EXPECT_EQ(t(add_key2), why);
  EXPECT_EQ(t(remove_alice), why);
  t.expect_secret_untouched();
  EXPECT_EQ(t.ssh_entries(), std::set<std::string>{"authorized_keys"});  // no copy left in ~/.ssh
  EXPECT_TRUE(std::filesystem::is_symlink(p));
  // reset=true reads nothing: the link itself is replaced, its target is not written.
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo k"],"reset":true}})"),
            ok);
  EXPECT_FALSE(std::filesystem::is_symlink(p));
  EXPECT_EQ(t.contents(), "algo k");
  t.expect_secret_untouched();
}

TEST(CommandsAccounts, SshRefusesLinkedSshDir) {
  planted t;
  const std::string target = t.root / "rootdir";  // stands for a root-owned directory
  ASSERT_EQ(::mkdir(target.c_str(), 0700), 0);
  spit(target + "/authorized_keys", "algo root-only\n");
  ASSERT_EQ(::symlink(target.c_str(), t.ssh_dir().c_str()), 0);
  const std::string p = t.keys_path();
  const std::string why = "'" + t.ssh_dir() + "' is a symbolic link; fleetga does not follow it";
  EXPECT_EQ(t(get_alice), err("failed to read '" + p + "': " + why));
  EXPECT_EQ(t(add_key2), err(why));
  EXPECT_EQ(t(remove_alice), err("failed to read '" + p + "': " + why));
  EXPECT_EQ(slurp(target + "/authorized_keys"), "algo root-only\n");
  std::set<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(target)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, std::set<std::string>{"authorized_keys"});
}

TEST(CommandsAccounts, SshRefusesFifoWithoutBlocking) {
  ssh_fixture t;
  ::mkdir(t.ssh_dir().c_str(), 0700);
  ASSERT_EQ(::mkfifo(t.keys_path().c_str(), 0600), 0);
  const std::string p = t.keys_path();
  EXPECT_EQ(t(get_alice), err("failed to read '" + p + "': '" + p + "' is not a regular file"));
  EXPECT_EQ(t(add_key2), err("failed to read '" + p + "': '" + p + "' is not a regular file"));
}

TEST(CommandsAccounts, SshRefusesFilesOfOtherUsers) {
  if (!as_root) GTEST_SKIP() << "needs root to give files to other users";
  planted t;
  const std::string p = t.keys_path();
  ::mkdir(t.ssh_dir().c_str(), 0700);
  ASSERT_EQ(::chown(t.ssh_dir().c_str(), alice_uid, alice_gid), 0);
  t.set_contents("algo a\n");
  ASSERT_EQ(::chown(p.c_str(), 4244, 4244), 0);  // bob's
  EXPECT_EQ(t(get_alice), err("failed to read '" + p + "': '" + p + "' is owned by uid 4244, not by the user (uid " +
                              std::to_string(alice_uid) + ") or root"));
  // Root's own file is fine (an administrator's managed keys)...
  ASSERT_EQ(::chown(p.c_str(), 0, 0), 0);
  EXPECT_EQ(t(get_alice), "{\"return\": {\"keys\": [\"algo a\"]}}\n");
  // ...unless it has another name: a hard link to a file like /etc/shadow.
  ASSERT_EQ(::unlink(p.c_str()), 0);
  ASSERT_EQ(::link(t.secret.c_str(), p.c_str()), 0);
  EXPECT_EQ(t(get_alice), err("failed to read '" + p + "': '" + p + "' is owned by root and has other hard links"));
  EXPECT_EQ(t(add_key2), err("failed to read '" + p + "': '" + p + "' is owned by root and has other hard links"));
  t.expect_secret_untouched();
  // A ~/.ssh that belongs to another user.
  ASSERT_EQ(::unlink(p.c_str()), 0);
  ASSERT_EQ(::chown(t.ssh_dir().c_str(), 4244, 4244), 0);
  EXPECT_EQ(t(add_key2), err("'" + t.ssh_dir() + "' is owned by uid 4244, not by the user (uid " +
                             std::to_string(alice_uid) + ") or root"));
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(CommandsAccounts, SshAddCreatesSshDirThroughItsDescriptor) {
  ssh_fixture t;
  EXPECT_EQ(t(add_key2), ok);
  struct stat st {};
  ASSERT_EQ(::lstat(t.ssh_dir().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, alice_uid);
  EXPECT_EQ(st.st_gid, alice_gid);
}

TEST(CommandsAccounts, SshKeyWithNul) {
  // QEMU holds a JSON \u0000 as C0 80; that is what lands in the file and comes back.
  ssh_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["algo a\u0000b"]}})"), ok);
  EXPECT_EQ(t.contents(), "algo a\xC0\x80" "b");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            "{\"return\": {\"keys\": [\"algo a\\u0000b\"]}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":["algo a\u0000b"]}})"), ok);
  EXPECT_EQ(t.contents(), "");
}

TEST(CommandsAccounts, SshLookupFailure) {
  ssh_fixture t;
  ::unlink((t.root / "etc/passwd").c_str());
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice"}})"),
            err("failed to lookup user 'alice': No such file or directory"));
}

TEST(CommandsAccounts, SshArguments) {
  ssh_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice"}})"),
            err("Parameter 'keys' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"keys":[]}})"),
            err("Parameter 'username' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":["k"],"reset":null}})"),
            err("Invalid parameter type for 'reset', expected: boolean"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"alice","keys":[1]}})"),
            err("Invalid parameter type for 'keys[0]', expected: string"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"alice","keys":[],"reset":true}})"),
            err("Parameter 'reset' is unexpected"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"alice","keys":[]}})"),
            err("Parameter 'keys' is unexpected"));
  EXPECT_EQ(t(R"({"execute":"guest-ssh-get-authorized-keys"})"), err("Parameter 'username' is missing"));
  EXPECT_FALSE(std::filesystem::exists(t.ssh_dir()));
}

}  // namespace
}  // namespace fleetga::test
