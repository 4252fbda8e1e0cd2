// The hardware family through service::handle, on fixture roots (tests/data/hardware).
// Expected replies are byte-exact, member order included (qemu-ga 7.2 on this machine printed
// the same orders: see the static_asserts in commands/hardware.cpp).
#include <dirent.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

std::string hw_data(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/hardware/" + std::string(rel); }

std::vector<std::string> readdir_names(const std::string& dir) {
  std::vector<std::string> v;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") v.push_back(n);
    }
    ::closedir(d);
  }
  return v;
}

// The reply for a list whose elements come in readdir order of `dir`: `items` maps the
// directory entry name to its JSON text; other entries are skipped.
std::string list_in_readdir_order(const std::string& dir, const std::map<std::string, std::string>& items) {
  std::string s = "{\"return\": [";
  bool first = true;
  for (const auto& n : readdir_names(dir)) {
    auto it = items.find(n);
    if (it == items.end()) continue;
    if (!first) s += ", ";
    first = false;
    s += it->second;
  }
  return s + "]}\n";
}

struct hw_fixture : service_fixture {
  temp_dir root;
  explicit hw_fixture(std::string_view tree = {}) {
    if (!tree.empty()) std::filesystem::copy(hw_data(tree), root.path, std::filesystem::copy_options::recursive);
    sys = fake_system(root.path);
  }
  std::string at(std::string_view rel) const { return root / rel; }
};

std::string err(std::string_view desc) {
  return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(desc) + "\"}}\n";
}

// ---- vcpus -----------------------------------------------------------------------------

TEST(CommandsHardware, GetVcpusRealCapture) {
  hw_fixture t("real");
  EXPECT_EQ(t(R"({"execute":"guest-get-vcpus"})"),
            list_in_readdir_order(t.at("sys/devices/system/cpu"),
                                  {{"cpu0", R"({"online": true, "can-offline": false, "logical-id": 0})"},
                                   {"cpu1", R"({"online": true, "can-offline": true, "logical-id": 1})"}}));
}

TEST(CommandsHardware, GetVcpusThreeCpus) {
  hw_fixture t("synthetic");
  const std::map<std::string, std::string> items{
      {"cpu0", R"({"online": true, "can-offline": false, "logical-id": 0})"},
      {"cpu1", R"({"online": true, "can-offline": true, "logical-id": 1})"},
      {"cpu2", R"({"online": false, "can-offline": true, "logical-id": 2})"}};
  const std::string reply = t(R"({"execute":"guest-get-vcpus"})");
  EXPECT_EQ(reply, list_in_readdir_order(t.at("sys/devices/system/cpu"), items));
  for (const auto& [name, json] : items) EXPECT_NE(reply.find(json), std::string::npos) << name;
  EXPECT_EQ(t(R"({"execute":"guest-get-vcpus","arguments":{"x":1}})"), err("Parameter 'x' is unexpected"));
}

TEST(CommandsHardware, GetVcpusErrors) {
  hw_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-get-vcpus"})"),
            err("failed to list entries: /sys/devices/system/cpu: No such file or directory"));
  std::filesystem::create_directories(t.at("sys/devices/system/cpu/cpu3"));
  spit(t.at("sys/devices/system/cpu/cpu3/online"), "");
  EXPECT_EQ(t(R"({"execute":"guest-get-vcpus"})"),
            err(R"(pread(\"/sys/devices/system/cpu/cpu3//online\"): unexpected EOF)"));
  spit(t.at("sys/devices/system/cpu/cpu3/online"), "0");
  EXPECT_EQ(t(R"({"execute":"guest-get-vcpus"})"),
            R"({"return": [{"online": false, "can-offline": true, "logical-id": 3}]})"
            "\n");
}

TEST(CommandsHardware, SetVcpus) {
  hw_fixture t("synthetic");
  const std::string cpu = t.at("sys/devices/system/cpu");
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[]}})"), "{\"return\": 0}\n");
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":2,"online":true},)"
              R"({"logical-id":1,"online":false,"can-offline":false}]}})"),
            "{\"return\": 2}\n");
  EXPECT_EQ(slurp(cpu + "/cpu2/online"), "1\n");
  EXPECT_EQ(slurp(cpu + "/cpu1/online"), "0\n");
  // The first failure stops the list; it is an error only when nothing was processed.
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1,"online":true},)"
              R"({"logical-id":0,"online":false},{"logical-id":2,"online":false}]}})"),
            "{\"return\": 1}\n");
  EXPECT_EQ(slurp(cpu + "/cpu1/online"), "1\n");
  EXPECT_EQ(slurp(cpu + "/cpu2/online"), "1\n");  // never reached
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":false}]}})"),
            err("logical processor #0 can't be offlined"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":true},)"
              R"({"logical-id":1,"online":true},{"logical-id":0,"online":true}]}})"),
            "{\"return\": 3}\n");
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":7,"online":true}]}})"),
            err(R"(open(\"/sys/devices/system/cpu/cpu7/\"): No such file or directory)"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":-1,"online":true}]}})"),
            err(R"(open(\"/sys/devices/system/cpu/cpu-1/\"): No such file or directory)"));
}

TEST(CommandsHardware, SetVcpusArgumentErrors) {  // texts as qemu-ga 7.2 printed them here
  hw_fixture t("synthetic");
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus"})"), err("Parameter 'vcpus' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":{}}})"),
            err("Invalid parameter type for 'vcpus', expected: array"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[1]}})"),
            err("Invalid parameter type for 'vcpus[0]', expected: object"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0}]}})"),
            err("Parameter 'vcpus[0].online' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":true,"bogus":1}]}})"),
            err("Parameter 'vcpus[0].bogus' is unexpected"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":true,"can-offline":"x"}]}})"),
            err("Invalid parameter type for 'vcpus[0].can-offline', expected: boolean"));
  EXPECT_EQ(t(R"({"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1,"online":true},{"online":true}]}})"),
            err("Parameter 'vcpus[1].logical-id' is missing"));
  // Nothing was written by a request that failed to decode.
  EXPECT_EQ(slurp(t.at("sys/devices/system/cpu/cpu2/online")), "0\n");
}

// ---- memory blocks ---------------------------------------------------------------------

TEST(CommandsHardware, GetMemoryBlocksRealCapture) {
  hw_fixture t("real");
  std::map<std::string, std::string> items;
  for (int i : {0, 1, 2, 3, 32, 99, 121, 188, 196})
    items["memory" + std::to_string(i)] =
        R"({"online": true, "can-offline": true, "phys-index": )" + std::to_string(i) + "}";
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-blocks"})"),
            list_in_readdir_order(t.at("sys/devices/system/memory"), items));
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-block-info"})"), "{\"return\": {\"size\": 134217728}}\n");
}

TEST(CommandsHardware, GetMemoryBlocksSynthetic) {
  hw_fixture t("synthetic");
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-blocks"})"),
            list_in_readdir_order(t.at("sys/devices/system/memory"),
                                  {{"memory0", R"({"online": true, "can-offline": true, "phys-index": 0})"},
                                   {"memory1", R"({"online": false, "can-offline": false, "phys-index": 1})"},
                                   {"memory2", R"({"online": true, "can-offline": false, "phys-index": 2})"},
                                   {"memory3", R"({"online": true, "can-offline": false, "phys-index": 3})"}}));
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-blocks","arguments":{"a":1}})"), err("Parameter 'a' is unexpected"));
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-block-info","arguments":{"a":1}})"), err("Parameter 'a' is unexpected"));
}

TEST(CommandsHardware, GetMemoryBlocksEdges) {
  hw_fixture t;
  // No memory directory: [] (qemu-ga returns an empty list without an error).
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-blocks"})"), "{\"return\": []}\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-block-info"})"),
            err(R"(open(\"/sys/devices/system/memory/\"): No such file or directory)"));
  // A directory without blocks.
  std::filesystem::create_directories(t.at("sys/devices/system/memory"));
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-blocks"})"), err("guest reported zero memory blocks!"));
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-block-info"})"),
            err(R"(open sysfs file \"block_size_bytes\": No such file or directory)"));
  spit(t.at("sys/devices/system/memory/block_size_bytes"), "");
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-block-info"})"),
            err(R"(pread sysfs file \"block_size_bytes\": unexpected EOF)"));
  spit(t.at("sys/devices/system/memory/block_size_bytes"), "40000000\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-block-info"})"), "{\"return\": {\"size\": 1073741824}}\n");
  // A block whose state can't be read fails the whole list.
  std::filesystem::create_directories(t.at("sys/devices/system/memory/memory8/state"));
  EXPECT_EQ(t(R"({"execute":"guest-get-memory-blocks"})"), err(R"(pread sysfs file \"state\": Is a directory)"));
}

TEST(CommandsHardware, SetMemoryBlocks) {
  hw_fixture t("synthetic");
  const std::string mem = t.at("sys/devices/system/memory");
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[]}})"), "{\"return\": []}\n");
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[)"
              R"({"phys-index":0,"online":true},{"phys-index":1,"online":true,"can-offline":true},)"
              R"({"phys-index":9999,"online":false},{"phys-index":3,"online":false},)"
              R"({"phys-index":3,"online":true},{"phys-index":-1,"online":true}]}})"),
            "{\"return\": [{\"response\": \"success\", \"phys-index\": 0}, "
            "{\"response\": \"success\", \"phys-index\": 1}, "
            "{\"response\": \"not-found\", \"error-code\": 2, \"phys-index\": 9999}, "
            "{\"response\": \"operation-not-supported\", \"error-code\": 2, \"phys-index\": 3}, "
            "{\"response\": \"success\", \"error-code\": 2, \"phys-index\": 3}, "
            "{\"response\": \"not-found\", \"error-code\": 2, \"phys-index\": 18446744073709551615}]}\n");
  EXPECT_EQ(slurp(mem + "/memory0/state"), "online\n");
  EXPECT_EQ(slurp(mem + "/memory1/state"), "onlinee\n");  // pwrite at 0, like sysfs gets it
  spit(mem + "/memory2/state", "");
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":2,"online":false}]}})"),
            "{\"return\": [{\"response\": \"operation-failed\", \"error-code\": 0, \"phys-index\": 2}]}\n");
}

TEST(CommandsHardware, SetMemoryBlocksWithoutSysfsMemory) {
  hw_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":5,"online":true}]}})"),
            "{\"return\": [{\"response\": \"operation-not-supported\", \"error-code\": 2, \"phys-index\": 5}]}\n");
}

TEST(CommandsHardware, SetMemoryBlocksArgumentErrors) {  // texts as qemu-ga 7.2 printed them here
  hw_fixture t("synthetic");
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":3}]}})"),
            err("Parameter 'mem-blks[0].online' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":"x","online":true}]}})"),
            err("Parameter 'mem-blks[0].phys-index' expects uint64"));
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":1.5,"online":true}]}})"),
            err("Parameter 'mem-blks[0].phys-index' expects uint64"));
  EXPECT_EQ(t(R"({"execute":"guest-set-memory-blocks"})"), err("Parameter 'mem-blks' is missing"));
}

// ---- /proc statistics ------------------------------------------------------------------

TEST(CommandsHardware, DiskstatsByFieldCount) {
  hw_fixture t;
  std::filesystem::create_directories(t.at("proc"));
  spit(t.at("proc/diskstats"),
       "   8       0 sda 1 2 3 4\n"
       "   8       1 sdb 1 2 3 4 5 6 7 8 9 10 11\n"
       "   8       2 sdc 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"
       "   8       3 sdd 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n"
       "   8       4 sde 1 2 3 4 5\n"
       "   8       5 x\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-diskstats"})"),
            "{\"return\": ["
            "{\"name\": \"sda\", \"stats\": {\"write-ios\": 3, \"read-ios\": 1, \"write-sectors\": 4, "
            "\"read-sectors\": 2}, \"minor\": 0, \"major\": 8}, "
            "{\"name\": \"sdb\", \"stats\": {\"write-ios\": 5, \"weight-ticks\": 11, \"read-ios\": 1, "
            "\"write-sectors\": 7, \"write-merges\": 6, \"write-ticks\": 8, \"ios-pgr\": 9, \"read-sectors\": 3, "
            "\"read-merges\": 2, \"total-ticks\": 10, \"read-ticks\": 4}, \"minor\": 1, \"major\": 8}, "
            "{\"name\": \"sdc\", \"stats\": {\"discard-sectors\": 14, \"write-ios\": 5, \"discard-ios\": 12, "
            "\"discard-ticks\": 15, \"weight-ticks\": 11, \"read-ios\": 1, \"write-sectors\": 7, \"write-merges\": 6, "
            "\"write-ticks\": 8, \"ios-pgr\": 9, \"read-sectors\": 3, \"read-merges\": 2, \"total-ticks\": 10, "
            "\"discard-merges\": 13, \"read-ticks\": 4}, \"minor\": 2, \"major\": 8}, "
            "{\"name\": \"sdd\", \"stats\": {\"discard-sectors\": 14, \"write-ios\": 5, \"discard-ios\": 12, "
            "\"discard-ticks\": 15, \"weight-ticks\": 11, \"read-ios\": 1, \"flush-ios\": 16, \"write-sectors\": 7, "
            "\"write-merges\": 6, \"write-ticks\": 8, \"ios-pgr\": 9, \"read-sectors\": 3, \"read-merges\": 2, "
            "\"total-ticks\": 10, \"discard-merges\": 13, \"flush-ticks\": 17, \"read-ticks\": 4}, \"minor\": 3, "
            "\"major\": 8}, "
            "{\"name\": \"sde\", \"stats\": {}, \"minor\": 4, \"major\": 8}]}\n");
  spit(t.at("proc/diskstats"), "");
  EXPECT_EQ(t(R"({"execute":"guest-get-diskstats"})"), "{\"return\": []}\n");
  std::filesystem::remove(t.at("proc/diskstats"));
  EXPECT_EQ(t(R"({"execute":"guest-get-diskstats"})"),
            err(R"(open(\"/proc/diskstats\"): No such file or directory)"));
  EXPECT_EQ(t(R"({"execute":"guest-get-diskstats","arguments":{"a":1}})"), err("Parameter 'a' is unexpected"));
}

TEST(CommandsHardware, DiskstatsRealCapture) {
  hw_fixture t("real");
  const std::string reply = t(R"({"execute":"guest-get-diskstats"})");
  const std::string zeros =
      "\"stats\": {\"discard-sectors\": 0, \"write-ios\": 0, \"discard-ios\": 0, \"discard-ticks\": 0, "
      "\"weight-ticks\": 0, \"read-ios\": 0, \"flush-ios\": 0, \"write-sectors\": 0, \"write-merges\": 0, "
      "\"write-ticks\": 0, \"ios-pgr\": 0, \"read-sectors\": 0, \"read-merges\": 0, \"total-ticks\": 0, "
      "\"discard-merges\": 0, \"flush-ticks\": 0, \"read-ticks\": 0}";
  // qemu-ga 7.2's first element on this machine, byte for byte.
  EXPECT_EQ(reply.substr(0, 400), ("{\"return\": [{\"name\": \"loop0\", " + zeros + ", \"minor\": 0, \"major\": 7}, " +
                                   "{\"name\": \"loop1\", " + zeros + ", \"minor\": 1, \"major\": 7}")
                                      .substr(0, 400));
  EXPECT_NE(reply.find("{\"name\": \"vda\", \"stats\": {\"discard-sectors\": 16446664, \"write-ios\": 43298, "
                       "\"discard-ios\": 20998, \"discard-ticks\": 3870, \"weight-ticks\": 194952, \"read-ios\": 141999, "
                       "\"flush-ios\": 1307, \"write-sectors\": 25163384, \"write-merges\": 48351, \"write-ticks\": 63217, "
                       "\"ios-pgr\": 0, \"read-sectors\": 6013266, \"read-merges\": 13439, \"total-ticks\": 19632, "
                       "\"discard-merges\": 23, \"flush-ticks\": 43, \"read-ticks\": 127821}, \"minor\": 0, "
                       "\"major\": 254}, {\"name\": \"zram0\", "),
            std::string::npos)
      << reply;
  EXPECT_EQ(reply.substr(reply.size() - 4), "}]}\n");
}

TEST(CommandsHardware, Cpustats) {
  // USER_HZ is 100 on every Linux the agent runs on; the parser test covers other values.
  ASSERT_EQ(::sysconf(_SC_CLK_TCK), 100);
  hw_fixture t;
  std::filesystem::create_directories(t.at("proc"));
  spit(t.at("proc/stat"),
       "cpu  9 9 9 9 9 9 9 9 9 9\n"
       "cpu0 1 2 3 4 5 6 7 8 9 10\n"
       "cpu1 100 0 250 7\n"
       "cpu2 1 1 1 1 1 1 1 1\n"
       "intr 1 2 3\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-cpustats"})"),
            "{\"return\": [{\"cpu\": 0, \"guestnice\": 100, \"idle\": 40, \"steal\": 80, \"iowait\": 50, "
            "\"system\": 30, \"guest\": 90, \"nice\": 20, \"irq\": 60, \"type\": \"linux\", \"user\": 10, "
            "\"softirq\": 70}, "
            "{\"cpu\": 1, \"idle\": 70, \"system\": 2500, \"nice\": 0, \"type\": \"linux\", \"user\": 1000}, "
            "{\"cpu\": 2, \"idle\": 10, \"steal\": 10, \"iowait\": 10, \"system\": 10, \"nice\": 10, \"irq\": 10, "
            "\"type\": \"linux\", \"user\": 10, \"softirq\": 10}]}\n");
  std::filesystem::remove(t.at("proc/stat"));
  EXPECT_EQ(t(R"({"execute":"guest-get-cpustats"})"), err(R"(open(\"/proc/stat\"): No such file or directory)"));
  EXPECT_EQ(t(R"({"execute":"guest-get-cpustats","arguments":{"a":1}})"), err("Parameter 'a' is unexpected"));
}

TEST(CommandsHardware, CpustatsRealCapture) {
  ASSERT_EQ(::sysconf(_SC_CLK_TCK), 100);
  hw_fixture t("real");
  // cpu0 108614 0 19549 212591 153 0 33 64 0 0 / cpu1 106203 0 23024 210864 757 0 145 76 0 0
  EXPECT_EQ(t(R"({"execute":"guest-get-cpustats"})"),
            "{\"return\": [{\"cpu\": 0, \"guestnice\": 0, \"idle\": 2125910, \"steal\": 640, \"iowait\": 1530, "
            "\"system\": 195490, \"guest\": 0, \"nice\": 0, \"irq\": 0, \"type\": \"linux\", \"user\": 1086140, "
            "\"softirq\": 330}, {\"cpu\": 1, \"guestnice\": 0, \"idle\": 2108640, \"steal\": 760, \"iowait\": 7570, "
            "\"system\": 230240, \"guest\": 0, \"nice\": 0, \"irq\": 0, \"type\": \"linux\", \"user\": 1062030, "
            "\"softirq\": 1450}]}\n");
}

TEST(CommandsHardware, ListedInGuestInfo) {
  service_fixture t;
  const std::string info = t(R"({"execute":"guest-info"})");
  for (const char* name : {"guest-get-vcpus", "guest-set-vcpus", "guest-get-memory-blocks", "guest-set-memory-blocks",
                           "guest-get-memory-block-info", "guest-get-diskstats", "guest-get-cpustats"})
    EXPECT_NE(info.find(std::string("{\"enabled\": true, \"name\": \"") + name + "\", \"success-response\": true}"),
              std::string::npos)
        << name;
  // Reverse registration order: cpustats, diskstats come before the memory-block and vcpu rows.
  EXPECT_LT(info.find("guest-get-cpustats"), info.find("guest-get-diskstats"));
  EXPECT_LT(info.find("guest-get-diskstats"), info.find("guest-get-memory-block-info"));
  EXPECT_LT(info.find("guest-get-memory-block-info"), info.find("guest-set-memory-blocks"));
  EXPECT_LT(info.find("guest-set-memory-blocks"), info.find("guest-get-memory-blocks"));
  EXPECT_LT(info.find("guest-get-memory-blocks"), info.find("guest-set-vcpus"));
  EXPECT_LT(info.find("guest-set-vcpus"), info.find("guest-get-vcpus"));
}

}  // namespace
}  // namespace fleetga::test
