// platform/mounts (qemu-ga's build_fs_mount_list), platform/freeze's safety rules and
// platform/spawn (ga_run_command) on fixtures and throw-away scripts.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "commands_harness.hpp"
#include "in_child.hpp"
#include "platform/freeze.hpp"
#include "platform/mounts.hpp"
#include "platform/spawn.hpp"

namespace fleetga::test {
namespace {

using platform::mount_entry;

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/fsfreeze/" + std::string(rel); }

// dev_major_minor() stand-in: block devices by name, directories, everything else -1.
struct fake_devices {
  std::map<std::string, std::pair<unsigned, unsigned>> blk;
  std::vector<std::string> dirs;
  std::vector<std::string> asked;
  platform::device_lookup fn() {
    return [this](const std::string& p, unsigned& ma, unsigned& mi) {
      asked.push_back(p);
      ma = mi = 0;
      if (auto it = blk.find(p); it != blk.end()) {
        ma = it->second.first;
        mi = it->second.second;
        return 0;
      }
      for (const auto& d : dirs)
        if (d == p) return -2;
      return -1;
    };
  }
};

std::vector<std::string> dirs(const std::vector<mount_entry>& v) {
  std::vector<std::string> d;
  for (const auto& m : v) d.push_back(m.dir);
  return d;
}

TEST(PlatformMountsFsfreeze, DecodeMountinfoNames) {
  EXPECT_EQ(platform::decode_mountinfo_name("/mnt/my\\040data"), "/mnt/my data");
  EXPECT_EQ(platform::decode_mountinfo_name("a\\134b\\011c\\012d"), "a\\b\tc\nd");
  EXPECT_EQ(platform::decode_mountinfo_name("a\\\\b"), "a\\b");
  EXPECT_EQ(platform::decode_mountinfo_name("\\777x"), "\\777x");  // first digit above 3: kept
  EXPECT_EQ(platform::decode_mountinfo_name("x\\04"), "x\\04");    // too short at the end: kept
  EXPECT_EQ(platform::decode_mountinfo_name("x\\"), "x\\");
  EXPECT_EQ(platform::decode_mountinfo_name("\\101\\060"), "A0");  // any octal, not only the four
}

TEST(PlatformMountsFsfreeze, DecodeMtabNamesOnlyTheFourGlibcEscapes) {
  EXPECT_EQ(platform::decode_mtab_name("/a\\040b\\011c\\012d\\134e\\\\f"), "/a b\tc\nd\\e\\f");
  EXPECT_EQ(platform::decode_mtab_name("\\101"), "\\101");
}

TEST(PlatformMountsFsfreeze, ThisMachineHasOneLocalFilesystem) {
  fake_devices dev;
  auto v = platform::parse_mountinfo(slurp(fixture("machine/proc/self/mountinfo")), dev.fn());
  EXPECT_EQ(v, (std::vector<mount_entry>{{"/", "ext4", 254, 0}}));
  EXPECT_TRUE(dev.asked.empty());  // no btrfs: nothing stat'ed
}

TEST(PlatformMountsFsfreeze, OddMountinfo) {
  fake_devices dev;
  dev.blk["/dev/vdb"] = {254, 16};
  auto v = platform::parse_mountinfo(slurp(fixture("odd/proc/self/mountinfo")), dev.fn());
  EXPECT_EQ(v, (std::vector<mount_entry>{{"/", "ext4", 253, 1},
                                         {"/mnt/my data", "xfs", 253, 2},
                                         {"/boot/efi", "vfat", 8, 17},
                                         {"/home", "btrfs", 254, 16},
                                         {"/mnt/back\\slash\ttab", "ext4", 8, 33},
                                         {"/mnt/\\777not-octal\\04", "ext4", 8, 49},
                                         {"/boot", "ext4", 8, 1}}));
  // Only major-0 btrfs sources are stat'ed (nfs, proc: never), decoded.
  EXPECT_EQ(dev.asked, (std::vector<std::string>{"/dev/vdb", "/dev/vdb", "/dev/vdc"}));
}

TEST(PlatformMountsFsfreeze, MountinfoEdgeLines) {
  fake_devices dev;
  EXPECT_TRUE(platform::parse_mountinfo("", dev.fn()).empty());
  EXPECT_TRUE(platform::parse_mountinfo("\n\n", dev.fn()).empty());
  EXPECT_TRUE(platform::parse_mountinfo("x y 8:1 / /a rw - ext4 /dev/x rw\n", dev.fn()).empty());
  EXPECT_TRUE(platform::parse_mountinfo("1 2 8:1 / /a\n", dev.fn()).empty());
  // The char after the mount point may be the newline itself? No: " - " must follow.
  EXPECT_EQ(dirs(platform::parse_mountinfo("1 2 8:1 / /a rw - ext4 /dev/x\n", dev.fn())),
            (std::vector<std::string>{"/a"}));  // super options absent: the '\n' is the %c
  // Many entries: every device once, in mount order.
  std::string big;
  for (int i = 0; i < 3000; ++i)
    big += std::to_string(100 + i) + " 1 8:" + std::to_string(i % 1000) + " / /m/" + std::to_string(i) +
           " rw - ext4 /dev/sd rw\n";
  auto v = platform::parse_mountinfo(big, dev.fn());
  ASSERT_EQ(v.size(), 1000u);
  EXPECT_EQ(v.front().dir, "/m/0");
  EXPECT_EQ(v.back().dir, "/m/999");
}

TEST(PlatformMountsFsfreeze, MtabFallbackParser) {
  fake_devices dev;
  dev.blk["/dev/vda1"] = {254, 1};
  dev.blk["/dev/loop7"] = {7, 7};
  dev.dirs = {"/srv/dir"};
  auto v = platform::parse_mtab(slurp(fixture("mtab/proc/self/mounts")), dev.fn());
  // bind of vda1 skipped, cifs and "proc" skipped, directory source skipped, the first
  // unresolvable source kept as 0:0 and the second one dropped as its duplicate (qemu-ga).
  EXPECT_EQ(v, (std::vector<mount_entry>{{"/", "ext4", 254, 1},
                                         {"/mnt/missing1", "ext4", 0, 0},
                                         {"/mnt/tab\tname", "ext4", 7, 7}}));
}

TEST(PlatformMountsFsfreeze, ReadMountListUnderRoot) {
  std::string err;
  auto m = platform::read_mount_list(fixture("machine"), err);
  ASSERT_TRUE(m);
  EXPECT_EQ(dirs(*m), (std::vector<std::string>{"/"}));

  // btrfs sources stat'ed under the root: a regular file and a directory are no devices.
  m = platform::read_mount_list(fixture("btrfs"), err);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::vector<mount_entry>{{"/ext", "ext4", 254, 0}}));

  // No mountinfo: /proc/self/mounts, sources stat'ed under the root (a plain file: 0:0).
  m = platform::read_mount_list(fixture("mtab"), err);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::vector<mount_entry>{{"/", "ext4", 0, 0}}));

  m = platform::read_mount_list(fixture("empty"), err);
  EXPECT_FALSE(m);
  EXPECT_EQ(err, "failed to open mtab file: '/proc/self/mounts'");
}

TEST(PlatformMountsFsfreeze, MountTableUpToTheLimitIsRead) {
  // mount_table_max bytes are read; one byte more and the table is refused, as unreadable.
  temp_dir root;
  std::filesystem::create_directories(root / "proc/self");
  std::string table = "25 1 254:0 / / rw - ext4 /dev/vda rw\n";
  table.resize(platform::mount_table_max, '\n');
  spit(root / "proc/self/mountinfo", table);
  std::string err;
  auto m = platform::read_mount_list(root.path, err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(dirs(*m), (std::vector<std::string>{"/"}));
  table += "\n";
  spit(root / "proc/self/mountinfo", table);
  m = platform::read_mount_list(root.path, err);
  EXPECT_FALSE(m);
  EXPECT_EQ(err, "failed to open mtab file: '/proc/self/mounts'");
}

TEST(PlatformMountsFsfreeze, ReadMountListOfThisMachine) {
  std::string err;
  auto m = platform::read_mount_list("", err);
  ASSERT_TRUE(m) << err;
  ASSERT_FALSE(m->empty());
  EXPECT_EQ(m->front().dir, "/");  // the root filesystem is always a listed local mount here
}

TEST(PlatformFreezeFsfreeze, SafeByDefault) {
  // Nothing below reaches FIFREEZE or FITRIM: disabled, or a fixture root.
  platform::linux_freezer off;
  std::uint64_t minlen = 0, trimmed = 0;
  EXPECT_EQ(off.freeze("/").err, EPERM);
  EXPECT_EQ(off.trim("/", minlen, trimmed).err, EPERM);
  platform::linux_freezer rooted(fixture("machine"));
  rooted.kernel_changes = true;
  EXPECT_EQ(rooted.freeze("/").err, EPERM);
  EXPECT_EQ(rooted.trim("/", minlen, trimmed).err, EPERM);
  EXPECT_EQ(rooted.thaw("/").err, EINVAL);
  EXPECT_EQ(rooted.thaw("/").failed, platform::fs_result::step::ioctl);
}

TEST(PlatformFreezeFsfreeze, RealThawOfAThawedFilesystemFails) {
  // FITHAW on this machine's / (not frozen): EINVAL as root, EPERM otherwise; never success.
  platform::linux_freezer real;
  auto r = real.thaw("/");
  EXPECT_EQ(r.failed, platform::fs_result::step::ioctl);
  EXPECT_TRUE(r.err == EINVAL || r.err == EPERM) << r.err;
  r = real.thaw("/nonexistent-fleetga-dir");
  EXPECT_EQ(r.failed, platform::fs_result::step::open);
  EXPECT_EQ(r.err, ENOENT);
}

// A script in a temporary directory.
std::string script(const temp_dir& d, std::string_view name, std::string_view body) {
  std::string p = d / name;
  spit(p, "#!/bin/sh\n" + std::string(body));
  ::chmod(p.c_str(), 0755);
  return p;
}

TEST(PlatformSpawnFsfreeze, CapturesStdoutAndStderrTogether) {
  temp_dir d;
  auto r = platform::run_helper({script(d, "h", "echo out; echo err >&2; echo \"$1\"; exit 0\n"), "freeze"});
  EXPECT_EQ(r.how, platform::helper_result::outcome::exited);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.output, "out\nerr\nfreeze\n");
  EXPECT_FALSE(platform::helper_error(r, "execute fsfreeze hook"));
}

TEST(PlatformSpawnFsfreeze, ErrorTexts) {
  temp_dir d;
  auto r = platform::run_helper({script(d, "h", "echo 'cannot quiesce db' >&2; exit 3\n")});
  EXPECT_EQ(*platform::helper_error(r, "execute fsfreeze hook"),
            "child process has failed to execute fsfreeze hook: cannot quiesce db\n");
  r = platform::run_helper({script(d, "q", "exit 4\n")});
  EXPECT_EQ(*platform::helper_error(r, "execute fsfreeze hook"),
            "child process has failed to execute fsfreeze hook: exit status 4");
  r = platform::run_helper({script(d, "k", "echo bye; kill -9 $$\n")});
  EXPECT_EQ(r.how, platform::helper_result::outcome::signaled);
  EXPECT_EQ(r.status, 9);
  EXPECT_EQ(*platform::helper_error(r, "x"), "child process has terminated abnormally: bye\n");
  r = platform::run_helper({d / "missing"});
  EXPECT_EQ(*platform::helper_error(r, "execute fsfreeze hook"),
            "child process has failed to execute fsfreeze hook: failed to exec '" + (d / "missing") +
                "': No such file or directory\n");
  spit(d / "noexec", "#!/bin/sh\n");
  r = platform::run_helper({d / "noexec"});
  EXPECT_EQ(*platform::helper_error(r, "a"),
            "child process has failed to a: failed to exec '" + (d / "noexec") + "': Permission denied\n");
}

TEST(PlatformSpawnFsfreeze, StdinIsDevNullOrTheInputAndSessionIsNew) {
  temp_dir d;
  auto r = platform::run_helper({script(d, "h", "cat; cut -d' ' -f6 /proc/$$/stat > '" + (d / "sid") +
                                                     "'; echo $$ > '" + (d / "pid") + "'\n")});
  EXPECT_EQ(r.output, "");
  ASSERT_FALSE(slurp(d / "pid").empty());
  EXPECT_EQ(slurp(d / "sid"), slurp(d / "pid"));  // setsid(): session leader
  r = platform::run_helper({script(d, "c", "cat\n")}, std::string_view("user:pass\n"));
  EXPECT_EQ(r.output, "user:pass\n");
  // A helper that ignores a big input and exits: no SIGPIPE for us, no hang.
  std::string big(1 << 20, 'x');
  r = platform::run_helper({script(d, "e", "exit 0\n")}, std::string_view(big));
  EXPECT_EQ(r.how, platform::helper_result::outcome::exited);
}

TEST(PlatformSpawnFsfreeze, OutputIsBounded) {
  temp_dir d;
  auto r = platform::run_helper({script(d, "h", "head -c 200000 /dev/zero; exit 1\n")});
  EXPECT_EQ(r.output.size(), platform::helper_output_max);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.status, 1);
}

}  // namespace
}  // namespace fleetga::test

namespace fleetga::test {
namespace {

// mountinfo_watch keeps /proc/self/mountinfo open and reads it again only when the kernel
// flags a change: a mount and an unmount must both show. Done in a child with a mount
// namespace of its own (unshare, mounts made private), so nothing outside it sees the tmpfs.
TEST(PlatformMountsOwnTable, AMountAndAnUnmountAreSeen) {
  char dir_template[] = "/tmp/fleetga-mnt-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const int rc = in_child([&] {
    if (::unshare(CLONE_NEWNS) != 0) return child_cannot;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return child_cannot;
    platform::mountinfo_watch w;
    std::string before, same, mounted, unmounted;
    if (w.text(before) != 0 || w.text(same) != 0) return 10;
    if (same != before || before.find(" " + dir + " ") != std::string::npos) return 11;
    if (::mount("fleetga-test", dir.c_str(), "tmpfs", 0, "size=64k") != 0) return child_cannot;
    if (w.text(mounted) != 0) return 12;
    if (mounted.find(" " + dir + " ") == std::string::npos) return 13;  // the mount unseen
    if (::umount(dir.c_str()) != 0) return 14;
    if (w.text(unmounted) != 0) return 15;
    if (unmounted.find(" " + dir + " ") != std::string::npos) return 16;  // the unmount unseen
    if (unmounted != before) return 17;
    return 0;
  });
  ::rmdir(dir.c_str());
  if (rc == child_cannot) GTEST_SKIP() << "no mount namespace of our own here (not root?)";
  EXPECT_EQ(rc, 0) << "10 read failed, 11 not stable or already mounted, "
                                       "13 mount not seen, 16 unmount not seen, 17 not as before";
}

// A directory above a mount point renamed is no mount-table event: the kept text still names
// the old path. The list must follow the rename, also when the old path is made again (it
// exists then, on the filesystem above) or is a symlink to the new place, and a fresh read must
// agree; an unchanged table is not read again. freeze, thaw and fstrim read fresh, fsinfo has
// the kept text checked. An ext4 image on a loop device, mounted in a child with a mount
// namespace of its own; `without_openat2`: openat2 fails with ENOSYS there (a seccomp filter),
// as on Linux < 5.6 or under valgrind.
int rename_above_a_mount_point(const temp_dir& d, bool without_openat2) {
  const std::string img = d / "img", a = d / "a", b = d / "b", c = d / "c", e = d / "e";
  if (::unshare(CLONE_NEWNS) != 0) return child_cannot;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return child_cannot;
  if (::mkdir(a.c_str(), 0755) != 0 || ::mkdir((a + "/m").c_str(), 0755) != 0) return 9;
  const std::string mk = "PATH=$PATH:/usr/sbin:/sbin; truncate -s 4M '" + img + "' && mkfs.ext4 -q -F '" + img +
                         "' >/dev/null 2>&1 && mount -o loop '" + img + "' '" + a + "/m'";
  if (std::system(mk.c_str()) != 0) return child_cannot;  // no loop devices or no mkfs here
  if (without_openat2) {
    sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      return child_cannot;
  }
  auto lists = [](const std::optional<std::vector<mount_entry>>& l, const std::string& dir) {
    return l && std::find_if(l->begin(), l->end(), [&](const mount_entry& m) { return m.dir == dir; }) != l->end();
  };
  platform::mountinfo_watch w;
  std::string err;
  using platform::mount_read;
  auto l = platform::read_mount_list(w, err, mount_read::kept);
  if (!lists(l, a + "/m")) return 10;
  struct stat st;
  for (const auto& m : *l) ::stat(m.dir.c_str(), &st);  // every mount point in the dentry cache
  const std::uint64_t reads = w.reads();
  if (!lists(platform::read_mount_list(w, err, mount_read::kept), a + "/m")) return 11;
  if (w.reads() != reads) return 16;  // nothing changed, yet read again
  if (::rename(a.c_str(), b.c_str()) != 0) return 9;
  l = platform::read_mount_list(w, err, mount_read::kept);
  if (!lists(l, b + "/m") || lists(l, a + "/m")) return 12;
  if (::rename(b.c_str(), c.c_str()) != 0 || ::mkdir(b.c_str(), 0755) != 0 || ::mkdir((b + "/m").c_str(), 0755) != 0)
    return 9;
  l = platform::read_mount_list(w, err, mount_read::kept);
  if (!lists(l, c + "/m") || lists(l, b + "/m")) return 13;
  // Renamed again with a symlink left at the old name: the old path still reaches the mount.
  if (::rename(c.c_str(), e.c_str()) != 0 || ::symlink("e", c.c_str()) != 0) return 9;
  l = platform::read_mount_list(w, err, mount_read::kept);
  if (!lists(l, e + "/m") || lists(l, c + "/m")) return 15;
  if (platform::read_mount_list(w, err, mount_read::fresh) != l) return 14;
  return 0;
}

constexpr const char* rename_codes =
    "9 setup failed, 10/11 the mount not listed, 12 the rename not seen, 13 the old path made again "
    "was listed, 14 fresh read differs, 15 a symlink at the old path kept it listed, 16 an unchanged "
    "table read again";

TEST(PlatformMountsOwnTable, ARenameAboveAMountPointIsSeen) {
  temp_dir d;
  const int rc = in_child([&] { return rename_above_a_mount_point(d, false); });
  if (rc == child_cannot) GTEST_SKIP() << "no mount namespace, loop device or mkfs.ext4 here (not root?)";
  EXPECT_EQ(rc, 0) << rename_codes;
}

TEST(PlatformMountsOwnTable, ARenameAboveAMountPointIsSeenWithoutOpenat2) {
  temp_dir d;
  const int rc = in_child([&] { return rename_above_a_mount_point(d, true); });
  if (rc == child_cannot) GTEST_SKIP() << "no mount namespace, loop device, mkfs.ext4 or seccomp here";
  EXPECT_EQ(rc, 0) << rename_codes;
}

TEST(PlatformMountsOwnTable, ReadMountListOfTheRealRootIsTheOwnTable) {
  std::string text;
  ASSERT_EQ(platform::own_mountinfo(text), 0);
  EXPECT_NE(text.find(" / / "), std::string::npos) << text;  // the root mount's line
  std::string err;
  auto list = platform::read_mount_list("", err);
  ASSERT_TRUE(list) << err;
  EXPECT_EQ(*list, platform::parse_mountinfo(text, [](const std::string& d, unsigned& ma, unsigned& mi) {
              return platform::stat_device("", d, ma, mi);
            }));
}

}  // namespace
}  // namespace fleetga::test
