// The daemon's HTTP endpoint (adapters/serve_http.h) over real TCP: metrics in Prometheus' text
// format, health, readiness as the daemon says, the admin reload with and without the token, and
// the status codes of wrong methods and paths.
#include <doctest/doctest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "adapters/serve_http.h"

namespace vigil {
namespace {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct Reply {
  int status = 0;
  std::string body;
};

Reply Call(int port, http::verb method, const std::string& target, const std::string& auth = "") {
  boost::asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  http::request<http::string_body> request(method, target, 11);
  request.set(http::field::host, "127.0.0.1");
  if (!auth.empty()) request.set(http::field::authorization, auth);
  request.prepare_payload();
  http::write(socket, request);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  return {static_cast<int>(response.result_int()), response.body()};
}

TEST_CASE("serve http: metrics, health, readiness and admin reload") {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter().Name("vigil_test_events_total").Help("test").Register(*registry);
  family.Add({{"source", "payments"}}).Increment(42);
  std::atomic<bool> ready{false};
  std::atomic<int> reloads{0};

  SUBCASE("with an admin token") {
    HttpEndpointOptions options;
    options.port = 0;
    options.registry = registry;
    options.admin_token = "s3cr3t-token";
    options.ready = [&] { return ready.load(); };
    options.reload = [&](std::string* message) {
      ++reloads;
      *message = "reloaded";
      return true;
    };
    std::string error;
    auto endpoint = HttpEndpoint::Start(options, &error);
    REQUIRE_MESSAGE(endpoint != nullptr, error);
    const int port = endpoint->port();
    REQUIRE(port > 0);

    const Reply metrics = Call(port, http::verb::get, "/metrics");
    CHECK(metrics.status == 200);
    CHECK(metrics.body.find("vigil_test_events_total{source=\"payments\"} 42") != std::string::npos);
    CHECK(Call(port, http::verb::get, "/healthz").status == 200);
    CHECK(Call(port, http::verb::get, "/readyz").status == 503);
    ready = true;
    CHECK(Call(port, http::verb::get, "/readyz").status == 200);

    CHECK(Call(port, http::verb::post, "/admin/reload").status == 401);
    CHECK(Call(port, http::verb::post, "/admin/reload", "Bearer wrong").status == 401);
    CHECK(Call(port, http::verb::post, "/admin/reload", "Bearer s3cr3t-token-and-more").status == 401);
    CHECK(reloads == 0);
    const Reply ok = Call(port, http::verb::post, "/admin/reload", "Bearer s3cr3t-token");
    CHECK(ok.status == 200);
    CHECK(ok.body == "reloaded\n");
    CHECK(reloads == 1);
    CHECK(Call(port, http::verb::get, "/admin/reload", "Bearer s3cr3t-token").status == 405);
    CHECK(Call(port, http::verb::post, "/metrics").status == 405);
    CHECK(Call(port, http::verb::get, "/nope").status == 404);
  }
  SUBCASE("without one, admin calls are refused") {
    HttpEndpointOptions options;
    options.port = 0;
    options.registry = registry;
    options.reload = [&](std::string*) {
      ++reloads;
      return true;
    };
    std::string error;
    auto endpoint = HttpEndpoint::Start(options, &error);
    REQUIRE(endpoint != nullptr);
    CHECK(Call(endpoint->port(), http::verb::post, "/admin/reload", "Bearer ").status == 403);
    CHECK(reloads == 0);
  }
  SUBCASE("an address in use is an error") {
    HttpEndpointOptions options;
    options.port = 0;
    std::string error;
    auto first = HttpEndpoint::Start(options, &error);
    REQUIRE(first != nullptr);
    options.port = first->port();
    CHECK(HttpEndpoint::Start(options, &error) == nullptr);
    CHECK(error.find("metrics: cannot listen on 127.0.0.1:") == 0);
  }
}

}  // namespace
}  // namespace vigil
