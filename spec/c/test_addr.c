/* test_addr.c: unit tests for csrc/core/addr.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "check.h"
#include "coronet.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)
#define SUN_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

static char text[256];

/* The host text, or "<err>" when cn_addr_host fails. */
static const char *host(const cn_addr *a) {
  if (cn_addr_host(a, text, sizeof text) != 0) return "<err>";
  return text;
}

static const char *format(const cn_addr *a) {
  if (cn_addr_format(a, text, sizeof text) < 0) return "<err>";
  return text;
}

/* A string of n copies of c (static storage, n < 256). */
static const char *repeat(char c, size_t n) {
  static char s[256];
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void test_ip4(void) {
  cn_addr a;
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
  if (!CHECK_EQ_INT(cn_addr_ip(&a, "127.0.0.1", 80), 0)) return;
  CHECK_EQ_INT(cn_addr_family(&a), AF_INET);
  CHECK_EQ_INT(a.len, sizeof(struct sockaddr_in));
  CHECK_EQ_INT(sin->sin_port, htons(80));
  CHECK_EQ_INT(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  CHECK_EQ_INT(cn_addr_port(&a), 80);
  CHECK_EQ_STR(host(&a), "127.0.0.1");
  CHECK_EQ_STR(format(&a), "127.0.0.1:80");
  CHECK_EQ_INT(cn_addr_ip(&a, "0.0.0.0", 0), 0);
  CHECK_EQ_STR(format(&a), "0.0.0.0:0");
  CHECK_EQ_INT(cn_addr_ip(&a, "255.255.255.255", 65535), 0);
  CHECK_EQ_INT(cn_addr_port(&a), 65535);
  CHECK_EQ_STR(format(&a), "255.255.255.255:65535");
}

static void test_ip6(void) {
  cn_addr a, b;
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;
  if (!CHECK_EQ_INT(cn_addr_ip(&a, "::1", 443), 0)) return;
  CHECK_EQ_INT(cn_addr_family(&a), AF_INET6);
  CHECK_EQ_INT(a.len, sizeof(struct sockaddr_in6));
  CHECK_EQ_INT(sin6->sin6_port, htons(443));
  CHECK(memcmp(&sin6->sin6_addr, &in6addr_loopback, 16) == 0);
  CHECK_EQ_INT(sin6->sin6_scope_id, 0);
  CHECK_EQ_INT(cn_addr_port(&a), 443);
  CHECK_EQ_STR(host(&a), "::1");
  CHECK_EQ_STR(format(&a), "[::1]:443");
  CHECK_EQ_INT(cn_addr_ip(&a, "2001:DB8:0:0:0:0:0:1", 8080), 0);
  CHECK_EQ_STR(format(&a), "[2001:db8::1]:8080");
  CHECK_EQ_INT(cn_addr_ip(&a, "::ffff:1.2.3.4", 1), 0);
  CHECK_EQ_INT(cn_addr_family(&a), AF_INET6);
  CHECK_EQ_STR(host(&a), "::ffff:1.2.3.4");
  CHECK_EQ_INT(cn_addr_ip(&b, "1.2.3.4", 1), 0);
  CHECK(!cn_addr_equal(&a, &b)); /* v4-mapped is still another family */
  CHECK_EQ_INT(cn_addr_ip(&a, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 1), 0);
  CHECK_EQ_STR(host(&a), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

static void test_bracketed(void) {
  cn_addr a, b;
  CHECK_EQ_INT(cn_addr_ip(&a, "[::1]", 80), 0);
  CHECK_EQ_INT(cn_addr_ip(&b, "::1", 80), 0);
  CHECK(cn_addr_equal(&a, &b));
  CHECK_EQ_STR(format(&a), "[::1]:80");
  CHECK_EQ_INT(cn_addr_ip(&a, "[2001:db8::5]", 1), 0);
  CHECK_EQ_STR(host(&a), "2001:db8::5");
  CHECK_EQ_INT(cn_addr_ip(&a, "[::1", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "::1]", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[]", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[[::1]]", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[::1]:80", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[127.0.0.1]", 80), UV_EINVAL); /* brackets mean IPv6 */
  CHECK_EQ_INT(cn_addr_ip(&a, "[ ::1]", 80), UV_EINVAL);
}

static void test_bad_literals(void) {
  static const char *bad[] = {"",          "localhost", "1.2.3",     "256.1.1.1",  "1.2.3.4.5",
                              " 1.2.3.4",  "1.2.3.4 ",  "1.2.3.-4",  "01.2.3.4",   "1.2.3.4:80",
                              "::g",       ":::",       "1:2:3:4:5:6:7:8:9",       "::1 ",
                              "1.2.3.4%lo", "example.com"};
  cn_addr a, before;
  size_t i;
  CHECK_EQ_INT(cn_addr_ip(&a, "10.0.0.1", 5), 0);
  before = a;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (!CHECK_EQ_INT(cn_addr_ip(&a, bad[i], 80), UV_EINVAL)) fprintf(stderr, "  ip: %s\n", bad[i]);
  CHECK_EQ_INT(cn_addr_ip(&a, NULL, 80), UV_EINVAL);
  CHECK(memcmp(&a, &before, sizeof a) == 0); /* failures leave *out alone */
  CHECK_EQ_STR(format(&a), "10.0.0.1:5");
  /* a long run of valid-looking groups must not be cut into something valid */
  CHECK_EQ_INT(cn_addr_ip(&a, "0000:0000:0000:0000:0000:0000:0000:00011%lo", 1), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[0000:0000:0000:0000:0000:0000:0000:00011%lo]", 1), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, repeat('1', 200), 1), UV_EINVAL);
}

static void test_port_range(void) {
  cn_addr a, before;
  CHECK_EQ_INT(cn_addr_ip(&a, "10.0.0.1", 5), 0);
  before = a;
  CHECK_EQ_INT(cn_addr_ip(&a, "127.0.0.1", -1), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "127.0.0.1", 65536), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "::1", 65536), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "[::1]", -1), UV_EINVAL);
  CHECK(memcmp(&a, &before, sizeof a) == 0);
  CHECK_EQ_INT(cn_addr_ip(&a, "::1", 0), 0);
  CHECK_EQ_INT(cn_addr_port(&a), 0);
  CHECK_EQ_INT(cn_addr_ip(&a, "::1", 65535), 0);
  CHECK_EQ_INT(cn_addr_port(&a), 65535);
}

static void test_zone(void) {
  cn_addr a, b;
  struct sockaddr_in6 sin6;
  unsigned lo = if_nametoindex("lo");
  const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&a.ss;
  if (lo != 0) {
    CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%lo", 80), 0);
    CHECK_EQ_INT(p->sin6_scope_id, lo);
    CHECK_EQ_STR(host(&a), "fe80::1%lo");
    CHECK_EQ_STR(format(&a), "[fe80::1%lo]:80");
    CHECK_EQ_INT(cn_addr_ip(&b, "[fe80::1%lo]", 80), 0);
    CHECK(cn_addr_equal(&a, &b));
  }
  CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%4000000000", 80), 0); /* numeric index */
  CHECK_EQ_INT(p->sin6_scope_id, 4000000000u);
  CHECK_EQ_STR(host(&a), "fe80::1%4000000000");
  CHECK_EQ_INT(cn_addr_ip(&b, "fe80::1", 80), 0);
  CHECK(!cn_addr_equal(&a, &b)); /* scope matters */
  CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%no-such-if0", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%1x", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%+1", 80), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_ip(&a, "fe80::1%99999999999", 80), UV_EINVAL);
  /* a scope id no interface has prints as a number */
  memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_scope_id = 4000000000u;
  CHECK_EQ_INT(inet_pton(AF_INET6, "fe80::2", &sin6.sin6_addr), 1);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof sin6), 0);
  CHECK_EQ_STR(host(&a), "fe80::2%4000000000");
}

static void test_unix(void) {
  cn_addr a, before;
  const struct sockaddr_un *sun = (const struct sockaddr_un *)&a.ss;
  CHECK_EQ_INT(SUN_SIZE, 108);
  if (!CHECK_EQ_INT(cn_addr_unix(&a, "/tmp/sock"), 0)) return;
  CHECK_EQ_INT(cn_addr_family(&a), AF_UNIX);
  CHECK_EQ_INT(a.len, SUN_OFF + 10);
  CHECK_EQ_STR(sun->sun_path, "/tmp/sock");
  CHECK_EQ_INT(cn_addr_port(&a), -1);
  CHECK_EQ_STR(host(&a), "/tmp/sock");
  CHECK_EQ_STR(format(&a), "/tmp/sock");
  CHECK_EQ_INT(cn_addr_unix(&a, "rel"), 0); /* relative paths are paths too */
  CHECK_EQ_STR(format(&a), "rel");

  CHECK_EQ_INT(cn_addr_unix(&a, repeat('p', 107)), 0);
  CHECK_EQ_INT(a.len, SUN_OFF + 108);
  CHECK_EQ_STR(host(&a), repeat('p', 107));
  CHECK_EQ_INT(cn_addr_format(&a, text, sizeof text), 107);
  before = a;
  CHECK_EQ_INT(cn_addr_unix(&a, repeat('p', 108)), UV_ENAMETOOLONG);
  CHECK_EQ_INT(cn_addr_unix(&a, repeat('p', 200)), UV_ENAMETOOLONG);
  CHECK_EQ_INT(cn_addr_unix(&a, ""), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_unix(&a, NULL), UV_EINVAL);
  CHECK(memcmp(&a, &before, sizeof a) == 0);
}

static void test_from_sockaddr_ip(void) {
  cn_addr a, b;
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  memset(&ss, 0, sizeof ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(8080);
  sin->sin_addr.s_addr = htonl(0x0a000001);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)sin, sizeof *sin), 0);
  CHECK_EQ_STR(format(&a), "10.0.0.1:8080");
  CHECK_EQ_INT(cn_addr_ip(&b, "10.0.0.1", 8080), 0);
  CHECK(cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)sin, sizeof ss), 0);
  CHECK_EQ_INT(a.len, sizeof *sin); /* normalised */
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)sin, sizeof *sin - 1), UV_EINVAL);

  memset(&ss, 0, sizeof ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(443);
  sin6->sin6_flowinfo = htonl(12345);
  sin6->sin6_addr = in6addr_loopback;
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)sin6, sizeof *sin6), 0);
  CHECK_EQ_STR(format(&a), "[::1]:443");
  CHECK_EQ_INT(cn_addr_ip(&b, "::1", 443), 0);
  CHECK(cn_addr_equal(&a, &b)); /* flowinfo ignored */
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)sin6, sizeof *sin6 - 1), UV_EINVAL);
}

static void test_from_sockaddr_errors(void) {
  cn_addr a, before;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  CHECK_EQ_INT(cn_addr_ip(&a, "10.0.0.1", 5), 0);
  before = a;
  ss.ss_family = AF_UNIX;
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, NULL, sizeof ss), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&ss, 0), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&ss, 1), UV_EINVAL);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sizeof ss + 1), UV_EINVAL);
  ss.ss_family = AF_APPLETALK;
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sizeof ss), UV_EAFNOSUPPORT);
  CHECK(memcmp(&a, &before, sizeof a) == 0);
}

static void test_from_sockaddr_unix(void) {
  cn_addr a, b;
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  /* unnamed, as accept reports a client that did not bind */
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&sun, sizeof(sa_family_t)), 0);
  CHECK_EQ_INT(cn_addr_family(&a), AF_UNIX);
  CHECK_EQ_INT(cn_addr_port(&a), -1);
  CHECK_EQ_STR(host(&a), "");
  CHECK_EQ_INT(cn_addr_format(&a, text, sizeof text), 0);
  CHECK_EQ_STR(text, "");
  CHECK_EQ_INT(cn_addr_from_sockaddr(&b, (struct sockaddr *)&sun, SUN_OFF), 0);
  CHECK(cn_addr_equal(&a, &b));

  /* a full sun_path with no NUL */
  memset(sun.sun_path, 'q', SUN_SIZE);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&sun, sizeof sun), 0);
  CHECK_EQ_STR(host(&a), repeat('q', 108));
  CHECK_EQ_INT(cn_addr_format(&a, text, sizeof text), 108);
  CHECK(!cn_addr_equal(&a, &b));

  /* a path with or without its NUL inside len is the same path */
  memset(sun.sun_path, 0, SUN_SIZE);
  memcpy(sun.sun_path, "/tmp/x", 6);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&sun, SUN_OFF + 6), 0);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&b, (struct sockaddr *)&sun, SUN_OFF + 7), 0);
  CHECK_EQ_STR(host(&a), "/tmp/x");
  CHECK(cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_unix(&b, "/tmp/x"), 0);
  CHECK(cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_unix(&b, "/tmp/y"), 0);
  CHECK(!cn_addr_equal(&a, &b));
}

static void test_abstract(void) {
  cn_addr a, b;
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, "\0abc", 4);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&a, (struct sockaddr *)&sun, SUN_OFF + 4), 0);
  CHECK_EQ_STR(host(&a), "@abc");
  CHECK_EQ_STR(format(&a), "@abc");
  CHECK_EQ_INT(cn_addr_unix(&b, "abc"), 0);
  CHECK(!cn_addr_equal(&a, &b));
  /* the length is part of an abstract name: "\0abc\0" is another one */
  CHECK_EQ_INT(cn_addr_from_sockaddr(&b, (struct sockaddr *)&sun, SUN_OFF + 5), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_from_sockaddr(&b, (struct sockaddr *)&sun, SUN_OFF + 4), 0);
  CHECK(cn_addr_equal(&a, &b));
}

static void test_host_space(void) {
  cn_addr a;
  char small[16];
  CHECK_EQ_INT(cn_addr_ip(&a, "127.0.0.1", 80), 0);
  CHECK_EQ_INT(cn_addr_host(&a, small, 9), UV_ENOSPC);
  CHECK_EQ_INT(cn_addr_host(&a, small, 10), 0);
  CHECK_EQ_STR(small, "127.0.0.1");
  CHECK_EQ_INT(cn_addr_host(&a, NULL, 0), UV_ENOSPC);
  CHECK_EQ_INT(cn_addr_ip(&a, "::1", 80), 0);
  CHECK_EQ_INT(cn_addr_host(&a, small, 3), UV_ENOSPC);
  CHECK_EQ_INT(cn_addr_host(&a, small, 4), 0);
  CHECK_EQ_STR(small, "::1");
  CHECK_EQ_INT(cn_addr_unix(&a, repeat('p', 107)), 0);
  CHECK_EQ_INT(cn_addr_host(&a, text, 107), UV_ENOSPC);
  CHECK_EQ_INT(cn_addr_host(&a, text, 108), 0);
  CHECK_EQ_SIZE(strlen(text), 107);
}

static void test_format_truncation(void) {
  cn_addr a;
  char small[16];
  CHECK_EQ_INT(cn_addr_ip(&a, "127.0.0.1", 80), 0);
  CHECK_EQ_INT(cn_addr_format(&a, NULL, 0), 12);
  memset(small, 'z', sizeof small);
  CHECK_EQ_INT(cn_addr_format(&a, small, 5), 12);
  CHECK_EQ_STR(small, "127.");
  CHECK_EQ_INT(cn_addr_format(&a, small, 12), 12);
  CHECK_EQ_STR(small, "127.0.0.1:8");
  CHECK_EQ_INT(cn_addr_format(&a, small, 13), 12);
  CHECK_EQ_STR(small, "127.0.0.1:80");
  CHECK_EQ_INT(cn_addr_ip(&a, "::1", 80), 0);
  CHECK_EQ_INT(cn_addr_format(&a, small, 3), 8);
  CHECK_EQ_STR(small, "[:");
  CHECK_EQ_INT(cn_addr_format(&a, small, 1), 8);
  CHECK_EQ_STR(small, "");
  CHECK_EQ_INT(cn_addr_unix(&a, "/run/x.sock"), 0);
  CHECK_EQ_INT(cn_addr_format(&a, small, 5), 11);
  CHECK_EQ_STR(small, "/run");
}

static void test_unknown_family(void) {
  cn_addr a;
  memset(&a, 0, sizeof a);
  CHECK_EQ_INT(cn_addr_family(&a), AF_UNSPEC);
  CHECK_EQ_INT(cn_addr_port(&a), -1);
  CHECK_EQ_INT(cn_addr_host(&a, text, sizeof text), UV_EAFNOSUPPORT);
  CHECK_EQ_INT(cn_addr_format(&a, text, sizeof text), UV_EAFNOSUPPORT);
  CHECK(!cn_addr_equal(&a, &a));
}

static void test_equal(void) {
  cn_addr a, b;
  CHECK_EQ_INT(cn_addr_ip(&a, "1.2.3.4", 80), 0);
  CHECK(cn_addr_equal(&a, &a));
  CHECK_EQ_INT(cn_addr_ip(&b, "1.2.3.4", 80), 0);
  CHECK(cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_ip(&b, "1.2.3.4", 81), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_ip(&b, "1.2.3.5", 80), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_ip(&b, "::ffff:1.2.3.4", 80), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK(!cn_addr_equal(&b, &a));
  CHECK_EQ_INT(cn_addr_ip(&a, "0.0.0.0", 0), 0);
  CHECK_EQ_INT(cn_addr_ip(&b, "::", 0), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_unix(&b, "0.0.0.0"), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK(!cn_addr_equal(&b, &a));
  CHECK_EQ_INT(cn_addr_ip(&a, "2001:db8::1", 80), 0);
  CHECK_EQ_INT(cn_addr_ip(&b, "2001:db8::1", 80), 0);
  CHECK(cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_ip(&b, "2001:db8::2", 80), 0);
  CHECK(!cn_addr_equal(&a, &b));
  CHECK_EQ_INT(cn_addr_ip(&b, "2001:db8::1", 81), 0);
  CHECK(!cn_addr_equal(&a, &b));
}

/* Addresses the kernel hands out: a bound tcp socket and an unnamed unix peer. */
static void test_kernel_addresses(void) {
  cn_addr a, b;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = socket(AF_INET, SOCK_STREAM, 0), sv[2];
  if (!CHECK(fd >= 0)) return;
  CHECK_EQ_INT(cn_addr_ip(&a, "127.0.0.1", 0), 0);
  CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a.ss, a.len), 0);
  CHECK_EQ_INT(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  CHECK_EQ_INT(cn_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
  CHECK_EQ_STR(host(&b), "127.0.0.1");
  CHECK(cn_addr_port(&b) > 0);
  close(fd);

  if (!CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0)) return;
  len = sizeof ss;
  CHECK_EQ_INT(getpeername(sv[0], (struct sockaddr *)&ss, &len), 0);
  CHECK_EQ_INT(len, sizeof(sa_family_t));
  CHECK_EQ_INT(cn_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
  CHECK_EQ_INT(cn_addr_family(&b), AF_UNIX);
  CHECK_EQ_STR(format(&b), "");
  close(sv[0]);
  close(sv[1]);
}

int main(void) {
  test_ip4();
  test_ip6();
  test_bracketed();
  test_bad_literals();
  test_port_range();
  test_zone();
  test_unix();
  test_from_sockaddr_ip();
  test_from_sockaddr_errors();
  test_from_sockaddr_unix();
  test_abstract();
  test_host_space();
  test_format_truncation();
  test_unknown_family();
  test_equal();
  test_kernel_addresses();
  return check_summary();
}
