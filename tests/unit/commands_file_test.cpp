#include <gtest/gtest.h>
#include <sys/stat.h>

#include <limits>

#include "commands/state.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

std::string generic(std::string_view desc) {
  return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(desc) + "\"}}\n";
}

// base64 of "Hello World!\n\0" (14 bytes), as in test-qga.c.
constexpr std::string_view hello_b64 = "SGVsbG8gV29ybGQhCgA=";

struct file_fixture : service_fixture {
  temp_dir files;  // data files live outside the statedir
  std::string path(std::string_view n) const { return files / n; }
  std::string open(std::string_view name, std::string_view mode) {
    return (*this)(R"({"execute":"guest-file-open","arguments":{"path":")" + path(name) + R"(","mode":")" +
                   std::string(mode) + R"("}})");
  }
};

TEST(CommandsFile, UpstreamFileOps) {  // test-qga.c /qga/file-ops (case 11)
  file_fixture t;
  EXPECT_EQ(t.open("foo", "w+"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"SGVsbG8gV29ybGQhCgA="}})"),
            "{\"return\": {\"count\": 14, \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-flush","arguments":{"handle":1000}})"), "{\"return\": {}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1000}})"), "{\"return\": {}}\n");
  EXPECT_EQ(slurp(t.path("foo")), std::string("Hello World!\n\0", 14));

  EXPECT_EQ(t.open("foo", "r"), "{\"return\": 1001}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1001}})"),
            "{\"return\": {\"count\": 14, \"buf-b64\": \"" + std::string(hello_b64) + "\", \"eof\": true}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1001}})"),
            "{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": true}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1001,"offset":6,"whence":"set"}})"),
            "{\"return\": {\"eof\": false, \"position\": 6}}\n");
  // input[6..] = "World!\n\0"
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1001}})"),
            "{\"return\": {\"count\": 8, \"buf-b64\": \"V29ybGQhCgA=\", \"eof\": true}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1001}})"), "{\"return\": {}}\n");
}

TEST(CommandsFile, UpstreamFileWriteRead) {  // test-qga.c /qga/file-write-read (case 12)
  file_fixture t;
  EXPECT_EQ(t.open("foo", "w+"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"SGVsbG8gV29ybGQhCgA="}})"),
            "{\"return\": {\"count\": 14, \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000}})"),
            "{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": true}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}})"),
            "{\"return\": {\"eof\": false, \"position\": 0}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000}})"),
            "{\"return\": {\"count\": 14, \"buf-b64\": \"" + std::string(hello_b64) + "\", \"eof\": true}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1000}})"), "{\"return\": {}}\n");
}

TEST(CommandsFile, HandlesArePersistedAndSurviveRestart) {
  file_fixture t;
  EXPECT_EQ(t.open("a", "w"), "{\"return\": 1000}\n");
  EXPECT_EQ(t.open("b", "w"), "{\"return\": 1001}\n");
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=1002\n");  // byte-identical to qemu-ga 7.2
  t.start();
  EXPECT_EQ(t.open("a", "r"), "{\"return\": 1002}\n");
  // Handles of the previous instance are gone.
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1000}})"),
            generic("handle '1000' has not been found"));
  // A failed open consumes no number.
  EXPECT_EQ(t.open("missing", "r"),
            generic("failed to open file '" + t.path("missing") + "' (mode: 'r'): No such file or directory"));
  EXPECT_EQ(t.open("a", "r"), "{\"return\": 1003}\n");
  EXPECT_EQ(t.state.list(), (std::set<std::string>{"qga.state"}));  // no temporary left behind
}

TEST(CommandsFile, Modes) {
  file_fixture t;
  spit(t.path("m"), "abc");
  EXPECT_EQ(t.open("m", "q"), generic("invalid file open mode 'q'"));
  EXPECT_EQ(t.open("m", "rw"), generic("invalid file open mode 'rw'"));
  EXPECT_EQ(t.open("m", ""), generic("invalid file open mode ''"));
  std::int64_t h = 1000;
  for (std::string_view m : {"r", "rb", "r+", "rb+", "r+b", "a", "ab", "a+", "ab+", "a+b", "w", "wb", "w+", "wb+", "w+b"})
    EXPECT_EQ(t.open("m", m), "{\"return\": " + std::to_string(h++) + "}\n") << m;
  // Default mode is "r".
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + t.path("m") + R"("}})"),
            "{\"return\": " + std::to_string(h++) + "}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"mode":"r"}})"), generic("Parameter 'path' is missing"));
}

TEST(CommandsFile, CreatedFilesAre0666RegardlessOfUmask) {
  file_fixture t;
  mode_t old = ::umask(077);
  EXPECT_EQ(t.open("new", "w"), "{\"return\": 1000}\n");
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(t.path("new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  // An existing file keeps its mode.
  ::chmod(t.path("new").c_str(), 0600);
  EXPECT_EQ(t.open("new", "a"), "{\"return\": 1001}\n");
  ASSERT_EQ(::stat(t.path("new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Issue 16, defect 2 (review of file-open's create mode): the create step is O_CREAT|O_EXCL,
// which never follows a link, so a dangling link planted at the path cannot make the agent
// create a file elsewhere (as root, mode 0666); the open of an existing name afterwards
// follows links like qemu-ga's, because the host names that path (see docs/protocol.md).
TEST(CommandsFile, CreateModeDoesNotCreateThroughADanglingLink) {
  file_fixture t;
  temp_dir elsewhere;
  const std::string victim = elsewhere / "created-through-link";
  ASSERT_EQ(::symlink(victim.c_str(), t.path("link").c_str()), 0);
  for (const char* mode : {"w", "a", "w+", "a+"}) {
    EXPECT_EQ(t.open("link", mode), R"({"error": {"class": "GenericError", "desc": "failed to open file ')" +
                                        t.path("link") + "' (mode: '" + mode +
                                        R"('): No such file or directory"}})" "\n")
        << mode;
    EXPECT_FALSE(std::filesystem::exists(victim)) << mode;
  }
}

TEST(CommandsFile, ReadCountLimits) {
  file_fixture t;
  spit(t.path("r"), "0123456789");
  ASSERT_EQ(t.open("r", "r"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000,"count":-1}})"),
            generic("value '-1' is invalid for argument count"));
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000,"count":50331649}})"),
            generic("value '50331649' is invalid for argument count"));
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000,"count":0}})"),
            "{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000,"count":3}})"),
            "{\"return\": {\"count\": 3, \"buf-b64\": \"MDEy\", \"eof\": false}}\n");
  // Handle lookup comes before the count check.
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":5,"count":-1}})"),
            generic("handle '5' has not been found"));
}

TEST(CommandsFile, ReadMaxCount) {
  file_fixture t;
  spit(t.path("big"), std::string(100, 'x'));
  ASSERT_EQ(t.open("big", "r"), "{\"return\": 1000}\n");
  std::string r = t(R"({"execute":"guest-file-read","arguments":{"handle":1000,"count":50331648}})");
  EXPECT_EQ(r.rfind("{\"return\": {\"count\": 100, \"buf-b64\": \"eHh4", 0), 0u);
  EXPECT_TRUE(r.ends_with("\", \"eof\": true}}\n"));
}

TEST(CommandsFile, WriteErrors) {
  file_fixture t;
  spit(t.path("ro"), "data");
  ASSERT_EQ(t.open("ro", "r"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"aGk="}})"),
            generic("failed to write to file: Bad file descriptor"));
  ASSERT_EQ(t.open("w", "w"), "{\"return\": 1001}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1001,"buf-b64":"a*Gk="}})"),
            generic("Base64 data contains invalid characters"));
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1001,"buf-b64":"aGk=","count":3}})"),
            generic("value '3' is invalid for argument count"));
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1001,"buf-b64":"aGk=","count":-1}})"),
            generic("value '-1' is invalid for argument count"));
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1001,"buf-b64":"aGk=","count":1}})"),
            "{\"return\": {\"count\": 1, \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1001,"buf-b64":""}})"),
            "{\"return\": {\"count\": 0, \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1001}})"),
            generic("Parameter 'buf-b64' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":77,"buf-b64":"***"}})"),
            generic("handle '77' has not been found"));
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1001}})"), "{\"return\": {}}\n");
  EXPECT_EQ(slurp(t.path("w")), "h");
}

TEST(CommandsFile, ReadThenWriteSwitchesWithASeek) {
  file_fixture t;
  spit(t.path("rw"), "abcdef");
  ASSERT_EQ(t.open("rw", "r+"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000,"count":2}})"),
            "{\"return\": {\"count\": 2, \"buf-b64\": \"YWI=\", \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"WFk="}})"),
            "{\"return\": {\"count\": 2, \"eof\": false}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000}})"),
            "{\"return\": {\"count\": 2, \"buf-b64\": \"ZWY=\", \"eof\": true}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1000}})"), "{\"return\": {}}\n");
  EXPECT_EQ(slurp(t.path("rw")), "abXYef");
}

TEST(CommandsFile, Seek) {
  file_fixture t;
  spit(t.path("s"), "0123456789");
  ASSERT_EQ(t.open("s", "r"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":-3,"whence":2}})"),
            "{\"return\": {\"eof\": false, \"position\": 7}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":1,"whence":"cur"}})"),
            "{\"return\": {\"eof\": false, \"position\": 8}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":7}})"),
            generic("invalid whence code 7"));
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":-1}})"),
            generic("invalid whence code -1"));
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"bogus"}})"),
            generic("Parameter 'whence' does not accept value 'bogus'"));
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":true}})"),
            generic("Invalid parameter type for 'whence', expected: GuestFileWhence"));
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":-100,"whence":0}})"),
            generic("failed to seek file: Invalid argument"));
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1,"offset":0,"whence":9}})"),
            generic("handle '1' has not been found"));
}

TEST(CommandsFile, ReadOnDirectory) {
  file_fixture t;
  ASSERT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + t.files.path + R"("}})"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000}})"), generic("failed to read file: Is a directory"));
}

TEST(CommandsFile, SeekOnPipeIsIllegal) {
  file_fixture t;
  ASSERT_EQ(::mkfifo(t.path("fifo").c_str(), 0600), 0);
  // O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
  ASSERT_EQ(t.open("fifo", "r"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}})"),
            generic("failed to seek file: Illegal seek"));
  EXPECT_EQ(t(R"({"execute":"guest-file-read","arguments":{"handle":1000}})"),
            "{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": true}}\n");
}

TEST(CommandsFile, CloseForgetsTheHandle) {
  file_fixture t;
  ASSERT_EQ(t.open("c", "w"), "{\"return\": 1000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1000}})"), "{\"return\": {}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":1000}})"), generic("handle '1000' has not been found"));
  EXPECT_EQ(t(R"({"execute":"guest-file-flush","arguments":{"handle":1000}})"), generic("handle '1000' has not been found"));
  EXPECT_EQ(t(R"({"execute":"guest-file-close","arguments":{"handle":"1000"}})"),
            generic("Invalid parameter type for 'handle', expected: integer"));
}

TEST(CommandsFile, CommitFailureClosesAndConsumesTheNumber) {
  file_fixture t;
  spit(t.path("x"), "x");
  std::filesystem::remove_all(t.state.path);
  EXPECT_EQ(t.open("x", "r"), generic("failed to commit persistent state to disk"));
  std::filesystem::create_directory(t.state.path);
  EXPECT_EQ(t.open("x", "r"), "{\"return\": 1001}\n");
  EXPECT_EQ(t.state.list(), (std::set<std::string>{"qga.state"}));
}

// Issue 16, defect 5: fd_counter=9223372036854775807 in qga.state made the next open add 1 to
// INT64_MAX (UBSan abort; Release handed out INT64_MAX, then INT64_MIN). qemu-ga reads the
// counter with g_key_file_get_integer(): strtol base 10 into a gint, so a value that is not
// an int (out of range, not a number) reads as 0 - that is where its "0 and 1" come from. Every
// case below was run against qemu-ga 7.2 (two guest-file-opens, then qga.state).
TEST(CommandsFile, HandleCounterIsReadLikeQemuGa) {
  struct row {
    std::string stored;
    std::int64_t first;
    std::string saved;
  };
  const row rows[] = {
      {"9223372036854775807", 0, "2"},   // not a gint: 0
      {"-9223372036854775808", 0, "2"},
      {"99999999999999999999", 0, "2"},  // ERANGE
      {"2147483648", 0, "2"},            // INT32_MAX + 1
      // The largest gint counts on past it, like qemu-ga in the same run (qemu-ga then saves
      // -2147483647: g_key_file_set_integer() truncates to a gint and its next start hands out
      // -1 for every open; fleetga saves the count, which its next start reads as 0).
      {"2147483647", 2147483647, "2147483649"},
      {"abc", 0, "2"},
      {"7x", 0, "2"},
      {"", 0, "2"},
      {"0x10", 0, "2"},
      {"12 x", 12, "14"},  // strtol stops at a space: GLib takes what came before it
      {"+7", 7, "9"},
      {" 7", 7, "9"},      // the key file drops the blank after '='
  };
  for (const row& r : rows) {
    SCOPED_TRACE("fd_counter=" + r.stored);
    file_fixture t;
    spit(t.state / "qga.state", "[global]\nfd_counter=" + r.stored + "\n");
    t.start();
    EXPECT_EQ(t.open("a", "w"), "{\"return\": " + std::to_string(r.first) + "}\n");
    EXPECT_EQ(t.open("b", "w"), "{\"return\": " + std::to_string(r.first + 1) + "}\n");
    EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=" + r.saved + "\n");
  }
}

// The counter can't reach INT64_MAX from qga.state any more (it starts as a gint), but the
// step never overflows: after INT64_MAX comes 0, as in qemu-ga before it chose to abort().
TEST(CommandsFile, HandleCounterWrapsToZero) {
  EXPECT_EQ(commands::next_fd_counter(1000), 1001);
  EXPECT_EQ(commands::next_fd_counter(-1), 0);
  EXPECT_EQ(commands::next_fd_counter(std::numeric_limits<std::int64_t>::max() - 1),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(commands::next_fd_counter(std::numeric_limits<std::int64_t>::max()), 0);
}

}  // namespace
}  // namespace fleetga::test

namespace fleetga::test {
namespace {

// Checked against qemu-ga 7.2: QEMU stores a NUL in a string as C0 80, so that is what
// open(2) gets; the message shows \u0000; a mode containing a NUL is no mode.
TEST(CommandsFile, NulInPathAndMode) {
  file_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + t.path("zz") + R"(\u0000junk","mode":"w"}})"),
            "{\"return\": 1000}\n");
  EXPECT_TRUE(std::filesystem::exists(t.path("zz\xC0\x80junk")));
  EXPECT_FALSE(std::filesystem::exists(t.path("zz")));
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":"/nonexistent\u0000x","mode":"r"}})"),
            generic("failed to open file '/nonexistent\\u0000x' (mode: 'r'): No such file or directory"));
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + t.path("zz") + R"(","mode":"r\u0000"}})"),
            generic("invalid file open mode 'r\\u0000'"));
}

}  // namespace
}  // namespace fleetga::test
