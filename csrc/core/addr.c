/* addr.c: socket addresses (IPv4, IPv6, unix) as declared in coronet.h. */
#include "coronet.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SUN_PATH_SIZE (sizeof(((struct sockaddr_un *)0)->sun_path))
/* The longest host text: "@" plus a full abstract name, and NUL. */
#define HOST_MAX (SUN_PATH_SIZE + 2)
/* A bracketed literal's content: address, "%", zone name, NUL. */
#define IP6_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 1)

/* --------------------------------------------------------------- parsing */

/* An interface name, or a decimal index as glibc's getaddrinfo accepts. */
static int parse_scope(const char *zone, uint32_t *out) {
  unsigned long v = if_nametoindex(zone);
  char *end;
  if (v == 0) {
    if (!isdigit((unsigned char)zone[0])) return UV_EINVAL;
    errno = 0;
    v = strtoul(zone, &end, 10);
    if (*end != '\0' || errno != 0 || v > UINT32_MAX) return UV_EINVAL;
  }
  *out = (uint32_t)v;
  return 0;
}

static int parse_ip4(cn_addr *out, const char *ip, int port) {
  struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
  memset(out, 0, sizeof *out);
  if (uv_inet_pton(AF_INET, ip, &sin->sin_addr) != 0) return UV_EINVAL;
  sin->sin_family = AF_INET;
  sin->sin_port = htons((uint16_t)port);
  out->len = sizeof *sin;
  return 0;
}

/* uv_ip6_addr would silently cut a long address before "%zone"; uv_inet_pton
 * rejects it, so the zone is handled here. */
static int parse_ip6(cn_addr *out, const char *ip, int port) {
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
  const char *zone = strchr(ip, '%');
  memset(out, 0, sizeof *out);
  if (uv_inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 0) return UV_EINVAL;
  if (zone != NULL && parse_scope(zone + 1, &sin6->sin6_scope_id) != 0) return UV_EINVAL;
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons((uint16_t)port);
  out->len = sizeof *sin6;
  return 0;
}

/* "[literal]" holds an IPv6 literal only. */
static int parse_bracketed(cn_addr *out, const char *ip, int port) {
  char inner[IP6_TEXT_MAX];
  size_t n = strlen(ip);
  if (n < 2 || ip[n - 1] != ']' || n - 2 >= sizeof inner) return UV_EINVAL;
  memcpy(inner, ip + 1, n - 2);
  inner[n - 2] = '\0';
  return parse_ip6(out, inner, port);
}

int cn_addr_ip(cn_addr *out, const char *ip, int port) {
  cn_addr a;
  int err;
  if (ip == NULL || port < 0 || port > 65535) return UV_EINVAL;
  if (ip[0] == '[')
    err = parse_bracketed(&a, ip, port);
  else if (parse_ip4(&a, ip, port) == 0)
    err = 0;
  else
    err = parse_ip6(&a, ip, port);
  if (err == 0) *out = a;
  return err;
}

int cn_addr_unix(cn_addr *out, const char *path) {
  struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
  size_t n;
  if (path == NULL || path[0] == '\0') return UV_EINVAL;
  n = strlen(path);
  if (n >= SUN_PATH_SIZE) return UV_ENAMETOOLONG;
  memset(out, 0, sizeof *out);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path, n + 1);
  out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

/* The least length a kernel-given address of `family` needs. */
static int min_len(int family, socklen_t *out) {
  switch (family) {
    case AF_INET: *out = sizeof(struct sockaddr_in); return 0;
    case AF_INET6: *out = sizeof(struct sockaddr_in6); return 0;
    case AF_UNIX: *out = sizeof(sa_family_t); return 0; /* unnamed peer */
    default: return UV_EAFNOSUPPORT;
  }
}

int cn_addr_from_sockaddr(cn_addr *out, const struct sockaddr *sa, socklen_t len) {
  socklen_t need;
  int err;
  if (sa == NULL || len < sizeof(sa_family_t) || len > sizeof out->ss) return UV_EINVAL;
  err = min_len(sa->sa_family, &need);
  if (err) return err;
  if (len < need) return UV_EINVAL;
  memset(out, 0, sizeof *out);
  memcpy(&out->ss, sa, len);
  /* IP lengths are normalised so equal addresses look alike. */
  out->len = sa->sa_family == AF_UNIX ? len : need;
  return 0;
}

/* ----------------------------------------------------------------- query */

int cn_addr_family(const cn_addr *a) { return a->ss.ss_family; }

int cn_addr_port(const cn_addr *a) {
  switch (a->ss.ss_family) {
    case AF_INET: return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    case AF_INET6: return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    default: return -1;
  }
}

/* The name bytes of a unix address: a path stops at its first NUL (it need
 * not have one within len); an abstract name (leading NUL) is all of len.
 * 0 bytes for an unnamed address. */
static size_t unix_name(const cn_addr *a, const char **name) {
  size_t off = offsetof(struct sockaddr_un, sun_path);
  size_t n = a->len > off ? a->len - off : 0;
  *name = (const char *)&a->ss + off;
  if (n > SUN_PATH_SIZE) n = SUN_PATH_SIZE;
  return n > 0 && (*name)[0] == '\0' ? n : strnlen(*name, n);
}

/* An abstract name shows as "@name", up to any NUL inside it. */
static void unix_text(const cn_addr *a, char *text) {
  const char *name;
  size_t n = unix_name(a, &name);
  if (n > 0 && name[0] == '\0') {
    *text++ = '@';
    n = strnlen(name + 1, n - 1);
    name++;
  }
  memcpy(text, name, n);
  text[n] = '\0';
}

/* The IPv6 text gets "%zone" for a scoped address, as getnameinfo shows it. */
static void zone_text(uint32_t scope, char *text, size_t size) {
  char name[IF_NAMESIZE];
  if (if_indextoname(scope, name) != NULL)
    snprintf(text, size, "%%%s", name);
  else
    snprintf(text, size, "%%%lu", (unsigned long)scope);
}

static int ip6_text(const cn_addr *a, char *text) {
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
  int err = uv_inet_ntop(AF_INET6, &sin6->sin6_addr, text, HOST_MAX);
  if (err == 0 && sin6->sin6_scope_id != 0) {
    size_t n = strlen(text);
    zone_text(sin6->sin6_scope_id, text + n, HOST_MAX - n);
  }
  return err;
}

/* The whole host text into text[HOST_MAX]; HOST_MAX also bounds IPv6 with a zone. */
static int host_text(const cn_addr *a, char *text) {
  switch (a->ss.ss_family) {
    case AF_INET:
      return uv_inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr, text,
                          HOST_MAX);
    case AF_INET6: return ip6_text(a, text);
    case AF_UNIX: unix_text(a, text); return 0;
    default: return UV_EAFNOSUPPORT;
  }
}

int cn_addr_host(const cn_addr *a, char *buf, size_t size) {
  char text[HOST_MAX];
  size_t n;
  int err = host_text(a, text);
  if (err) return err;
  n = strlen(text);
  if (n >= size) return UV_ENOSPC;
  memcpy(buf, text, n + 1);
  return 0;
}

int cn_addr_format(const cn_addr *a, char *buf, size_t size) {
  char text[HOST_MAX];
  int err = host_text(a, text);
  if (err) return err;
  switch (a->ss.ss_family) {
    case AF_INET: return snprintf(buf, size, "%s:%d", text, cn_addr_port(a));
    case AF_INET6: return snprintf(buf, size, "[%s]:%d", text, cn_addr_port(a));
    default: return snprintf(buf, size, "%s", text);
  }
}

/* ------------------------------------------------------------- equality */

static int ip4_equal(const struct sockaddr_in *x, const struct sockaddr_in *y) {
  return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

/* sin6_flowinfo is per-flow traffic metadata, not part of the address. */
static int ip6_equal(const struct sockaddr_in6 *x, const struct sockaddr_in6 *y) {
  return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
         memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static int unix_equal(const cn_addr *a, const cn_addr *b) {
  const char *x, *y;
  size_t n = unix_name(a, &x);
  return unix_name(b, &y) == n && memcmp(x, y, n) == 0;
}

int cn_addr_equal(const cn_addr *a, const cn_addr *b) {
  if (a->ss.ss_family != b->ss.ss_family) return 0;
  switch (a->ss.ss_family) {
    case AF_INET:
      return ip4_equal((const struct sockaddr_in *)&a->ss, (const struct sockaddr_in *)&b->ss);
    case AF_INET6:
      return ip6_equal((const struct sockaddr_in6 *)&a->ss, (const struct sockaddr_in6 *)&b->ss);
    case AF_UNIX: return unix_equal(a, b);
    default: return 0;
  }
}
