// The hot path allocates nothing in steady state: counted with a replaced global operator
// new that only counts while `counting` is set on this thread.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>

#include "commands_harness.hpp"

namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;
}  // namespace

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // malloc/free behind new/delete on purpose
#endif
// Every non-aligned form is replaced so that new/delete pairs stay consistent (ASan checks).
static void* counted_alloc(std::size_t n) noexcept {
  if (counting) ++allocations;
  return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace fleetga::test {
namespace {

std::size_t allocations_per_request(service_fixture& t, std::string_view json) {
  std::string buf(json);
  buf.append(protocol::input_padding, '\0');
  protocol::frame f;
  f.text = std::string_view(buf.data(), json.size());
  std::string out;
  out.reserve(1 << 16);
  auto once = [&] {
    out.clear();
    auto task = t.svc->handle(f, out);
    EXPECT_TRUE(task.start());
    task.take();
  };
  for (int i = 0; i < 10; ++i) once();  // warm-up: frame cache, caches, parser buffers
  allocations = 0;
  counting = true;
  for (int i = 0; i < 100; ++i) once();
  counting = false;
  return allocations;
}

TEST(CommandsAlloc, SteadyStateHotPathsDoNotAllocate) {
  // The counter itself works.
  allocations = 0;
  counting = true;
  auto probe = std::make_unique<std::string>(100, 'x');
  counting = false;
  EXPECT_EQ(allocations, 2u);
  service_fixture t;
  EXPECT_EQ(allocations_per_request(t, R"({"execute":"guest-ping"})"), 0u);
  EXPECT_EQ(allocations_per_request(t, R"({"execute":"guest-ping","id":12345})"), 0u);
  EXPECT_EQ(allocations_per_request(t, R"({"execute":"guest-fsfreeze-status"})"), 0u);
  EXPECT_EQ(allocations_per_request(t, R"({"execute":"guest-info"})"), 0u);
  EXPECT_EQ(allocations_per_request(t, R"({"execute":"guest-get-time"})"), 0u);
}

}  // namespace
}  // namespace fleetga::test
