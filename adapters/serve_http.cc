// The daemon's HTTP endpoint on Boost.Beast (serve_http.h says what it serves and why Beast).
#include "adapters/serve_http.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <thread>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace vigil {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

// Equal strings in time that does not depend on where they differ.
bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

}  // namespace

struct HttpEndpoint::Impl {
  HttpEndpointOptions options;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::atomic<bool> stopping{false};

  http::response<http::string_body> Handle(const http::request<http::string_body>& request) {
    http::response<http::string_body> response;
    response.version(request.version());
    response.keep_alive(false);
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    auto reply = [&](http::status status, std::string body) {
      response.result(status);
      response.body() = std::move(body);
    };
    const std::string target(request.target());
    const bool get = request.method() == http::verb::get;
    if (target == "/metrics") {
      if (!get) return reply(http::status::method_not_allowed, "GET only\n"), response;
      std::string text;
      if (options.registry != nullptr) {
        text = prometheus::TextSerializer().Serialize(options.registry->Collect());
      }
      response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      reply(http::status::ok, std::move(text));
    } else if (target == "/healthz") {
      if (!get) return reply(http::status::method_not_allowed, "GET only\n"), response;
      reply(http::status::ok, "ok\n");
    } else if (target == "/readyz") {
      if (!get) return reply(http::status::method_not_allowed, "GET only\n"), response;
      const bool ready = options.ready && options.ready();
      reply(ready ? http::status::ok : http::status::service_unavailable,
            ready ? "ready\n" : "not ready\n");
    } else if (target == "/admin/reload") {
      if (request.method() != http::verb::post) {
        return reply(http::status::method_not_allowed, "POST only\n"), response;
      }
      if (!options.admin_token.has_value()) {
        return reply(http::status::forbidden, "admin calls are off: no metrics.admin_token configured\n"),
               response;
      }
      const auto auth = request.find(http::field::authorization);
      const std::string given = auth == request.end() ? "" : std::string(auth->value());
      if (!ConstantTimeEqual(given, "Bearer " + *options.admin_token)) {
        return reply(http::status::unauthorized, "missing or wrong token\n"), response;
      }
      std::string message;
      const bool ok = options.reload && options.reload(&message);
      reply(ok ? http::status::ok : http::status::conflict, message + "\n");
    } else {
      reply(http::status::not_found, "not found\n");
    }
    return response;
  }

  void Serve(tcp::socket socket) {
    boost::beast::error_code ec;
    boost::beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    http::read(socket, buffer, parser, ec);
    if (ec) return;
    http::response<http::string_body> response = Handle(parser.get());
    response.prepare_payload();
    http::write(socket, response, ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
  }

  void Accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (stopping.load()) return;
      if (!ec) {
        // A client that sends nothing must not hold the endpoint forever.
        struct timeval tv{5, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        Serve(std::move(socket));
      }
      Accept();
    });
  }
};

HttpEndpoint::HttpEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpEndpoint::~HttpEndpoint() {
  impl_->stopping.store(true);
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::unique_ptr<HttpEndpoint> HttpEndpoint::Start(HttpEndpointOptions options, std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(impl->options.host, ec);
  if (ec) {
    *error = "metrics: bad listen address '" + impl->options.host + "': " + ec.message();
    return nullptr;
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl->options.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "metrics: cannot listen on " + impl->options.host + ":" +
             std::to_string(impl->options.port) + ": " + ec.message();
    return nullptr;
  }
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HttpEndpoint>(new HttpEndpoint(std::move(impl)));
}

int HttpEndpoint::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace vigil
