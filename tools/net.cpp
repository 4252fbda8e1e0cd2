#include "tools/net.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <optional>
#include <tuple>

namespace fleetga::host {

std::string ec_text(const error_code& ec) {
  if (ec == asio::error::timed_out) return "timed out";
  if (ec == asio::error::eof) return "connection closed by the agent";
  return ec.message();
}

namespace {

error_code timed_out() { return error_code(asio::error::timed_out, asio::error::get_system_category()); }

// `op` (a use_tuple operation: its result is a tuple led by an error_code) against the deadline.
// nullopt when the deadline came first: `op` was cancelled, and like the timer it has completed
// by the time this returns (the operator waits for both), so nothing of either is left queued.
template <typename Result>
asio::awaitable<std::optional<Result>> until_deadline(asio::awaitable<Result> op, std::int64_t deadline_ns) {
  using namespace asio::experimental::awaitable_operators;
  if (deadline_ns <= 0) co_return co_await std::move(op);
  asio::steady_timer timer(co_await asio::this_coro::executor, to_tp(deadline_ns));
  auto first = co_await (std::move(op) || timer.async_wait(use_tuple));
  if (first.index() != 0) co_return std::nullopt;
  co_return std::get<0>(std::move(first));
}

}  // namespace

void agent_conn::close() {
  boost::system::error_code ignored;
  sock.close(ignored);
}

void agent_conn::reset_framer() { fr_ = std::make_unique<protocol::framer>(); }

asio::awaitable<error_code> agent_conn::connect(const std::string& path, std::int64_t deadline_ns) {
  asio::steady_timer retry(sock.get_executor());
  for (;;) {
    boost::system::error_code ignored;
    sock.close(ignored);
    reset_framer();
    auto done = co_await until_deadline(sock.async_connect(asio::local::stream_protocol::endpoint(path), use_tuple),
                                        deadline_ns);
    if (!done) co_return timed_out();
    auto [ec] = *done;
    if (!ec) {
      sock.non_blocking(true, ec);
      co_return error_code(ec);
    }
    const bool transient = ec == asio::error::connection_refused || ec == asio::error::not_found ||
                           ec == asio::error::try_again ||
                           ec == boost::system::errc::no_such_file_or_directory;
    if (!transient || now_ns() + 20'000'000 > deadline_ns) co_return error_code(ec);
    retry.expires_after(std::chrono::milliseconds(20));
    co_await retry.async_wait(use_tuple);
  }
}

asio::awaitable<error_code> agent_conn::write(std::string_view data, std::int64_t deadline_ns) {
  auto done =
      co_await until_deadline(asio::async_write(sock, asio::buffer(data.data(), data.size()), use_tuple), deadline_ns);
  if (!done) co_return timed_out();
  co_return error_code(std::get<0>(*done));
}

asio::awaitable<error_code> agent_conn::read_raw(asio::mutable_buffer buf, std::size_t& n, std::int64_t deadline_ns) {
  auto done = co_await until_deadline(sock.async_read_some(buf, use_tuple), deadline_ns);
  if (!done) {
    n = 0;
    co_return timed_out();
  }
  auto [ec, got] = *done;
  n = got;
  co_return error_code(ec);
}

asio::awaitable<error_code> agent_conn::next(reply_item& out, std::int64_t deadline_ns) {
  for (;;) {
    protocol::frame f;
    if (fr_->next(f)) {
      if (f.type == protocol::frame::kind::message) {
        out.type = reply_item::kind::json;
        out.text = f.text;
      } else if (is_delimiter_error(f.error)) {
        out.type = reply_item::kind::delim;
        out.text = {};
      } else {
        out.type = reply_item::kind::junk;
        out.text = f.error;
      }
      co_return error_code{};
    }
    auto span = fr_->prepare(64 * 1024);
    boost::system::error_code ec;
    // Try without a timer first: most of the time the reply is already there.
    std::size_t n = sock.read_some(asio::buffer(span.data(), span.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      auto done =
          co_await until_deadline(sock.async_read_some(asio::buffer(span.data(), span.size()), use_tuple), deadline_ns);
      if (!done) co_return timed_out();
      std::tie(ec, n) = *done;
    }
    if (ec) co_return error_code(ec);
    bytes_in += n;
    fr_->commit(n);
  }
}

asio::awaitable<error_code> agent_conn::sync_delimited(std::uint64_t id, std::int64_t deadline_ns, std::uint64_t* stale) {
  // Keep the id positive and inside int64 so every agent echoes it as a plain integer.
  id &= 0x3FFFFFFFFFFFFFFFull;
  std::string req = fmt::format("\xff{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{}}}}}\n", id);
  if (auto ec = co_await write(req, deadline_ns)) co_return ec;
  bool after_delim = false;
  int skipped = 0;
  for (;;) {
    reply_item it;
    if (auto ec = co_await next(it, deadline_ns)) co_return ec;
    if (it.type == reply_item::kind::delim) {
      after_delim = true;
      continue;
    }
    if (it.type == reply_item::kind::json && after_delim) {
      auto r = classify_reply(it.text, true);
      if (r.type == reply_info::kind::ret && r.ret_is_int && static_cast<std::uint64_t>(r.ret_int) == id)
        co_return error_code{};
    }
    after_delim = false;
    // The first skipped reply is the agent's parse error for our own 0xFF.
    if (stale && skipped++ > 0) ++*stale;
  }
}

}  // namespace fleetga::host
