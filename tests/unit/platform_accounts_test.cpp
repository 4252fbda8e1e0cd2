#include "platform/accounts.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utmpx.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

namespace pf = platform;

std::string data(std::string_view name) { return std::string(FLEETGA_TEST_DATA) + "/accounts/" + std::string(name); }

// One glibc struct utmpx record, as pututxline() writes it.
std::string utmp_record(short type, std::string_view user, std::int32_t sec, std::int32_t usec,
                        std::string_view host = {}) {
  struct utmpx u;
  std::memset(&u, 0, sizeof u);
  u.ut_type = type;
  if (!user.empty()) std::memcpy(u.ut_user, user.data(), std::min(user.size(), sizeof u.ut_user));
  if (!host.empty()) std::memcpy(u.ut_host, host.data(), std::min(host.size(), sizeof u.ut_host));
  u.ut_tv.tv_sec = sec;
  u.ut_tv.tv_usec = usec;
  return std::string(reinterpret_cast<const char*>(&u), sizeof u);
}

std::vector<pf::guest_user> from_utmp(std::string_view bytes) {
  pf::user_collector c;
  pf::collect_utmp(bytes, c);
  return c.users();
}

// ---------------------------------------------------------------------------------------
// users

TEST(PlatformAccounts, UtmpxLayoutIsGlibcs) {
  // The fixtures (make_utmp.py) and every 64-bit glibc agree on this.
  EXPECT_EQ(sizeof(struct utmpx), 384u);
  EXPECT_EQ(offsetof(struct utmpx, ut_user), 44u);
  EXPECT_EQ(offsetof(struct utmpx, ut_tv), 340u);
}

TEST(PlatformAccounts, LoginTimeIsQemuArithmetic) {
  EXPECT_EQ(pf::login_time_of(1700000050, 999999), 1700000050.0 + 999999.0 / 1000000);
  EXPECT_EQ(pf::login_time_of(1700000000, 0), 1700000000.0);
  EXPECT_EQ(pf::login_time_of(0, 1), 1e-6);
  // The sum of two doubles, not (sec * 1e6 + usec) / 1e6.
  EXPECT_EQ(pf::login_time_of(1700000001, 2), 1700000001.0 + 0.000002);
  EXPECT_EQ(pf::login_time_of(-1, 500000), -0.5);  // a negative int32 ut_tv (past 2038)
}

TEST(PlatformAccounts, CollectorFirstSeenOrderEarliestTime) {
  pf::user_collector c;
  c.add("bob", 20);
  c.add("alice", 30);
  c.add("bob", 10);
  c.add("alice", 40);
  c.add("carol", 5);
  std::vector<pf::guest_user> want{{"bob", 10}, {"alice", 30}, {"carol", 5}};
  EXPECT_EQ(c.users(), want);
}

TEST(PlatformAccounts, CollectorManyUsersHashed) {
  pf::user_collector c;
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 1000; ++i) c.add("user" + std::to_string(i), 1000.0 * (3 - round) + i);
  ASSERT_EQ(c.users().size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(c.users()[i].name, "user" + std::to_string(i));
    EXPECT_EQ(c.users()[i].login_time, 1000.0 + i);
  }
}

TEST(PlatformAccounts, CollectUtmpUserProcessOnly) {
  std::string bytes = utmp_record(BOOT_TIME, "reboot", 1, 0) + utmp_record(LOGIN_PROCESS, "LOGIN", 2, 0) +
                      utmp_record(USER_PROCESS, "alice", 1700000100, 250000) +
                      utmp_record(DEAD_PROCESS, "carol", 3, 0) + utmp_record(INIT_PROCESS, "", 4, 0) +
                      utmp_record(USER_PROCESS, "alice", 1700000050, 999999) +
                      utmp_record(USER_PROCESS, "bob", 1700000200, 1);
  std::vector<pf::guest_user> want{{"alice", 1700000050.0 + 0.999999}, {"bob", 1700000200.0 + 0.000001}};
  EXPECT_EQ(from_utmp(bytes), want);
}

TEST(PlatformAccounts, CollectUtmpOddRecords) {
  // A 32-byte name has no NUL: it ends at the field, not in ut_host (qemu-ga's overread).
  std::string full(32, 'x');
  std::string bytes = utmp_record(USER_PROCESS, full, 10, 0, "host.example") +
                      utmp_record(USER_PROCESS, "", 11, 0) +  // empty names are names too
                      utmp_record(USER_PROCESS, "tail", 12, 0);
  bytes.resize(bytes.size() - 1);  // a partial last record is not a record
  std::vector<pf::guest_user> want{{full, 10}, {"", 11}};
  EXPECT_EQ(from_utmp(bytes), want);
  EXPECT_TRUE(from_utmp("").empty());
  EXPECT_TRUE(from_utmp(std::string(383, '\x07')).empty());
}

TEST(PlatformAccounts, ReadUsersFixtureUtmp) {
  std::vector<pf::guest_user> users;
  EXPECT_EQ(pf::read_users(data("utmp/var/run/utmp"), data("logind/run/systemd/sessions"), users),
            pf::users_source::utmp);
  std::vector<pf::guest_user> want{{"alice", pf::login_time_of(1700000050, 999999)},
                                   {"bob", pf::login_time_of(1700000200, 1)},
                                   {"root", 1700000000}};
  EXPECT_EQ(users, want);
}

TEST(PlatformAccounts, ReadUsersOddUtmp) {
  std::vector<pf::guest_user> users;
  EXPECT_EQ(pf::read_users(data("utmp-odd/var/run/utmp"), "/nonexistent", users), pf::users_source::utmp);
  std::vector<pf::guest_user> want{{"abcdefghijklmnopqrstuvwxyz012345", pf::login_time_of(1700000000, 1)},
                                   {"j\xC3\xBCrgen", pf::login_time_of(1700000001, 2)}};
  EXPECT_EQ(users, want);
}

TEST(PlatformAccounts, ReadUsersWrittenByGlibc) {
  // Records written by glibc's own pututxline() into a private file read back by ours, and
  // by getutxent() for comparison.
  temp_dir d;
  const std::string path = d / "utmp";
  spit(path, "");
  ASSERT_EQ(::utmpxname(path.c_str()), 0);
  ::setutxent();
  struct {
    const char* user;
    const char* line;
    std::int32_t sec, usec;
  } logins[] = {{"zed", "pts/7", 1700000300, 7}, {"amy", "pts/8", 1700000200, 8}, {"zed", "pts/9", 1700000100, 9}};
  for (const auto& l : logins) {
    struct utmpx u;
    std::memset(&u, 0, sizeof u);
    u.ut_type = USER_PROCESS;
    u.ut_pid = 4242;
    std::strncpy(u.ut_line, l.line, sizeof u.ut_line);
    std::strncpy(u.ut_id, l.line + 3, sizeof u.ut_id);
    std::strncpy(u.ut_user, l.user, sizeof u.ut_user);
    u.ut_tv.tv_sec = l.sec;
    u.ut_tv.tv_usec = l.usec;
    ASSERT_NE(::pututxline(&u), nullptr) << std::strerror(errno);
  }
  ::endutxent();
  std::vector<pf::guest_user> users;
  EXPECT_EQ(pf::read_users(path, "/nonexistent", users), pf::users_source::utmp);
  std::vector<pf::guest_user> want{{"zed", pf::login_time_of(1700000100, 9)}, {"amy", pf::login_time_of(1700000200, 8)}};
  EXPECT_EQ(users, want);
  EXPECT_EQ(slurp(path).size(), 3 * sizeof(struct utmpx));
  ::utmpxname("/var/run/utmp");
}

TEST(PlatformAccounts, ReadUsersManyRecordsAcrossReads) {
  temp_dir d;
  std::string bytes;
  for (int i = 0; i < 100; ++i) bytes += utmp_record(USER_PROCESS, "u" + std::to_string(i % 37), 1000 - i, 0);
  spit(d / "utmp", bytes);
  std::vector<pf::guest_user> users;
  pf::read_users(d / "utmp", "/nonexistent", users);
  ASSERT_EQ(users.size(), 37u);
  EXPECT_EQ(users[0].name, "u0");
  EXPECT_EQ(users[0].login_time, 1000 - 74);
  EXPECT_EQ(users[36].name, "u36");
  EXPECT_EQ(users[36].login_time, 1000 - 73);
}

TEST(PlatformAccounts, EmptyUtmpMeansNoUsersNoFallback) {
  temp_dir d;
  spit(d / "utmp", "");
  std::vector<pf::guest_user> users{{"stale", 1}};
  EXPECT_EQ(pf::read_users(d / "utmp", data("logind/run/systemd/sessions"), users), pf::users_source::utmp);
  EXPECT_TRUE(users.empty());
}

TEST(PlatformAccounts, NoUtmpFallsBackToLogind) {
  std::vector<pf::guest_user> users;
  EXPECT_EQ(pf::read_users("/nonexistent/utmp", data("logind/run/systemd/sessions"), users),
            pf::users_source::logind);
  // c2 root (user-early) 1700000050.000001; 6 alice 1700000090; 10 dave and 2 alice both
  // at 1700000100.25 (ties by session name: "10" < "2"). Skipped: 3 (manager), 5 (closing),
  // 7 (greeter), 8 (no REALTIME yet), 9 (background), 2.ref.
  std::vector<pf::guest_user> want{{"root", pf::login_time_of(1700000050, 1)},
                                   {"alice", 1700000090},
                                   {"dave", pf::login_time_of(1700000100, 250000)}};
  EXPECT_EQ(users, want);
}

TEST(PlatformAccounts, NeitherUtmpNorLogind) {
  std::vector<pf::guest_user> users{{"stale", 1}};
  EXPECT_EQ(pf::read_users("/nonexistent/utmp", "/nonexistent/sessions", users), pf::users_source::none);
  EXPECT_TRUE(users.empty());
}

TEST(PlatformAccounts, LogindSkipsWhatIsNotASessionFile) {
  temp_dir d;
  spit(d / "1", "USER=ann\nREALTIME=2000000\nCLASS=user\n");
  ASSERT_EQ(::mkfifo((d / "1.ref").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo((d / "4").c_str(), 0600), 0);    // never opened for a blocking read
  ASSERT_EQ(::mkdir((d / "5").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((d / "1").c_str(), (d / "6").c_str()), 0);  // O_NOFOLLOW
  spit(d / ".#7abc", "USER=tmp\nREALTIME=1\n");     // logind's temporary file while saving
  spit(d / "8", "USER=\nREALTIME=1\n");
  spit(d / "9", std::string(70000, 'x'));           // larger than any session file
  spit(d / "10", "USER=ben\nREALTIME=1000000\r\n"); // CR is part of the value: not a number
  std::vector<pf::guest_user> users;
  EXPECT_EQ(pf::read_users("/nonexistent/utmp", d.path, users), pf::users_source::logind);
  std::vector<pf::guest_user> want{{"ann", 2}};
  EXPECT_EQ(users, want);
}

TEST(PlatformAccounts, ParseLogindSession) {
  auto s = pf::parse_logind_session("# This is private data. Do not parse.\nUID=1000\nUSER=alice\n"
                                    "STATE=active\nCLASS=user\nREALTIME=1700000100250000\nMONOTONIC=5\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->user, "alice");
  EXPECT_EQ(s->realtime, 1700000100250000u);
  EXPECT_EQ(s->cls, "user");
  EXPECT_EQ(s->state, "active");
  EXPECT_TRUE(pf::is_login_session(*s));

  s = pf::parse_logind_session("USER=a b=c\nREALTIME=7");  // no final newline, '=' in value
  ASSERT_TRUE(s);
  EXPECT_EQ(s->user, "a b=c");
  EXPECT_EQ(s->realtime, 7u);
  EXPECT_TRUE(s->cls.empty());
  EXPECT_TRUE(pf::is_login_session(*s));

  EXPECT_FALSE(pf::parse_logind_session(""));
  EXPECT_FALSE(pf::parse_logind_session("USER=alice\n"));
  EXPECT_FALSE(pf::parse_logind_session("REALTIME=5\n"));
  EXPECT_FALSE(pf::parse_logind_session("USER=alice\nREALTIME=0\n"));
  EXPECT_FALSE(pf::parse_logind_session("USER=alice\nREALTIME=-5\n"));
  EXPECT_FALSE(pf::parse_logind_session("USER=alice\nREALTIME=99999999999999999999999\n"));
  EXPECT_FALSE(pf::parse_logind_session("USER\nREALTIME\n"));
}

TEST(PlatformAccounts, LoginSessionClasses) {
  auto with = [](std::string cls, std::string state = "active") {
    pf::logind_session s;
    s.user = "u";
    s.realtime = 1;
    s.cls = std::move(cls);
    s.state = std::move(state);
    return pf::is_login_session(s);
  };
  EXPECT_TRUE(with("user"));
  EXPECT_TRUE(with("user-early"));
  EXPECT_TRUE(with("user-light"));
  EXPECT_TRUE(with("user", "online"));
  EXPECT_FALSE(with("user", "closing"));
  EXPECT_FALSE(with("user-incomplete"));
  EXPECT_FALSE(with("greeter"));
  EXPECT_FALSE(with("lock-screen"));
  EXPECT_FALSE(with("background"));
  EXPECT_FALSE(with("manager"));
  EXPECT_FALSE(with("manager-early"));
  EXPECT_FALSE(with("none"));
}

// ---------------------------------------------------------------------------------------
// passwd

TEST(PlatformAccounts, FindPasswdEntryInThisMachinesPasswd) {
  std::string text = slurp(data("etc/passwd"));
  ASSERT_FALSE(text.empty());
  auto root = pf::find_passwd_entry(text, "root");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->home, "/root");
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  auto pg = pf::find_passwd_entry(text, "postgres");
  ASSERT_TRUE(pg);
  EXPECT_EQ(pg->home, "/var/lib/postgresql");
  EXPECT_EQ(pg->uid, 101u);
  EXPECT_EQ(pg->gid, 104u);
  auto nobody = pf::find_passwd_entry(text, "nobody");
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->home, "/nonexistent");
  EXPECT_EQ(nobody->uid, 65534u);
  EXPECT_FALSE(pf::find_passwd_entry(text, "roo"));
  EXPECT_FALSE(pf::find_passwd_entry(text, "root:x"));
  EXPECT_FALSE(pf::find_passwd_entry(text, ""));
}

TEST(PlatformAccounts, FindPasswdEntryOddLines) {
  const std::string text =
      "\n"
      "short:x:1:1:gecos\n"          // five fields: not an entry
      "baduid:x:one:1::/home/b:/bin/sh\n"
      "big:x:4294967296:1::/home/big:/bin/sh\n"
      ":x:0:0::/:/bin/sh\n"
      "noshell:x:7:8::/home/noshell\n"
      "dup:x:10:10::/first:/bin/sh\n"
      "dup:x:11:11::/second:/bin/sh\n"
      "spaces:x:12:12:A B:/home/with space:/bin/sh\n"
      "last:x:4294967295:4294967294::/l:/bin/sh";
  EXPECT_FALSE(pf::find_passwd_entry(text, "short"));
  EXPECT_FALSE(pf::find_passwd_entry(text, "baduid"));
  EXPECT_FALSE(pf::find_passwd_entry(text, "big"));
  EXPECT_FALSE(pf::find_passwd_entry(text, ""));
  auto e = pf::find_passwd_entry(text, "noshell");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->home, "/home/noshell");
  EXPECT_EQ(e->uid, 7u);
  EXPECT_EQ(e->gid, 8u);
  e = pf::find_passwd_entry(text, "dup");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->home, "/first");
  e = pf::find_passwd_entry(text, "spaces");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->home, "/home/with space");
  e = pf::find_passwd_entry(text, "last");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->uid, 4294967295u);
  EXPECT_EQ(e->gid, 4294967294u);
}

TEST(PlatformAccounts, RootedLookupUsesRootsPasswdAndHome) {
  pf::linux_accounts acc(std::string(FLEETGA_TEST_DATA) + "/accounts");
  auto r = acc.lookup_user("postgres");
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(r.entry->home, std::string(FLEETGA_TEST_DATA) + "/accounts/var/lib/postgresql");
  EXPECT_EQ(r.entry->uid, 101u);
  r = acc.lookup_user("nosuchuser");
  EXPECT_FALSE(r.entry);
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(acc.utmp_path(), std::string(FLEETGA_TEST_DATA) + "/accounts/var/run/utmp");
  EXPECT_EQ(acc.sessions_dir(), std::string(FLEETGA_TEST_DATA) + "/accounts/run/systemd/sessions");

  pf::linux_accounts none("/nonexistent-root");
  r = none.lookup_user("root");
  EXPECT_FALSE(r.entry);
  EXPECT_EQ(r.err, ENOENT);
}

TEST(PlatformAccounts, RealLookupReadOnly) {
  pf::linux_accounts acc;
  auto r = acc.lookup_user("root");
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(r.entry->home, "/root");
  EXPECT_EQ(r.entry->uid, 0u);
  r = acc.lookup_user("fleetga-no-such-user");
  EXPECT_FALSE(r.entry);
  EXPECT_EQ(r.err, 0);  // -> "Success", like GLib
  EXPECT_EQ(acc.utmp_path(), "/var/run/utmp");
  EXPECT_EQ(acc.sessions_dir(), "/run/systemd/sessions");
}

TEST(PlatformAccounts, BuildFilenameLikeGlib) {
  EXPECT_EQ(pf::build_filename("/home/u", ".ssh"), "/home/u/.ssh");
  EXPECT_EQ(pf::build_filename("/home/u/", ".ssh"), "/home/u/.ssh");
  EXPECT_EQ(pf::build_filename("/home/u//", "/.ssh"), "/home/u/.ssh");
  EXPECT_EQ(pf::build_filename("/", ".ssh"), "/.ssh");
  EXPECT_EQ(pf::build_filename("///", ".ssh"), "/.ssh");
  EXPECT_EQ(pf::build_filename("", ".ssh"), ".ssh");
  EXPECT_EQ(pf::build_filename("//srv/u", ".ssh"), "//srv/u/.ssh");
  EXPECT_EQ(pf::build_filename("rel", "authorized_keys"), "rel/authorized_keys");
}

// ---------------------------------------------------------------------------------------
// files

TEST(PlatformAccounts, SplitAndJoinLikeGlib) {
  using v = std::vector<std::string>;
  EXPECT_EQ(pf::split_lines(""), v{});
  EXPECT_EQ(pf::split_lines("a"), v{"a"});
  EXPECT_EQ(pf::split_lines("a\n"), (v{"a", ""}));
  EXPECT_EQ(pf::split_lines("\n"), (v{"", ""}));
  EXPECT_EQ(pf::split_lines("a\n\nb\r\n"), (v{"a", "", "b\r", ""}));
  EXPECT_EQ(pf::join_lines({}), "");
  EXPECT_EQ(pf::join_lines({"a"}), "a");
  EXPECT_EQ(pf::join_lines({"a", ""}), "a\n");
  EXPECT_EQ(pf::join_lines({"", ""}), "\n");
  for (std::string s : {"", "a", "a\n", "\n\n", "x\ny\nz"}) EXPECT_EQ(pf::join_lines(pf::split_lines(s)), s);
}

TEST(PlatformAccounts, ReadTextFileGlibTexts) {
  temp_dir d;
  std::string out = "junk";
  auto f = pf::read_text_file(d / "missing", 100, out);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->err, ENOENT);
  EXPECT_EQ(f->message, "Failed to open file \xE2\x80\x9C" + (d / "missing") + "\xE2\x80\x9D: No such file or directory");
  EXPECT_TRUE(out.empty());

  f = pf::read_text_file(d.path, 100, out);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->err, EISDIR);
  EXPECT_EQ(f->message, "Error reading file \xE2\x80\x9C" + d.path + "\xE2\x80\x9D: Is a directory");

  spit(d / "big", std::string(101, 'k'));
  f = pf::read_text_file(d / "big", 100, out);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->err, EFBIG);
  EXPECT_EQ(f->message, "File \xE2\x80\x9C" + (d / "big") + "\xE2\x80\x9D is too large");
  EXPECT_FALSE(pf::read_text_file(d / "big", 101, out));
  EXPECT_EQ(out.size(), 101u);

  spit(d / "nul", std::string("abc\0def\n", 8));
  EXPECT_FALSE(pf::read_text_file(d / "nul", 100, out));
  EXPECT_EQ(out, "abc");
  spit(d / "empty", "");
  EXPECT_FALSE(pf::read_text_file(d / "empty", 100, out));
  EXPECT_EQ(out, "");
  // Not a regular file: read through to EOF (GLib's stdio path).
  EXPECT_FALSE(pf::read_text_file("/proc/self/comm", 100, out));
  EXPECT_FALSE(out.empty());
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> s;
  for (auto& e : std::filesystem::directory_iterator(dir)) s.insert(e.path().filename().string());
  return s;
}

TEST(PlatformAccounts, ReplaceFileForUser) {
  temp_dir d;
  const std::string path = d / "authorized_keys";
  const bool root = ::geteuid() == 0;
  const uid_t uid = root ? 4242 : ::geteuid();
  const gid_t gid = root ? 4343 : ::getegid();
  ::umask(022);
  ASSERT_FALSE(pf::replace_file_for_user(path, "algo key1", uid, gid));
  EXPECT_EQ(slurp(path), "algo key1");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(st.st_gid, gid);
  EXPECT_EQ(st.st_nlink, 1u);

  // Over an existing file with other permissions: a new inode, 0600, nothing left behind.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const ino_t old_ino = st.st_ino;
  ASSERT_FALSE(pf::replace_file_for_user(path, "", uid, gid));
  EXPECT_EQ(slurp(path), "");
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_NE(st.st_ino, old_ino);
  EXPECT_EQ(entries(d.path), std::set<std::string>{"authorized_keys"});

  // A symlink is replaced, its target left alone (g_file_set_contents() does the same).
  spit(d / "target", "untouched");
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::symlink("target", path.c_str()), 0);
  ASSERT_FALSE(pf::replace_file_for_user(path, "new", uid, gid));
  EXPECT_EQ(slurp(d / "target"), "untouched");
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(slurp(path), "new");
  ::umask(022);
}

TEST(PlatformAccounts, ReplaceFileForUserNamedTemporary) {
  // Filesystems without O_TMPFILE: a named "<name>.XXXXXX" file, renamed over the target.
  temp_dir d;
  const std::string path = d / "authorized_keys";
  const bool root = ::geteuid() == 0;
  const uid_t uid = root ? 4242 : ::geteuid();
  spit(path, "old");
  spit(d / "authorized_keys.XXXXXX", "a file named like the template is left alone");
  ASSERT_FALSE(pf::replace_file_for_user(path, "algo k\n", uid, ::getegid(), false));
  EXPECT_EQ(slurp(path), "algo k\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(entries(d.path), (std::set<std::string>{"authorized_keys", "authorized_keys.XXXXXX"}));

  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  auto e = pf::replace_file_for_user(path, "k", uid, ::getegid(), false);
  ASSERT_TRUE(e);
  EXPECT_NE(e->find("g_rename() failed: Is a directory"), std::string::npos) << *e;
  EXPECT_EQ(entries(d.path), (std::set<std::string>{"authorized_keys", "authorized_keys.XXXXXX"}));
}

TEST(PlatformAccounts, ReplaceFileForUserFailuresLeaveNothing) {
  temp_dir d;
  // The target is a directory: rename(2) fails, the temporary file goes away.
  const std::string path = d / "authorized_keys";
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  auto e = pf::replace_file_for_user(path, "k", ::geteuid(), ::getegid());
  ASSERT_TRUE(e);
  const std::string head = "failed to write to '" + path + "': Failed to rename file \xE2\x80\x9C" + path + ".";
  const std::string tail = "\xE2\x80\x9D to \xE2\x80\x9C" + path + "\xE2\x80\x9D: g_rename() failed: Is a directory";
  EXPECT_EQ(e->substr(0, head.size()), head) << *e;
  ASSERT_GE(e->size(), head.size() + 6 + tail.size());
  EXPECT_EQ(e->substr(head.size() + 6), tail) << *e;
  EXPECT_EQ(entries(d.path), std::set<std::string>{"authorized_keys"});

  // The directory does not exist.
  const std::string gone = d / "nodir/authorized_keys";
  e = pf::replace_file_for_user(gone, "k", ::geteuid(), ::getegid());
  ASSERT_TRUE(e);
  const std::string h2 = "failed to write to '" + gone + "': Failed to create file \xE2\x80\x9C" + gone + ".";
  EXPECT_EQ(e->substr(0, h2.size()), h2) << *e;
  EXPECT_EQ(e->substr(e->size() - 30), "\xE2\x80\x9D: No such file or directory") << *e;
}

TEST(PlatformAccounts, MkdirForUser) {
  temp_dir d;
  const bool root = ::geteuid() == 0;
  const uid_t uid = root ? 4242 : ::geteuid();
  const gid_t gid = root ? 4343 : ::getegid();
  ::umask(077);
  const std::string ssh = d / ".ssh";
  ASSERT_FALSE(pf::mkdir_for_user(ssh, uid, gid, 0700));
  struct stat st {};
  ASSERT_EQ(::stat(ssh.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(st.st_gid, gid);
  ::umask(022);
  EXPECT_EQ(pf::mkdir_for_user(ssh, uid, gid, 0700), "failed to create directory '" + ssh + "': File exists");
  EXPECT_EQ(pf::mkdir_for_user(d / "a/b", uid, gid, 0700),
            "failed to create directory '" + (d / "a/b") + "': No such file or directory");
  EXPECT_TRUE(pf::is_directory(ssh));
  EXPECT_FALSE(pf::is_directory(d / "none"));
  EXPECT_TRUE(pf::path_exists(ssh));
  EXPECT_FALSE(pf::path_exists(d / "none"));
}

}  // namespace
}  // namespace fleetga::test
