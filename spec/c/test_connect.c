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
#include "loop_check.h"
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

static void fake_add(const char *ip, int port) {
  fake.ip[fake.n] = ip;
  fake.port[fake.n++] = port;
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
  size_t attempts;              /* what the operation reports before take */
  int codes[FAKE_MAX], ports[FAKE_MAX], families[FAKE_MAX];
  int last_port;
} outcome;

static void on_done(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->attempts = cn_connect_attempt_count(o->op);
  for (size_t i = 0; i < o->attempts && i < FAKE_MAX; i++) {
    cn_addr a;
    o->codes[i] = cn_connect_attempt(o->op, i, &a);
    o->ports[i] = cn_addr_port(&a);
    o->families[i] = cn_addr_family(&a);
  }
  const cn_addr *last = cn_connect_last_addr(o->op);
  o->last_port = last ? cn_addr_port(last) : -1;
  o->status = cn_connect_take(o->op, &o->stream);
  CHECK_EQ_INT(o->status, status);
}

static outcome connect_fake(cn_loop *loop, cn_stream *socket, uint64_t timeout_ms, uint64_t attempt_ms);

static outcome connect_with(cn_loop *loop, const cn_connect_opts *opts) {
  outcome o;
  cn_waiter w;
  memset(&o, 0, sizeof o);
  cn_waiter_init(&w, on_done, &o);
  double start = cn_loop_hrnow();
  if (CHECK_EQ_INT(cn_connect_start(loop, opts, &w, &o.op), 0)) check_run_until(loop, &o.calls);
  o.elapsed = cn_loop_hrnow() - start;
  CHECK_EQ_INT(o.calls, 1);
  return o;
}

static outcome connect_fake(cn_loop *loop, cn_stream *socket, uint64_t timeout_ms, uint64_t attempt_ms) {
  outcome o;
  cn_waiter w;
  memset(&o, 0, sizeof o);
  cn_waiter_init(&w, on_done, &o);
  cn_connect_opts opts = {.host = FAKE_NAME, .port = 1, .timeout_ms = timeout_ms,
                          .attempt_timeout_ms = attempt_ms, .socket = socket};
  double start = cn_loop_hrnow();
  if (CHECK_EQ_INT(cn_connect_start(loop, &opts, &w, &o.op), 0)) check_run_until(loop, &o.calls);
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

/* ------------------------------------------------- Happy Eyeballs */

static cn_connect_opts happy_opts(uint64_t delay_ms, uint64_t attempt_ms) {
  cn_connect_opts opts = {.host = FAKE_NAME, .port = 1, .attempt_timeout_ms = attempt_ms,
                          .happy_eyeballs_delay_ms = delay_ms};
  return opts;
}

static int peer_port(cn_stream *s) {
  cn_addr peer;
  return s && cn_stream_peername(s, &peer) == 0 ? cn_addr_port(&peer) : -1;
}

static void finish_loop(cn_loop *loop, cn_stream *s) {
  close_stream(loop, s);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

/* A black hole first, a listener second: the second attempt starts after
 * the delay and connects, long before the first attempt's bound; the first
 * is closed then, and reported as such. */
static void test_happy_black_hole_first(void) {
  cn_loop *loop;
  int hole_port, filler, port, fds = open_fds();
  int hole = black_hole(&hole_port, &filler);
  int lfd = listener(4, &port);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  fake_set(2, "127.0.0.1", hole_port, "127.0.0.1", port);
  cn_connect_opts opts = happy_opts(100, 5000);
  outcome o = connect_with(loop, &opts);
  CHECK_EQ_INT(o.status, 0);
  CHECK_EQ_INT(peer_port(o.stream), port);
  CHECK(o.elapsed >= 0.09 && o.elapsed < 1.0);
  CHECK_EQ_SIZE(o.attempts, 2);
  CHECK_EQ_INT(o.codes[0], UV_ECANCELED);
  CHECK_EQ_INT(o.codes[1], 0);
  CHECK_EQ_INT(o.last_port, port);
  finish_loop(loop, o.stream);
  close(lfd);
  close(filler);
  close(hole);
  CHECK_EQ_INT(open_fds(), fds);
}

/* Earlier attempts keep running: two black holes; once the second attempt
 * has started, the first hole's queue is freed (its filler accepted), and
 * the first attempt's retransmitted SYN connects while the second still
 * hangs. Aborting the first attempt at the delay would never connect. */
static int freed_hole = -1;
static void free_the_hole(cn_timer *t, void *data) {
  (void)data;
  int fd = accept(freed_hole, NULL, NULL);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  cn_timer_close(t);
}

static void test_happy_keeps_earlier_attempts(void) {
  cn_loop *loop;
  cn_timer *timer;
  int port1, filler1, port2, filler2, fds = open_fds();
  int hole1 = black_hole(&port1, &filler1);
  int hole2 = black_hole(&port2, &filler2);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  freed_hole = hole1;
  CHECK_EQ_INT(cn_timer_new(loop, &timer), 0);
  cn_timer_start(timer, 200, free_the_hole, NULL);
  fake_set(2, "127.0.0.1", port1, "127.0.0.1", port2);
  cn_connect_opts opts = happy_opts(100, 10000);
  outcome o = connect_with(loop, &opts);
  CHECK_EQ_INT(o.status, 0);
  CHECK_EQ_INT(peer_port(o.stream), port1);
  CHECK_EQ_SIZE(o.attempts, 2);
  CHECK_EQ_INT(o.codes[0], 0);
  CHECK_EQ_INT(o.codes[1], UV_ECANCELED);
  finish_loop(loop, o.stream);
  close(filler1);
  close(filler2);
  close(hole1);
  close(hole2);
  CHECK_EQ_INT(open_fds(), fds);
}

/* IPv6 and IPv4 alternate (the first address's family first), and a
 * refused attempt starts the next at once, not after the delay. */
static void test_happy_interleaves_and_moves_on(void) {
  cn_loop *loop;
  int bound, port, fds = open_fds();
  int refused = refused_port(&bound);
  int lfd = listener(4, &port);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  fake.n = 0;
  fake_add("::1", refused);
  fake_add("::1", refused);
  fake_add("127.0.0.1", refused);
  fake_add("127.0.0.1", port);
  cn_connect_opts opts = happy_opts(2000, 5000);
  outcome o = connect_with(loop, &opts);
  CHECK_EQ_INT(o.status, 0);
  CHECK(o.elapsed < 1.0);
  CHECK_EQ_SIZE(o.attempts, 4);
  CHECK_EQ_INT(o.families[0], AF_INET6);
  CHECK_EQ_INT(o.families[1], AF_INET);
  CHECK_EQ_INT(o.families[2], AF_INET6);
  CHECK_EQ_INT(o.families[3], AF_INET);
  CHECK_EQ_INT(o.codes[1], UV_ECONNREFUSED);
  CHECK_EQ_INT(o.codes[3], 0);
  CHECK_EQ_INT(peer_port(o.stream), port);
  finish_loop(loop, o.stream);
  close(lfd);
  close(bound);
  CHECK_EQ_INT(open_fds(), fds);
}

/* Every attempt fails: the error is the last one's, with its address, and
 * every attempt is listed with its own error; each is bounded on its own. */
static void test_happy_all_fail(void) {
  cn_loop *loop;
  int bound, hole_port, filler, fds = open_fds();
  int refused = refused_port(&bound);
  int hole = black_hole(&hole_port, &filler);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  fake_set(2, "127.0.0.1", refused, "127.0.0.1", hole_port);
  cn_connect_opts opts = happy_opts(100, 300);
  outcome o = connect_with(loop, &opts);
  CHECK_EQ_INT(o.status, CN_ETIMEOUT);
  CHECK(o.elapsed >= 0.28 && o.elapsed < 2.0);
  CHECK_EQ_SIZE(o.attempts, 2);
  CHECK_EQ_INT(o.codes[0], UV_ECONNREFUSED);
  CHECK_EQ_INT(o.codes[1], CN_ETIMEOUT);
  CHECK_EQ_INT(o.last_port, hole_port);
  finish_loop(loop, NULL);
  close(bound);
  close(filler);
  close(hole);
  CHECK_EQ_INT(open_fds(), fds);
}

/* Explicit addresses skip DNS and race the same way. */
static void test_happy_explicit_addresses(void) {
  cn_loop *loop;
  int hole_port, filler, port, fds = open_fds();
  int hole = black_hole(&hole_port, &filler);
  int lfd = listener(4, &port);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_addr addrs[2];
  cn_addr_ip(&addrs[0], "127.0.0.1", hole_port);
  cn_addr_ip(&addrs[1], "127.0.0.1", port);
  cn_connect_opts opts = {.addrs = addrs, .naddrs = 2, .attempt_timeout_ms = 5000, .happy_eyeballs_delay_ms = 100};
  outcome o = connect_with(loop, &opts);
  CHECK_EQ_INT(o.status, 0);
  CHECK_EQ_INT(peer_port(o.stream), port);
  CHECK(o.elapsed < 1.0);
  finish_loop(loop, o.stream);
  close(lfd);
  close(filler);
  close(hole);
  CHECK_EQ_INT(open_fds(), fds);
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
  test_happy_black_hole_first();
  test_happy_keeps_earlier_attempts();
  test_happy_interleaves_and_moves_on();
  test_happy_all_fail();
  test_happy_explicit_addresses();
  return check_summary();
}
