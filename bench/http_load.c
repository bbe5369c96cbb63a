/*
 * http_load.c - a fixed-count HTTP/1.1 keep-alive client for bench/run.sh.
 *
 * wrk runs for a duration; the deterministic figures (instructions and system
 * calls per request, counted under callgrind and strace) need an exact number
 * of requests instead. This client opens CONNS connections, keeps one
 * "GET / HTTP/1.1" in flight on each, and stops issuing once REQUESTS
 * requests have been sent; it exits when every one of them was answered, so
 * the server handles exactly REQUESTS requests. Every answer is checked: a
 * status 200, a Content-Length, and the body "Hello, World!".
 *
 *   http_load HOST PORT CONNS REQUESTS
 *
 * Output: one line "result requests=N errors=E seconds=S" on stdout, where
 * N counts the answers that passed the checks. A wrong answer, an EOF, a
 * reset or a failed connect counts in errors= (and closes that connection;
 * the requests it would have made are not made). The run ends early, with
 * the outstanding requests counted as errors, after 120 s without progress.
 * Exit status: 0 after a run (whatever errors= says), 2 on bad arguments,
 * 1 on a setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY "Hello, World!"
#define RESP_MAX 4096 /* an answer longer than this is an error */
#define STALL_NS (120ull * 1000000000ull)
#define MAX_EVENTS 512

typedef struct conn {
    int fd;
    int connecting;
    int busy;   /* a request is in flight */
    size_t have; /* bytes of the current answer in buf */
    char buf[RESP_MAX];
} conn;

static int epfd;
static struct sockaddr_in target;
static conn *conns;
static long nconns, budget, issued, answered, errors;
static char request[256];
static size_t request_len;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void conn_fail(conn *c) {
    errors++;
    if (c->busy)
        issued--; /* never answered: not made after all */
    close(c->fd);
    c->fd = -1;
    c->busy = 0;
}

static void watch(conn *c, uint32_t events, int op) {
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

/* Sends the next request if the budget allows; the request is small enough
 * for one send on a connection with nothing in flight. */
static void send_next(conn *c) {
    if (issued >= budget)
        return;
    ssize_t w = send(c->fd, request, request_len, MSG_NOSIGNAL);
    if (w != (ssize_t)request_len) {
        conn_fail(c);
        return;
    }
    issued++;
    c->busy = 1;
    c->have = 0;
}

static void start(conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        errors++;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->connecting = 1;
    if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        errors++;
        return;
    }
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void on_connected(conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    c->connecting = 0;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        conn_fail(c);
        return;
    }
    watch(c, EPOLLIN, EPOLL_CTL_MOD);
    send_next(c);
}

/* The length of a complete answer at the start of c->buf, 0 if more bytes
 * are needed, -1 if it is not a 200 with the expected body. */
static long complete_answer(conn *c) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end)
        return c->have < RESP_MAX ? 0 : -1;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0 || memcmp(c->buf + 8, " 200", 4) != 0)
        return -1;
    long length = -1;
    for (char *p = memchr(c->buf, '\n', head); p && p < end; p = memchr(p + 1, '\n', head - (size_t)(p + 1 - c->buf)))
        if (!strncasecmp(p + 1, "content-length:", 15))
            length = strtol(p + 16, NULL, 10);
    if (length != (long)(sizeof BODY - 1))
        return -1;
    if (c->have < head + (size_t)length)
        return 0;
    return memcmp(c->buf + head, BODY, (size_t)length) == 0 ? (long)(head + (size_t)length) : -1;
}

static void on_readable(conn *c) {
    ssize_t r = recv(c->fd, c->buf + c->have, RESP_MAX - c->have, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0 || !c->busy) { /* EOF, reset, or bytes nobody asked for */
        conn_fail(c);
        return;
    }
    c->have += (size_t)r;
    long n = complete_answer(c);
    if (n == 0)
        return;
    if (n < 0 || (size_t)n != c->have) { /* wrong, or more than one answer */
        conn_fail(c);
        return;
    }
    answered++;
    c->busy = 0;
    send_next(c);
}

static int outstanding(void) {
    for (long i = 0; i < nconns; i++)
        if (conns[i].fd >= 0 && (conns[i].busy || conns[i].connecting))
            return 1;
    return 0;
}

static long arg_long(const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "http_load: bad number '%s' (want %ld..%ld)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: http_load HOST PORT CONNS REQUESTS\n");
        return 2;
    }
    long port = arg_long(argv[2], 1, 65535);
    nconns = arg_long(argv[3], 1, 100000);
    budget = arg_long(argv[4], 1, 1000000000L);
    signal(SIGPIPE, SIG_IGN);
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) {
        fprintf(stderr, "http_load: HOST must be an IPv4 address, got '%s'\n", argv[1]);
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request, "GET / HTTP/1.1\r\nHost: %s:%ld\r\n\r\n", argv[1], port);
    conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("http_load: setup");
        return 1;
    }

    uint64_t t0 = now_ns(), progress = t0;
    for (long i = 0; i < nconns; i++)
        start(&conns[i]);
    while (outstanding()) {
        struct epoll_event evs[MAX_EVENTS];
        int n = epoll_wait(epfd, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        long before = answered;
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (c->connecting)
                on_connected(c);
            else
                on_readable(c);
        }
        if (answered != before)
            progress = now_ns();
        else if (now_ns() - progress > STALL_NS) {
            fprintf(stderr, "http_load: no answer for 120 s\n");
            for (long i = 0; i < nconns; i++)
                if (conns[i].fd >= 0 && (conns[i].busy || conns[i].connecting))
                    conn_fail(&conns[i]);
        }
    }
    double seconds = (double)(now_ns() - t0) / 1e9;
    printf("result requests=%ld errors=%ld seconds=%.3f\n", answered, errors, seconds);
    fflush(stdout);
    for (long i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    return 0;
}
