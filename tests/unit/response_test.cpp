#include "protocol/response.hpp"

#include <gtest/gtest.h>

using namespace fleetga::protocol;

TEST(Response, ReturnWithAndWithoutId) {
  std::string out = "prev";
  std::size_t mark = begin_return(out, false);
  EXPECT_EQ(mark, 4u);
  out += "{}";
  end_return(out, "\"x\"");
  EXPECT_EQ(out, "prev{\"return\": {}, \"id\": \"x\"}\n");
  out.clear();
  begin_return(out, false);
  out += "123";
  end_return(out, "");
  EXPECT_EQ(out, "{\"return\": 123}\n");
}

TEST(Response, DelimitedPrefix) {
  std::string out;
  std::size_t mark = begin_return(out, true);
  EXPECT_EQ(mark, 0u);
  out += "123";
  end_return(out, "\"x\"");
  EXPECT_EQ(out, "\xff{\"return\": 123, \"id\": \"x\"}\n");
  out.resize(mark);  // rollback
  EXPECT_TRUE(out.empty());
}

TEST(Response, Errors) {
  std::string out;
  write_error(out, generic("Parameter 'id' is missing"), "");
  EXPECT_EQ(out,
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is missing\"}}\n");
  out.clear();
  write_error(out, {error_class::command_not_found, "The command guest-foo has not been found"},
              "{\"a\": 1}");
  EXPECT_EQ(out,
            "{\"id\": {\"a\": 1}, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
            "command guest-foo has not been found\"}}\n");
  out.clear();
  write_error(out, generic("JSON parse error, stray '\xff'"), "");
  EXPECT_EQ(out,
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray "
            "'\\uFFFD'\"}}\n");
  out.clear();
  write_error(out, generic("a\"b\nc"), "1");
  EXPECT_EQ(out,
            "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"a\\\"b\\nc\"}}\n");
}
