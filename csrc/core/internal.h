/* internal.h: helpers shared by the core's files; not installed. */
#ifndef CN_INTERNAL_H
#define CN_INTERNAL_H

#include <assert.h>
#include <stddef.h>
#include "coronet.h"
#include "list.h"

#define CN_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))
#define CN_ASSERT(cond) assert(cond)
#define CN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CN_MAX(a, b) ((a) > (b) ? (a) : (b))

#define CN_DEFAULT_READER_SIZE (64u * 1024u)
#define CN_DEFAULT_WRITER_HWM (64u * 1024u)
#define CN_DEFAULT_CLOSE_TIMEOUT_MS 5000u
#define CN_SCRATCH_SIZE (64u * 1024u)
#define CN_LOG_BURST 10

/* Every core object that owns libuv handles registers here, so that
 * cn_loop_close_all can reach it and cn_loop_live can count it. */
typedef struct cn__object cn__object;
struct cn__object {
  cn_list link;
  void (*close_all)(cn__object *obj, int abort);
};

void cn__object_add(cn_loop *loop, cn__object *obj, void (*close_all)(cn__object *, int));
void cn__object_remove(cn_loop *loop, cn__object *obj);

/* The loop's counters (cn_loop_stats), for the files that count them:
 * bytes of closed streams only (open ones are summed by cn_loop_stats_get,
 * through cn__stream_add_stats). */
cn_loop_stats *cn__loop_stats(cn_loop *loop);
/* A timer fired lag_ms after its due time, at loop time now (timer.c). */
void cn__loop_note_lag(cn_loop *loop, uint64_t now, uint64_t lag_ms);
/* If obj is a stream: counts it open and adds its bytes to *st (stream.c). */
void cn__stream_add_stats(const cn__object *obj, cn_loop_stats *st);

/* The loop's read scratch buffer: a reader with nothing buffered reads here
 * and keeps only the leftover bytes, so idle connections hold no buffer.
 *
 * Lending rule: the scratch is lent to one reader at a time, from its
 * alloc callback to the end of the read callback libuv calls right after.
 * During that span the bytes in it are that reader's view, and the read
 * callback may resume a fiber that runs anything (closing other streams,
 * say). So code that may run inside the span never borrows the scratch; it
 * uses its own memory (discard_unread in stream.c reads into its stack).
 * Only libuv's alloc callbacks borrow, and libuv never nests them. A TLS
 * layer borrows it below the reader (tls_transport.c) and returns it in its
 * read callback as soon as the engine has copied the ciphertext, before
 * anything above runs.
 * lend returns NULL (and asserts in debug builds) while the scratch is out. */
char *cn__loop_scratch_lend(cn_loop *loop, size_t *size);
/* True if p is the scratch: the read callback's buffer was lent. */
int cn__loop_scratch_owns(const cn_loop *loop, const char *p);
/* Ends the lending span; the scratch must be out. */
void cn__loop_scratch_return(cn_loop *loop);

/* Waiter lists. Delivering "now" is for libuv callbacks; "later" is for
 * calls made by the waiter's owner (Rule 3: never inside the starting call). */
void cn__waiter_attach(cn_list *head, cn_waiter *w, cn_loop *loop, size_t want);
/* After attach: cn_waiter_cancel calls fn(owner) once w has left the list
 * (not when w is fired). fn may not free anything the canceller still uses. */
void cn__waiter_on_cancel(cn_waiter *w, void (*fn)(void *owner), void *owner);
void cn__waiter_fire(cn_waiter *w, int status);
void cn__waiter_fire_later(cn_waiter *w, int status);
void cn__waiters_fire_all(cn_list *head, int status, int later);

/* Copies a host name of len bytes (0: strlen) into buf (CN_DNS_MAX_HOST + 1
 * bytes), NUL-terminated. A longer name, or one with a NUL byte, is refused
 * with UV_EAI_NONAME rather than cut: cutting at the NUL would connect
 * "127.0.0.1\0.evil.example" to 127.0.0.1 while the caller checked the
 * whole name. */
int cn__dns_copy_host(char *buf, const char *host, size_t len);

#endif
