// The loopback TCP proxy; see tcp_proxy.h. All sockets belong to the proxy's
// thread; the public methods only flip atomics.
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"

namespace orchard::it {

namespace {

// One direction's bytes read but not yet written.
struct Pipe {
  int from = -1, to = -1;
  std::string pending;
  bool eof = false;
};

// A proxied connection: client <-> upstream.
struct Conn {
  int client = -1, upstream = -1;
  Pipe up, down;  // up: client -> upstream; down: upstream -> client
  bool dead = false;
};

void NonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

int ConnectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  NonBlocking(fd);
  return fd;
}

// Moves what can be moved without blocking; false when the pipe broke.
bool Pump(Pipe& p, bool readable, bool writable) {
  if (readable && !p.eof && p.pending.size() < (1 << 20)) {
    char buf[65536];
    ssize_t n = ::read(p.from, buf, sizeof(buf));
    if (n > 0) {
      p.pending.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      p.eof = true;
    } else if (errno != EAGAIN && errno != EINTR) {
      return false;
    }
  }
  if ((writable || !p.pending.empty()) && !p.pending.empty()) {
    ssize_t n = ::send(p.to, p.pending.data(), p.pending.size(), MSG_NOSIGNAL);
    if (n > 0) {
      p.pending.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return false;
    }
  }
  return !(p.eof && p.pending.empty());
}

}  // namespace

TcpProxy::TcpProxy(uint16_t target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC) != 0) {
    throw HarnessError(std::string("TcpProxy: cannot listen: ") + std::strerror(errno));
  }
  NonBlocking(listen_fd_);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Loop(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  (void)!::write(wake_[1], "x", 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpProxy::Loop() {
  std::vector<Conn> conns;
  auto close_conn = [](Conn& c) {
    ::close(c.client);
    ::close(c.upstream);
    c.dead = true;
  };
  while (!stop_) {
    const bool hole = black_hole_;
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, short(hole ? 0 : POLLIN), 0}};
    for (const Conn& c : conns) {
      // Black-holed: watch nothing, read nothing (only the wake pipe and a
      // 50 ms tick, to notice Restore()).
      const short up_events = hole ? 0 : short(POLLIN | (c.down.pending.empty() ? 0 : POLLOUT));
      const short down_events = hole ? 0 : short(POLLIN | (c.up.pending.empty() ? 0 : POLLOUT));
      fds.push_back({c.client, up_events, 0});
      fds.push_back({c.upstream, down_events, 0});
    }
    ::poll(fds.data(), fds.size(), 50);
    if (stop_) break;
    if (black_hole_) continue;
    if (fds[1].revents & POLLIN) {
      while (true) {
        int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;
        int upstream = ConnectLoopback(target_port_);
        if (upstream < 0) {
          ::close(client);
          continue;
        }
        Conn c;
        c.client = client;
        c.upstream = upstream;
        c.up = Pipe{client, upstream};
        c.down = Pipe{upstream, client};
        conns.push_back(std::move(c));
        ++connections_;
      }
    }
    for (size_t i = 0; i < conns.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
      Conn& c = conns[i];
      const short client_ev = fds[2 + 2 * i].revents;
      const short upstream_ev = fds[2 + 2 * i + 1].revents;
      const bool ok =
          Pump(c.up, client_ev & (POLLIN | POLLHUP | POLLERR), upstream_ev & POLLOUT) &&
          Pump(c.down, upstream_ev & (POLLIN | POLLHUP | POLLERR), client_ev & POLLOUT);
      if (!ok) close_conn(c);
    }
    std::erase_if(conns, [](const Conn& c) { return c.dead; });
  }
  for (Conn& c : conns) close_conn(c);
}

}  // namespace orchard::it
