#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "platform/files.hpp"
#include "platform/system.hpp"

namespace fleetga::platform {
namespace {

struct tmp {
  std::string path;
  tmp() {
    char t[] = "/tmp/fleetga-pf-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~tmp() { std::filesystem::remove_all(path); }
  std::size_t count() const {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(path)) ++n;
    return n;
  }
};

TEST(PlatformFiles, ModeTable) {
  EXPECT_EQ(open_flags_for_mode("r"), O_RDONLY | O_NOCTTY | O_NONBLOCK);
  EXPECT_EQ(open_flags_for_mode("r+b"), O_RDWR | O_NOCTTY | O_NONBLOCK);
  EXPECT_EQ(open_flags_for_mode("w+b"), O_RDWR | O_CREAT | O_TRUNC | O_NOCTTY | O_NONBLOCK);
  EXPECT_EQ(open_flags_for_mode("a+b"), O_RDWR | O_CREAT | O_APPEND | O_NOCTTY | O_NONBLOCK);
  for (std::string_view bad : {"", "q", "rb+x", "br", "+r", "r+ ", "wx", "x"}) EXPECT_FALSE(open_flags_for_mode(bad)) << bad;
}

TEST(PlatformFiles, ReplaceFileLeavesNoTemporary) {
  tmp d;
  EXPECT_EQ(replace_file(d.path, "qga.state", "one\n"), 0);
  EXPECT_EQ(replace_file(d.path, "qga.state", "two\n"), 0);
  EXPECT_EQ(d.count(), 1u);
  EXPECT_EQ(replace_file(d.path + "/missing", "qga.state", "x"), ENOENT);
  ::chmod(d.path.c_str(), 0500);
  if (::geteuid() != 0) {  // root ignores directory permissions
    EXPECT_EQ(replace_file(d.path, "qga.state", "three\n"), EACCES);
  }
  ::chmod(d.path.c_str(), 0700);
  EXPECT_EQ(d.count(), 1u);
}

TEST(PlatformFiles, ReplaceFileFailsWhenTargetIsADirectory) {
  tmp d;
  std::filesystem::create_directory(d.path + "/qga.state");
  EXPECT_NE(replace_file(d.path, "qga.state", "x"), 0);
  EXPECT_EQ(d.count(), 1u);  // the temporary was unlinked
}

TEST(PlatformFiles, OpenFailureSteps) {
  tmp d;
  stdio_file f;
  int err = 0, fd = -1;
  std::string p = d.path + "/none";
  EXPECT_EQ(stdio_file::open(p.c_str(), "r", *open_flags_for_mode("r"), f, err, fd), stdio_file::open_step::open);
  EXPECT_EQ(err, ENOENT);
  EXPECT_FALSE(f.is_open());
  EXPECT_EQ(stdio_file::open(p.c_str(), "w", *open_flags_for_mode("w"), f, err, fd), stdio_file::open_step::ok);
  EXPECT_TRUE(f.is_open());
}

TEST(PlatformSystem, RootedPathsAndSmallFiles) {
  tmp d;
  linux_system sys(d.path);
  EXPECT_EQ(sys.rooted("/etc/os-release"), d.path + "/etc/os-release");
  std::filesystem::create_directory(d.path + "/etc");
  {
    FILE* f = std::fopen((d.path + "/etc/os-release").c_str(), "w");
    std::fputs("ID=x\n", f);
    std::fclose(f);
  }
  std::string s;
  EXPECT_EQ(sys.read_small_file(sys.rooted("/etc/os-release"), 100, s), 0);
  EXPECT_EQ(s, "ID=x\n");
  EXPECT_EQ(sys.read_small_file(sys.rooted("/etc/os-release"), 3, s), EFBIG);
  EXPECT_EQ(sys.read_small_file(sys.rooted("/etc/none"), 100, s), ENOENT);
  EXPECT_TRUE(sys.identity(sys.rooted("/etc/os-release")));
  EXPECT_FALSE(sys.identity(sys.rooted("/etc/none")));
  platform::uname_info u;
  EXPECT_EQ(sys.uname(u), 0);
  EXPECT_FALSE(u.release.empty());
  std::string h;
  EXPECT_EQ(sys.hostname(h), 0);
  EXPECT_FALSE(h.empty());
  load_average l;
  EXPECT_EQ(sys.loadavg(l), 0);
  EXPECT_GE(l.load1m, 0.0);
}

}  // namespace
}  // namespace fleetga::platform
