/* socket_peer.h: the far end of a socketpair in the C tests, a non-blocking
 * descriptor whose bytes a test collects to compare with what it wrote. */
#ifndef CN_SOCKET_PEER_H
#define CN_SOCKET_PEER_H

#include <stddef.h>
#include <unistd.h>

typedef struct {
  int fd;
  char *buf;
  size_t len, cap; /* read so far, room in buf */
} socket_peer;

/* Reads what the peer's descriptor holds now, up to the room left. */
static inline void socket_peer_drain(socket_peer *p) {
  while (p->len < p->cap) {
    ssize_t k = read(p->fd, p->buf + p->len, p->cap - p->len);
    if (k <= 0) break;
    p->len += (size_t)k;
  }
}

#endif
