/* fuzz_addr.c: libFuzzer target for address parsing and formatting
 * (csrc/core/addr.c). Input: a mode byte, two port bytes, then the text or
 * sockaddr bytes. Whatever parses must format, and its text must parse back
 * to an equal address; nothing may crash, and formatting into a short buffer
 * truncates like snprintf. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "coronet.h"
#include "fuzz_input.h"

#define TEXT_MAX 512

/* The formatted text into buf; also formats into every short buffer size
 * below a few bytes past it, which must give the same length and a prefix. */
static int format_checked(const cn_addr *a, char *buf, size_t size) {
  char small[TEXT_MAX];
  int n = cn_addr_format(a, buf, size);
  FUZZ_CHECK(n >= 0 && (size_t)n < size && strlen(buf) == (size_t)n);
  for (size_t k = 1; k <= 4 && k < (size_t)n; k++) {
    memset(small, 'x', sizeof small);
    FUZZ_CHECK(cn_addr_format(a, small, k) == n);
    FUZZ_CHECK(small[k - 1] == '\0' && memcmp(small, buf, k - 1) == 0);
  }
  return n;
}

/* "host:port" or "[host]:port" back into an address with the port. */
static void reparse_formatted(const cn_addr *a, const char *text) {
  char host[TEXT_MAX];
  const char *colon = strrchr(text, ':');
  cn_addr b;
  size_t n;
  FUZZ_CHECK(colon != NULL);
  n = (size_t)(colon - text);
  memcpy(host, text, n);
  host[n] = '\0';
  FUZZ_CHECK(atoi(colon + 1) == cn_addr_port(a));
  FUZZ_CHECK(cn_addr_ip(&b, host, cn_addr_port(a)) == 0);
  FUZZ_CHECK(cn_addr_equal(a, &b));
}

/* An IP address: its host text parses back equal; so does its formatted text. */
static void round_trip_ip(const cn_addr *a) {
  char host[TEXT_MAX], text[TEXT_MAX];
  cn_addr b;
  FUZZ_CHECK(cn_addr_host(a, host, sizeof host) == 0);
  FUZZ_CHECK(cn_addr_ip(&b, host, cn_addr_port(a)) == 0);
  FUZZ_CHECK(cn_addr_equal(a, &b) && cn_addr_equal(&b, a));
  format_checked(a, text, sizeof text);
  reparse_formatted(a, text);
}

static void fuzz_ip_text(const char *text, int port) {
  cn_addr a;
  if (cn_addr_ip(&a, text, port) != 0) return;
  FUZZ_CHECK(cn_addr_family(&a) == AF_INET || cn_addr_family(&a) == AF_INET6);
  FUZZ_CHECK(cn_addr_port(&a) == port);
  round_trip_ip(&a);
}

static void fuzz_unix_path(const char *path) {
  char host[TEXT_MAX], text[TEXT_MAX];
  cn_addr a, b;
  int err = cn_addr_unix(&a, path);
  if (err != 0) {
    FUZZ_CHECK(err == UV_EINVAL || err == UV_ENAMETOOLONG);
    return;
  }
  FUZZ_CHECK(cn_addr_family(&a) == AF_UNIX && cn_addr_port(&a) == -1);
  FUZZ_CHECK(cn_addr_host(&a, host, sizeof host) == 0 && strcmp(host, path) == 0);
  format_checked(&a, text, sizeof text);
  FUZZ_CHECK(strcmp(text, path) == 0);
  FUZZ_CHECK(cn_addr_unix(&b, text) == 0 && cn_addr_equal(&a, &b));
}

/* Bytes as a kernel might hand them over: accepted or refused, never a crash. */
static void fuzz_sockaddr(const uint8_t *p, size_t n) {
  struct sockaddr_storage ss;
  char host[TEXT_MAX], text[TEXT_MAX];
  cn_addr a;
  if (n > sizeof ss) n = sizeof ss;
  memset(&ss, 0, sizeof ss);
  memcpy(&ss, p, n);
  if (cn_addr_from_sockaddr(&a, (const struct sockaddr *)&ss, (socklen_t)n) != 0) return;
  FUZZ_CHECK(cn_addr_equal(&a, &a));
  if (cn_addr_family(&a) == AF_UNIX) {
    FUZZ_CHECK(cn_addr_host(&a, host, sizeof host) == 0);
    format_checked(&a, text, sizeof text);
    FUZZ_CHECK(strcmp(host, text) == 0);
  } else {
    round_trip_ip(&a);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char text[TEXT_MAX];
  size_t n;
  int port;
  if (size < 3) return 0;
  port = (data[1] | data[2] << 8) % 65536;
  n = size - 3 < TEXT_MAX - 1 ? size - 3 : TEXT_MAX - 1;
  memcpy(text, data + 3, n);
  text[n] = '\0'; /* the text ends at its first NUL, as a C caller's would */
  switch (data[0] % 3) {
    case 0: fuzz_ip_text(text, port); break;
    case 1: fuzz_unix_path(text); break;
    default: fuzz_sockaddr(data + 3, size - 3); break;
  }
  return 0;
}
