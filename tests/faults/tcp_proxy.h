// A loopback TCP proxy the fault tests control: it listens on 127.0.0.1:0 and
// forwards every accepted connection to a target port, until told to
// black-hole: then it stops forwarding and stops reading (the sockets stay
// open, so the peers see a silent network, not a reset) until restored.
//
// Thread-safety: one thread of its own runs poll() over every socket; the
// public methods may be called from any thread.
#ifndef ORCHARD_TESTS_FAULTS_TCP_PROXY_H_
#define ORCHARD_TESTS_FAULTS_TCP_PROXY_H_

#include <atomic>
#include <cstdint>
#include <thread>

namespace orchard::it {

class TcpProxy {
 public:
  // Starts listening and forwarding to 127.0.0.1:target_port. Throws
  // HarnessError if it cannot listen.
  explicit TcpProxy(uint16_t target_port);
  // Stops the thread and closes every socket.
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  // Stops moving bytes (and accepting) in both directions; keeps the sockets.
  void BlackHole() { black_hole_ = true; }
  // Moves bytes again, including what the kernel buffered meanwhile.
  void Restore() { black_hole_ = false; }
  // Points new connections at another port (a restarted server).
  void Retarget(uint16_t target_port) { target_port_ = target_port; }
  uint64_t connections() const { return connections_; }

 private:
  void Loop();

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: the destructor wakes poll()
  uint16_t port_ = 0;
  std::atomic<uint16_t> target_port_;
  std::atomic<bool> black_hole_{false};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
};

}  // namespace orchard::it

#endif  // ORCHARD_TESTS_FAULTS_TCP_PROXY_H_
