/* error.c: names, kinds and messages of every code the core returns. The
 * stable strings here are the `code` values users see from Lua. */
#include <string.h>
#include "coronet.h"

typedef struct {
  int code;
  const char *name, *kind, *message;
} cn_err_entry;

static const cn_err_entry own_codes[] = {
#define CN__ERR_ROW(name, value, str, kind, msg) {value, str, kind, msg},
    CN_ERRNO_MAP(CN__ERR_ROW)
#undef CN__ERR_ROW
};

/* libuv codes whose stable name or category differs from libuv's own. */
static const cn_err_entry uv_overrides[] = {
    {UV_EOF, "closed", NULL, "connection closed by peer"},
    {UV_ECANCELED, "cancelled", NULL, "operation cancelled"},
    {UV_ECONNREFUSED, NULL, "refused", NULL},
    {UV_ECONNRESET, NULL, "connection_reset", NULL},
    {UV_EPIPE, NULL, "connection_reset", NULL},
    {UV_ETIMEDOUT, NULL, "timeout", NULL},
    {UV_EAI_NONAME, NULL, "no_matching_addresses", NULL},
    {UV_EAI_AGAIN, NULL, "no_matching_addresses", NULL}, /* no resolver answered */
    {UV_EAI_NODATA, NULL, "no_matching_addresses", NULL},
    {UV_EAI_ADDRFAMILY, NULL, "no_matching_addresses", NULL},
};

#define CN_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const cn_err_entry *lookup(const cn_err_entry *table, size_t n, int code) {
  for (size_t i = 0; i < n; i++)
    if (table[i].code == code) return &table[i];
  return NULL;
}

static const cn_err_entry *own(int err) { return lookup(own_codes, CN_COUNT(own_codes), err); }
static const cn_err_entry *override(int err) { return lookup(uv_overrides, CN_COUNT(uv_overrides), err); }

const char *cn_err_name(int err) {
  const cn_err_entry *e = own(err);
  if (e) return e->name;
  e = override(err);
  if (e && e->name) return e->name;
  return uv_err_name(err);
}

const char *cn_err_kind(int err) {
  const cn_err_entry *e = own(err);
  if (!e) e = override(err);
  return e ? e->kind : NULL;
}

const char *cn_strerror(int err) {
  const cn_err_entry *e = own(err);
  if (e) return e->message;
  e = override(err);
  if (e && e->message) return e->message;
  return uv_strerror(err);
}

int cn_err_errno(int err) {
  /* On Unix libuv's codes from -1 to -2999 are negated errno values; the
   * EAI_* family (-3000...) and UV_EOF (-4095) have no errno. */
  return (err < 0 && err > -3000) ? -err : 0;
}
