// The daemon's HTTP endpoint (docs/operations.md "Metrics and health"): Prometheus metrics,
// health and readiness, and the admin calls. Entry point: HttpEndpoint::Start.
//
//   GET  /metrics        the registry in Prometheus' text format (prometheus-cpp's serializer)
//   GET  /healthz        200 "ok" while the process serves requests
//   GET  /readyz         200 "ready" once the daemon has restored its state and runs, else 503
//   POST /admin/reload   with "Authorization: Bearer TOKEN": reloads the rules (200 with the
//                        outcome, 409 when it was refused, e.g. rule errors); 401 without or
//                        with a wrong token; 403 when no admin token is configured
//   anything else        404 (405 for a wrong method on a known path)
//
// Boost.Beast serves it rather than prometheus-cpp's civetweb exposer, which has no place for
// /healthz, /readyz or authenticated admin calls; prometheus-cpp's core library still holds the
// metrics and writes the text format. One thread, one request per connection (scrapes and admin
// calls are rare); the token is compared in constant time and never logged.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace prometheus {
class Registry;
}

namespace vigil {

struct HttpEndpointOptions {
  std::string host = "127.0.0.1";
  int port = 9464;                             // 0: any free port (see port())
  std::optional<std::string> admin_token;      // nullopt: admin calls refused (403)
  std::shared_ptr<prometheus::Registry> registry;
  std::function<bool()> ready;                 // /readyz
  // POST /admin/reload: true when the new rules took over; `message` says what happened.
  std::function<bool(std::string* message)> reload;
};

class HttpEndpoint {
 public:
  // Binds and starts serving on its own thread; null with `error` when the address cannot be
  // bound.
  static std::unique_ptr<HttpEndpoint> Start(HttpEndpointOptions options, std::string* error);
  ~HttpEndpoint();   // stops the thread
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const;   // the bound port

  struct Impl;

 private:
  explicit HttpEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil
