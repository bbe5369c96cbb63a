/*
 * baseline_echo.c - the reference echo server for bench/run.sh: plain libuv,
 * written the way a competent libuv user would write it.
 *
 *   baseline_echo PORT        listens on 127.0.0.1:PORT, serves until killed
 *
 * Design:
 *  - one uv_tcp_t per connection, embedded in a struct that also holds a
 *    64 KiB read buffer; alloc_cb hands out that buffer for every read, so a
 *    read never mallocs.
 *  - echo: uv_try_write() first, straight from the read buffer. Usually the
 *    kernel takes everything and that is the whole cost of the echo.
 *  - only when the kernel takes less (socket send buffer full), the remainder
 *    is copied into one heap block (write request + data) and queued with
 *    uv_write(); reading is stopped until that write completes, so a client
 *    that does not read cannot make the server buffer without bound, and the
 *    read buffer is never overwritten while its bytes are still owed.
 *  - TCP_NODELAY on every accepted connection, listen backlog 1024.
 *
 * Build: gcc -O2 -std=c99 -Wall -Wextra -Werror baseline_echo.c -luv
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF_SIZE (64 * 1024)
#define BACKLOG 1024

typedef struct conn {
    uv_tcp_t tcp;           /* first member: (conn *)handle works */
    int closing;
    char buf[READ_BUF_SIZE];
} conn;

typedef struct pending_write {
    uv_write_t req;
    conn *c;
    char data[];            /* the unsent remainder, copied */
} pending_write;

static uv_loop_t *loop;

static void on_close(uv_handle_t *h) {
    free(h); /* h == &conn->tcp == conn */
}

static void conn_close(conn *c) {
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn *c = (conn *)h;
    buf->base = c->buf;
    buf->len = sizeof c->buf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
    pending_write *pw = (pending_write *)req;
    conn *c = pw->c;
    free(pw);
    if (c->closing)
        return; /* cancelled by uv_close; on_close frees the conn */
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = (conn *)s;
    if (nread <= 0) {
        if (nread < 0) /* UV_EOF or an error */
            conn_close(c);
        return; /* 0: EAGAIN, nothing to do */
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int n = uv_try_write(s, &out, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)n == (size_t)nread)
        return;

    size_t rest = (size_t)nread - (size_t)n;
    pending_write *pw = malloc(sizeof *pw + rest);
    if (!pw) {
        conn_close(c);
        return;
    }
    pw->c = c;
    memcpy(pw->data, buf->base + n, rest);
    uv_buf_t wb = uv_buf_init(pw->data, (unsigned int)rest);
    if (uv_write(&pw->req, s, &wb, 1, on_write) < 0) {
        free(pw);
        conn_close(c);
        return;
    }
    uv_read_stop(s); /* resumed in on_write */
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) {
        fprintf(stderr, "baseline_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    conn *c = malloc(sizeof *c);
    if (!c)
        return;
    c->closing = 0;
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();

    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", port, &addr);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, BACKLOG, on_connection);
    if (r < 0) {
        fprintf(stderr, "baseline_echo: listen 127.0.0.1:%d: %s\n", port, uv_strerror(r));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
