/* test_dns.c: the core's lookups. The pure walk over a getaddrinfo list
 * (distinct addresses, raw-socket entries skipped, resolver order kept),
 * then lookups on the threadpool with numeric names only, and a detached
 * lookup: the test defines getaddrinfo itself (the executable's symbol
 * comes before libc's) so that "slow.test" takes 200 ms in the worker
 * thread; closing the op before then must neither run the callback nor
 * leak (ASan checks the latter). */
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "check.h"
#include "coronet.h"

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (node && strcmp(node, "slow.test") == 0) {
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return EAI_NONAME;
  }
  return real(node, service, hints, res);
}

/* ------------------------------------------------- the pure list walk */

static struct sockaddr_in sin_of(const char *ip, int port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, ip, &sin.sin_addr);
  return sin;
}

static void link_entry(struct addrinfo *ai, struct sockaddr_in *sin, int socktype, struct addrinfo *next) {
  memset(ai, 0, sizeof *ai);
  ai->ai_family = AF_INET;
  ai->ai_socktype = socktype;
  ai->ai_addr = (struct sockaddr *)sin;
  ai->ai_addrlen = sizeof *sin;
  ai->ai_next = next;
}

/* A: stream, dgram, raw; B: stream, raw; A again; C raw only -> A, B. */
static void test_walk_distinct(void) {
  struct sockaddr_in a = sin_of("10.0.0.1", 80), b = sin_of("10.0.0.2", 80), c = sin_of("10.0.0.3", 80);
  struct addrinfo e[7];
  link_entry(&e[6], &c, SOCK_RAW, NULL);
  link_entry(&e[5], &a, SOCK_STREAM, &e[6]);
  link_entry(&e[4], &b, SOCK_RAW, &e[5]);
  link_entry(&e[3], &b, SOCK_STREAM, &e[4]);
  link_entry(&e[2], &a, SOCK_RAW, &e[3]);
  link_entry(&e[1], &a, SOCK_DGRAM, &e[2]);
  link_entry(&e[0], &a, SOCK_STREAM, &e[1]);
  const struct addrinfo *cursor = NULL;
  cn_addr out;
  char text[64];
  CHECK_EQ_INT(cn_dns_next_address(e, &cursor, &out), 1);
  cn_addr_format(&out, text, sizeof text);
  CHECK_EQ_STR(text, "10.0.0.1:80");
  CHECK_EQ_INT(cn_dns_next_address(e, &cursor, &out), 1);
  cn_addr_format(&out, text, sizeof text);
  CHECK_EQ_STR(text, "10.0.0.2:80");
  CHECK_EQ_INT(cn_dns_next_address(e, &cursor, &out), 0);
}

static void test_walk_empty(void) {
  const struct addrinfo *cursor = NULL;
  cn_addr out;
  CHECK_EQ_INT(cn_dns_next_address(NULL, &cursor, &out), 0);
}

/* ------------------------------------------------ lookups on the loop */

typedef struct {
  int calls, status;
} outcome;

static void on_done(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->status = status;
}

static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK(turns < 100000);
}

static void test_numeric_lookup(void) {
  cn_loop *loop;
  cn_dns *op;
  cn_waiter w;
  outcome o = {0, 1};
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_waiter_init(&w, on_done, &o);
  cn_dns_query q = {.host = "127.0.0.1", .service = "8080", .family = AF_UNSPEC, .socktype = SOCK_DGRAM};
  CHECK_EQ_INT(cn_dns_getaddrinfo(loop, &q, &w, &op), 0);
  CHECK_EQ_INT(o.calls, 0); /* never inside the starting call */
  run_to_end(loop);
  CHECK_EQ_INT(o.calls, 1);
  CHECK_EQ_INT(o.status, 0);
  const struct addrinfo *cursor = NULL;
  cn_addr a;
  char text[64];
  if (CHECK_EQ_INT(cn_dns_next_address(cn_dns_addrinfo(op), &cursor, &a), 1)) {
    cn_addr_format(&a, text, sizeof text);
    CHECK_EQ_STR(text, "127.0.0.1:8080");
  }
  CHECK_EQ_INT(cn_dns_next_address(cn_dns_addrinfo(op), &cursor, &a), 0);
  cn_dns_close(op);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

static void test_nameinfo(void) {
  cn_loop *loop;
  cn_dns *op;
  cn_waiter w;
  outcome o = {0, 1};
  cn_addr a;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_waiter_init(&w, on_done, &o);
  cn_addr_ip(&a, "127.0.0.1", 8080);
  CHECK_EQ_INT(cn_dns_getnameinfo(loop, &a, NI_NUMERICHOST | NI_NUMERICSERV, &w, &op), 0);
  run_to_end(loop);
  CHECK_EQ_INT(o.calls, 1);
  CHECK_EQ_INT(o.status, 0);
  CHECK_EQ_STR(cn_dns_host(op), "127.0.0.1");
  CHECK_EQ_STR(cn_dns_service(op), "8080");
  cn_dns_close(op);
  cn_addr_unix(&a, "/tmp/x.sock");
  CHECK_EQ_INT(cn_dns_getnameinfo(loop, &a, 0, &w, &op), UV_EAI_FAMILY);
  cn_loop_free(loop);
}

/* Refused at once, as connect refuses them: the callback never runs. */
static void test_bad_names(void) {
  cn_loop *loop;
  cn_dns *op;
  cn_waiter w;
  outcome o = {0, 1};
  char longname[300];
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_waiter_init(&w, on_done, &o);
  static const char with_nul[] = "127.0.0.1\0.evil.example";
  cn_dns_query q = {.host = with_nul, .host_len = sizeof with_nul - 1};
  CHECK_EQ_INT(cn_dns_getaddrinfo(loop, &q, &w, &op), UV_EAI_NONAME);
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cn_dns_query too_long = {.host = longname};
  CHECK_EQ_INT(cn_dns_getaddrinfo(loop, &too_long, &w, &op), UV_EAI_NONAME);
  CHECK(!cn_waiter_pending(&w));
  run_to_end(loop);
  CHECK_EQ_INT(o.calls, 0);
  cn_loop_free(loop);
}

/* Closed while the worker thread is inside getaddrinfo: the close returns
 * at once, the callback never runs, and the op is freed once the worker is
 * done (the loop keeps running while the request is out). */
static void test_detached_lookup(void) {
  cn_loop *loop;
  cn_dns *op;
  cn_waiter w;
  outcome o = {0, 1};
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_waiter_init(&w, on_done, &o);
  cn_dns_query q = {.host = "slow.test"};
  CHECK_EQ_INT(cn_dns_getaddrinfo(loop, &q, &w, &op), 0);
  struct timespec ts = {0, 50 * 1000 * 1000}; /* the worker has picked it up */
  nanosleep(&ts, NULL);
  double start = cn_loop_hrnow();
  cn_dns_close(op);
  CHECK(cn_loop_hrnow() - start < 0.1);
  CHECK(!cn_waiter_pending(&w));
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  run_to_end(loop);
  CHECK_EQ_INT(o.calls, 0);
  cn_loop_free(loop);
}

int main(void) {
  test_walk_distinct();
  test_walk_empty();
  test_numeric_lookup();
  test_nameinfo();
  test_bad_names();
  test_detached_lookup();
  return check_summary();
}
