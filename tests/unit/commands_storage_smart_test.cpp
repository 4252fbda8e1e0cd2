// guest-get-disks' NVMe SMART (`smart`, qemu-ga >= 7.1): the log page parser on a synthetic
// page (tests/data/storage/nvme-smart/make-log-page.py: this machine has no NVMe), the member
// order of the flattened GuestDiskSmart union, and which disks are asked, with a fake
// nvme_admin over the synthetic sysfs tree.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "commands/state.hpp"
#include "commands/storage.hpp"
#include "commands/table.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/storage/" + std::string(rel); }
std::string page() { return slurp(fixture("nvme-smart/log-page.bin")); }

struct fake_admin final : platform::nvme_admin {
  std::map<std::string, std::string> pages;  // devnode -> page; anything else: ENOTTY
  std::vector<std::string> asked;
  int smart_log(const std::string& devnode, std::string& out) override {
    asked.push_back(devnode);
    auto it = pages.find(devnode);
    if (it == pages.end()) return ENOTTY;
    out = it->second;
    return 0;
  }
};

struct disks_direct {
  temp_dir dir;
  fake_system sys;
  commands::inline_offloader pool;
  commands::agent_state st;
  std::shared_ptr<fake_admin> admin = std::make_shared<fake_admin>();

  explicit disks_direct(std::string root)
      : sys(std::move(root)), st{pool, sys, dir.path, commands::all_commands_mask, {1, 0, 0}} {
    st.storage.nvme = admin;
  }
  std::string get_disks() {
    std::string buf(protocol::input_padding, '\0');
    std::string out;
    protocol::json_writer w(out);
    commands::call c{std::string_view(buf.data(), 0), w, st};
    auto t = commands::command_table[*commands::find_command("guest-get-disks")].handler(c);
    EXPECT_TRUE(t.start());
    auto err = t.take();
    if (err) return "error: " + err->desc;
    return out;
  }
};

// The fixture page's values in the order QEMU prints the union's QDict (tdb_hash % 512
// buckets, checked independently with a Python port of qdict.c's hash).
constexpr std::string_view smart_json =
    R"("smart": {"available-spare": 100, "host-write-commands-hi": 0, "temperature": 321, )"
    R"("power-on-hours-lo": 1234, "host-read-commands-hi": 0, "host-read-commands-lo": 18446744073709551615, )"
    R"("number-of-error-log-entries-hi": 9223372036854775808, "unsafe-shutdowns-hi": 0, "unsafe-shutdowns-lo": 5, )"
    R"("host-write-commands-lo": 42, "available-spare-threshold": 10, "power-on-hours-hi": 0, )"
    R"("controller-busy-time-hi": 0, "controller-busy-time-lo": 7, "data-units-read-hi": 1, )"
    R"("data-units-read-lo": 72623859790382856, "power-cycles-hi": 0, "power-cycles-lo": 19, )"
    R"("media-errors-hi": 0, "media-errors-lo": 0, "data-units-written-hi": 0, "data-units-written-lo": 123456789, )"
    R"("type": "nvme", "critical-warning": 4, "percentage-used": 3, "number-of-error-log-entries-lo": 2})";

TEST(StorageSmart, ParsesTheLogPage) {
  const std::string p = page();
  ASSERT_EQ(p.size(), platform::nvme_smart_log_size);
  auto s = platform::parse_nvme_smart_log(p);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->critical_warning, 4);
  EXPECT_EQ(s->temperature, 321);
  EXPECT_EQ(s->available_spare, 100);
  EXPECT_EQ(s->available_spare_threshold, 10);
  EXPECT_EQ(s->percentage_used, 3);
  EXPECT_EQ(s->counters, (std::array<std::uint64_t, 20>{0x0102030405060708ull, 1, 123456789, 0,
                                                         0xFFFFFFFFFFFFFFFFull, 0, 42, 0, 7, 0, 19, 0, 1234, 0, 5, 0,
                                                         0, 0, 2, 0x8000000000000000ull}));
  // Only the first 192 bytes count; shorter is refused.
  EXPECT_EQ(platform::parse_nvme_smart_log(std::string_view(p).substr(0, 192)), s);
  EXPECT_FALSE(platform::parse_nvme_smart_log(std::string_view(p).substr(0, 191)));
  EXPECT_FALSE(platform::parse_nvme_smart_log(""));
}

TEST(StorageSmart, OnlyNvmeDisksAreAskedAndGetSmart) {
  disks_direct d(fixture("synthetic"));
  d.admin->pages["/dev/nvme0n1"] = page();
  const std::string out = d.get_disks();
  // Not the partitions, not the sata/scsi/virtio disks, not md/dm.
  EXPECT_EQ(d.admin->asked, (std::vector<std::string>{"/dev/nvme0n1"}));
  const std::string tail =
      R"({"name": "/dev/nvme0n1", )" + std::string(smart_json) +
      R"(, "dependencies": [], "partition": false, "address": {"bus-type": "nvme", "bus": 0, "unit": 0, )"
      R"("pci-controller": {"bus": 0, "slot": 6, "domain": 0, "function": 0}, "dev": "/dev/nvme0n1", "target": 0}}])";
  ASSERT_GE(out.size(), tail.size());
  EXPECT_EQ(out.substr(out.size() - tail.size()), tail);
  EXPECT_EQ(out.find("\"smart\""), out.size() - tail.size() + std::string_view(R"({"name": "/dev/nvme0n1", )").size());
}

TEST(StorageSmart, AdminFailureOrShortPageLeavesSmartOut) {
  disks_direct d(fixture("synthetic"));
  EXPECT_EQ(d.get_disks().find("smart"), std::string::npos);  // ENOTTY
  d.admin->pages["/dev/nvme0n1"] = page().substr(0, 100);
  EXPECT_EQ(d.get_disks().find("smart"), std::string::npos);
  EXPECT_EQ(d.admin->asked.size(), 2u);
}

TEST(StorageSmart, LinuxAdminOnFixtureFiles) {
  temp_dir root;
  std::filesystem::create_directories(root.path + "/dev");
  spit(root / "dev/nvme0n1", "not a device");
  platform::linux_nvme_admin admin(root.path);
  std::string p = "x";
  EXPECT_EQ(admin.smart_log("/dev/nvme0n1", p), ENOTTY);
  EXPECT_EQ(p, "");
  EXPECT_EQ(admin.smart_log("/dev/nvme1n1", p), ENOENT);
}

}  // namespace
}  // namespace fleetga::test
