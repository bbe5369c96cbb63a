/* test_connect.c: the core's connect operation over names with several
 * addresses. The test defines getaddrinfo itself (the executable's symbol
 * comes before libc's, so libuv's threadpool lookup calls it): the name
 * "multi.test" resolves to the list a test sets, built from numeric lookups;
 * every other name goes to the real resolver.
 *
 * A caller's socket gets exactly one attempt, at the first address of its
 * family, and leaks no descriptor; each attempt is bounded by its share of
 * the overall timeout or by attempt_timeout_ms, so an address that never
 * answers (a listener whose accept queue is full drops SYNs) leaves time for
 * the next one. */
#include <dirent.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "check.h"
#include "coronet.h"

/* ------------------------------------------------------ fake resolver */

#define FAKE_NAME "multi.test"
#define FAKE_MAX 4

static struct {
  const char *ip[FAKE_MAX];
  int port[FAKE_MAX];
  int n;
} fake;

static void fake_set(int n, const char *ip0, int port0, const char *ip1, int port1) {
  fake.n = n;
  fake.ip[0] = ip0;
  fake.port[0] = port0;
  fake.ip[1] = ip1;
  fake.port[1] = port1;
}

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static gai_fn real_getaddrinfo(void) { return (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo"); }

/* glibc allocates every node of a result on its own and freeaddrinfo frees
 * node by node, so the numeric results can be chained into one list. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  gai_fn real = real_getaddrinfo();
  if (!node || strcmp(node, FAKE_NAME) != 0) return real(node, service, hints, res);
  struct addrinfo h, *head = NULL, **tail = &head;
  memset(&h, 0, sizeof h);
  h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  h.ai_socktype = SOCK_STREAM;
  for (int i = 0; i < fake.n; i++) {
    char port[8];
    struct addrinfo *one;
    snprintf(port, sizeof port, "%d", fake.port[i]);
    if (real(fake.ip[i], port, &h, &one) != 0) continue;
    *tail = one;
    while (*tail) tail = &(*tail)->ai_next;
  }
  *res = head;
  return head ? 0 : EAI_NONAME;
}

/* ------------------------------------------------------------ helpers */

static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK(turns < 100000);
}

/* Runs the loop until *flag is set (a connected stream keeps the loop alive). */
static void run_until(cn_loop *loop, const int *flag) {
  int turns = 0;
  while (!*flag && cn_loop_run(loop, UV_RUN_ONCE) >= 0 && ++turns < 100000) {
  }
  CHECK(*flag);
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* A listening TCP socket on 127.0.0.1, port chosen by the OS. */
static int listener(int backlog, int *port) {
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!CHECK(fd >= 0) || !CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0) ||
      !CHECK(listen(fd, backlog) == 0) || !CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0))
    return -1;
  *port = ntohs(sin.sin_port);
  return fd;
}

/* A port nothing listens on (bound, never listening: connects are refused). */
static int refused_port(int *fd) {
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(*fd, (struct sockaddr *)&sin, sizeof sin);
  getsockname(*fd, (struct sockaddr *)&sin, &len);
  return ntohs(sin.sin_port);
}

/* A listener that never answers a new SYN: backlog 0 and one connection
 * already queued, never accepted. *filler is that connection. */
static int black_hole(int *port, int *filler) {
  int fd = listener(0, port);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((uint16_t)*port);
  *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(connect(*filler, (struct sockaddr *)&sin, sizeof sin) == 0);
  return fd;
}

/* One connect to FAKE_NAME, run to its end: the status, *out the stream. */
typedef struct outcome {
  cn_connect *op;
  cn_stream *stream;
  int status, calls;
  double elapsed;
} outcome;

static void on_done(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->status = cn_connect_take(o->op, &o->stream);
  CHECK_EQ_INT(o->status, status);
}

static outcome connect_fake(cn_loop *loop, cn_stream *socket, uint64_t timeout_ms, uint64_t attempt_ms) {
  outcome o;
  cn_waiter w;
  memset(&o, 0, sizeof o);
  cn_waiter_init(&w, on_done, &o);
  cn_connect_opts opts = {.host = FAKE_NAME, .port = 1, .timeout_ms = timeout_ms,
                          .attempt_timeout_ms = attempt_ms, .socket = socket};
  double start = cn_loop_hrnow();
  if (CHECK_EQ_INT(cn_connect_start(loop, &opts, &w, &o.op), 0)) run_until(loop, &o.calls);
  o.elapsed = cn_loop_hrnow() - start;
  CHECK_EQ_INT(o.calls, 1);
  return o;
}

static void close_stream(cn_loop *loop, cn_stream *s) {
  if (!s) return;
  cn_stream_close(s);
  cn_stream_unref(s);
  run_to_end(loop);
}

/* ------------------------------------------------------------- tests */

/* ::1 first, then 127.0.0.1: an AF_INET socket skips the IPv6 address
 * (it could only fail, synchronously) and connects to the IPv4 one. */
static void test_socket_skips_other_family(void) {
  cn_loop *loop;
  int port, fds = open_fds();
  int lfd = listener(4, &port);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_stream *sock;
  CHECK_EQ_INT(cn_stream_new_tcp(loop, AF_INET, &sock), 0);
  fake_set(2, "::1", port, "127.0.0.1", port);
  outcome o = connect_fake(loop, sock, 5000, 0);
  CHECK_EQ_INT(o.status, 0);
  CHECK(o.stream == sock);
  if (o.stream) cn_stream_unref(o.stream);
  close_stream(loop, sock);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(lfd);
  CHECK_EQ_INT(open_fds(), fds);
}

/* Refused at the first address: the caller's socket is not tried again at
 * the second (which would connect), it is closed, and no fd is left. */
static void test_socket_gets_one_attempt(void) {
  cn_loop *loop;
  int port, bound, fds = open_fds();
  int lfd = listener(4, &port);
  int refused = refused_port(&bound);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_stream *sock;
  CHECK_EQ_INT(cn_stream_new_tcp(loop, AF_INET, &sock), 0);
  fake_set(2, "127.0.0.1", refused, "127.0.0.1", port);
  outcome o = connect_fake(loop, sock, 5000, 0);
  CHECK_EQ_INT(o.status, UV_ECONNREFUSED);
  CHECK(o.stream == NULL);
  CHECK(cn_stream_is_closed(sock));
  cn_stream_unref(sock);
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(lfd);
  close(bound);
  CHECK_EQ_INT(open_fds(), fds);
}

/* Only ::1 for an AF_INET socket: nothing to try. */
static void test_socket_no_matching_family(void) {
  cn_loop *loop;
  int fds = open_fds();
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_stream *sock;
  CHECK_EQ_INT(cn_stream_new_tcp(loop, AF_INET, &sock), 0);
  fake_set(1, "::1", 9, NULL, 0);
  outcome o = connect_fake(loop, sock, 5000, 0);
  CHECK_EQ_INT(o.status, CN_ENOADDR);
  cn_stream_unref(sock);
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  CHECK_EQ_INT(open_fds(), fds);
}

/* The first address never answers. With only an overall timeout, it gets
 * half of it and the second address connects; with attempt_timeout_ms and
 * no overall timeout, likewise. */
static void test_unanswered_first_address(uint64_t timeout_ms, uint64_t attempt_ms) {
  cn_loop *loop;
  int hole_port, filler, port, fds = open_fds();
  int hole = black_hole(&hole_port, &filler);
  int lfd = listener(4, &port);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  fake_set(2, "127.0.0.1", hole_port, "127.0.0.1", port);
  outcome o = connect_fake(loop, NULL, timeout_ms, attempt_ms);
  CHECK_EQ_INT(o.status, 0);
  if (o.stream) {
    cn_addr peer;
    CHECK_EQ_INT(cn_stream_peername(o.stream, &peer), 0);
    CHECK_EQ_INT(cn_addr_port(&peer), port);
  }
  double bound = (attempt_ms ? attempt_ms : timeout_ms / 2) / 1000.0;
  CHECK(o.elapsed >= bound * 0.9);
  CHECK(o.elapsed < bound + 1.0);
  close_stream(loop, o.stream);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(lfd);
  close(filler);
  close(hole);
  CHECK_EQ_INT(open_fds(), fds);
}

/* One address that never answers, attempt_timeout_ms shorter than the
 * overall timeout: CN_ETIMEOUT once the attempt's bound passes. */
static void test_attempt_timeout_alone(void) {
  cn_loop *loop;
  int hole_port, filler;
  int hole = black_hole(&hole_port, &filler);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  fake_set(1, "127.0.0.1", hole_port, NULL, 0);
  outcome o = connect_fake(loop, NULL, 5000, 200);
  CHECK_EQ_INT(o.status, CN_ETIMEOUT);
  CHECK(o.elapsed >= 0.18 && o.elapsed < 2.0);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(filler);
  close(hole);
}

static void never_called(cn_waiter *w, int status) {
  (void)w;
  (void)status;
  CHECK(0);
}

/* A C host gets the same answer as Lua: a name with a NUL byte (its length
 * given) or over 255 bytes is refused at once, never cut or raised. */
static void test_unresolvable_names(void) {
  cn_loop *loop;
  cn_connect *op;
  cn_waiter w;
  char longname[300];
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_waiter_init(&w, never_called, NULL);
  static const char with_nul[] = "127.0.0.1\0.evil.example";
  cn_connect_opts opts = {.host = with_nul, .host_len = sizeof with_nul - 1, .port = 80};
  CHECK_EQ_INT(cn_connect_start(loop, &opts, &w, &op), UV_EAI_NONAME);
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cn_connect_opts too_long = {.host = longname, .port = 80};
  CHECK_EQ_INT(cn_connect_start(loop, &too_long, &w, &op), UV_EAI_NONAME);
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

int main(void) {
  cn_loop *warm_up; /* libuv opens its process-wide descriptors with the first loop */
  if (cn_loop_new(&warm_up, NULL) == 0) cn_loop_free(warm_up);
  test_socket_skips_other_family();
  test_socket_gets_one_attempt();
  test_socket_no_matching_family();
  test_unanswered_first_address(600, 0);
  test_unanswered_first_address(0, 200);
  test_attempt_timeout_alone();
  test_unresolvable_names();
  return check_summary();
}
