/*
 * load.c - load generator for the echo-server benchmark (bench/run.sh).
 *
 * Single thread, epoll (level-triggered), non-blocking sockets, TCP_NODELAY.
 * Every connection sends a deterministic byte stream (a pseudo-random table
 * read from a per-connection offset) and every echoed byte is compared with
 * what was sent; a mismatch, an unexpected EOF, a reset or a failed connect
 * counts in errors= (and closes that connection).
 *
 *   load pingpong HOST PORT CONNS SIZE SECONDS
 *   load pingpong_n HOST PORT CONNS SIZE COUNT
 *   load pipeline HOST PORT CONNS DEPTH SIZE SECONDS
 *   load bulk     HOST PORT CHUNK SECONDS
 *   load churn    HOST PORT PARALLEL SIZE SECONDS
 *   load idle     HOST PORT CONNS
 *
 * pingpong_n is pingpong stopped at exactly COUNT round trips instead of a
 * duration: once COUNT messages were sent no connection sends another, and
 * the run ends when all of them came back (the deterministic figures of
 * bench/real.sh need an exact count).
 *
 * Output: one line "result mode=... ops=... seconds=... ops_per_s=...
 * mb_per_s=... p50_us=... p99_us=... errors=... bytes=..." on stdout.
 * idle prints "ready conns=N errors=E" once every connection has done its
 * 64-byte exchange, then holds them until stdin gives a line or EOF.
 * Exit status: 0 after a run (whatever errors= says), 2 on bad arguments,
 * 1 on a setup failure (epoll, memory, address).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- pattern ---------------------------------------------------------- */

#define PAT_PERIOD 1048573u        /* prime, so streams do not line up */
#define MAX_IO (1u << 20)          /* largest single send/recv */
static unsigned char *pattern;     /* PAT_PERIOD + MAX_IO bytes */

static void pattern_init(void) {
    pattern = malloc((size_t)PAT_PERIOD + MAX_IO);
    if (!pattern) {
        perror("malloc");
        exit(1);
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)PAT_PERIOD + MAX_IO; i++) {
        if (i < PAT_PERIOD) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            pattern[i] = (unsigned char)(x >> 32);
        } else {
            pattern[i] = pattern[i - PAT_PERIOD];
        }
    }
}

/* pointer to the pattern at stream offset off; valid for MAX_IO bytes */
static inline const unsigned char *pat_at(uint64_t off) {
    return pattern + (off % PAT_PERIOD);
}

/* ---- time ------------------------------------------------------------- */

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: 100 ns buckets up to 100 ms ------------------- */

#define HIST_BUCKET_NS 100u
#define HIST_N 1000000u
static uint32_t *hist;
static uint64_t hist_count;

static void hist_add(uint64_t ns) {
    uint64_t b = ns / HIST_BUCKET_NS;
    if (b >= HIST_N)
        b = HIST_N - 1;
    hist[b]++;
    hist_count++;
}

static double hist_pct_us(double p) {
    if (!hist_count)
        return 0.0;
    uint64_t rank = (uint64_t)ceil(p * (double)hist_count);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (uint32_t b = 0; b < HIST_N; b++) {
        cum += hist[b];
        if (cum >= rank)
            return ((double)b + 0.5) * HIST_BUCKET_NS / 1000.0;
    }
    return (double)HIST_N * HIST_BUCKET_NS / 1000.0;
}

/* ---- connections ------------------------------------------------------ */

enum { M_PINGPONG, M_PIPELINE, M_BULK, M_CHURN, M_IDLE };

enum { C_FREE, C_CONNECTING, C_OPEN, C_HELD };

typedef struct conn {
    int fd;
    int state;
    uint32_t gen;          /* bumped on every (re)use: stale events ignored */
    int want_out;          /* EPOLLOUT currently registered */
    uint64_t seed;         /* pattern offset of stream byte 0 */
    uint64_t sent, recvd;  /* stream offsets */
    uint64_t send_limit;   /* send up to this offset */
    uint64_t t_start;      /* pingpong: when the current message started */
} conn;

static int mode;
static int epfd;
static struct sockaddr_in target;
static conn *conns;
static int nconns;
static size_t msg_size, depth, chunk;
static uint64_t deadline_ns;
static uint64_t budget, issued; /* pingpong_n: round trips to do, messages sent */

static uint64_t ops, errors, bytes_echoed;
static uint64_t seed_counter;

/* connections started and not yet held (idle) or closed */
static int inflight;
/* idle: connections that finished their exchange and are being held */
static int held, idle_target;

#define BULK_WINDOW (1u << 20)
#define IDLE_MAX_INFLIGHT 256
#define RBUF_SIZE (256 * 1024)
static unsigned char rbuf[RBUF_SIZE];

static void ep_set(conn *c, int want_out, int op) {
    struct epoll_event ev;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.u64 = ((uint64_t)c->gen << 32) | (uint64_t)(c - conns);
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(1);
    }
    c->want_out = want_out;
}

static void conn_close(conn *c) {
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    if (c->state == C_CONNECTING || c->state == C_OPEN)
        inflight--;
    else if (c->state == C_HELD)
        held--;
    c->fd = -1;
    c->state = C_FREE;
    c->gen++;
}

static void conn_fail(conn *c) {
    errors++;
    conn_close(c);
}

static uint64_t next_seed(void) {
    return (seed_counter++ * 7919u) % PAT_PERIOD;
}

/* starts a non-blocking connect; returns 0, or -1 (counted as an error) */
static int conn_start(conn *c) {
    c->sent = c->recvd = c->send_limit = 0;
    c->seed = next_seed();
    c->want_out = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        errors++;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->gen++;
    c->state = C_CONNECTING;
    inflight++;
    int r = connect(c->fd, (struct sockaddr *)&target, sizeof target);
    if (r < 0 && errno != EINPROGRESS) {
        conn_fail(c);
        return -1;
    }
    ep_set(c, 1, EPOLL_CTL_ADD);
    return 0;
}

/* sends up to c->send_limit; returns -1 if the connection failed */
static int conn_flush(conn *c) {
    size_t cap = (mode == M_BULK) ? chunk : MAX_IO;
    while (c->sent < c->send_limit) {
        uint64_t want = c->send_limit - c->sent;
        size_t n = want > cap ? cap : (size_t)want;
        ssize_t w = send(c->fd, pat_at(c->seed + c->sent), n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out)
                    ep_set(c, 1, EPOLL_CTL_MOD);
                return 0;
            }
            conn_fail(c);
            return -1;
        }
        c->sent += (uint64_t)w;
    }
    if (c->want_out)
        ep_set(c, 0, EPOLL_CTL_MOD);
    return 0;
}

/* pingpong_n: counts one more message to send, if the budget allows */
static int may_send(void) {
    if (!budget)
        return 1;
    if (issued >= budget)
        return 0;
    issued++;
    return 1;
}

static void bulk_topup(conn *c) {
    while (c->send_limit + chunk <= c->recvd + BULK_WINDOW)
        c->send_limit += chunk;
}

/* the connection is up: set the first send target */
static int on_connected(conn *c, uint64_t now) {
    c->state = C_OPEN;
    switch (mode) {
    case M_PINGPONG:
        if (may_send())
            c->send_limit = msg_size;
        c->t_start = now;
        break;
    case M_PIPELINE:
        c->send_limit = (uint64_t)depth * msg_size;
        break;
    case M_BULK:
        bulk_topup(c);
        break;
    case M_CHURN:
        c->send_limit = msg_size;
        break;
    case M_IDLE:
        c->send_limit = 64;
        break;
    }
    return conn_flush(c);
}

/* handles echoed bytes [recvd, recvd+n); returns -1 if the conn went away */
static int on_data(conn *c, size_t n, uint64_t now) {
    if (c->recvd + n > c->sent || memcmp(rbuf, pat_at(c->seed + c->recvd), n) != 0) {
        conn_fail(c);
        return -1;
    }
    uint64_t before = c->recvd;
    c->recvd += n;
    bytes_echoed += n;
    switch (mode) {
    case M_PINGPONG:
        if (c->recvd == c->send_limit) {
            hist_add(now - c->t_start);
            ops++;
            if (!may_send())
                return 0;
            c->send_limit += msg_size;
            c->t_start = now;
            return conn_flush(c);
        }
        return 0;
    case M_PIPELINE:
        ops += c->recvd / msg_size - before / msg_size;
        c->send_limit = (c->recvd / msg_size + depth) * msg_size;
        return conn_flush(c);
    case M_BULK:
        ops += c->recvd / chunk - before / chunk; /* whole chunks echoed */
        bulk_topup(c);
        return conn_flush(c);
    case M_CHURN:
        if (c->recvd == msg_size) {
            ops++;
            conn_close(c); /* the main loop starts a new one in this slot */
            return -1;
        }
        return 0;
    case M_IDLE:
        if (c->recvd == 64) {
            c->state = C_HELD;
            inflight--;
            held++;
        }
        return 0;
    }
    return 0;
}

static void on_readable(conn *c, uint64_t now) {
    for (int reads = 0; reads < 8; reads++) { /* bounded: the deadline is checked between batches */
        size_t cap = sizeof rbuf;
        ssize_t r = recv(c->fd, rbuf, cap, 0);
        if (r > 0) {
            if (on_data(c, (size_t)r, now) < 0)
                return;
            if ((size_t)r < cap)
                return; /* most likely drained; level-triggered anyway */
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF or error: the server should never close first */
        conn_fail(c);
        return;
    }
}

static void on_event(conn *c, uint32_t events, uint64_t now) {
    if (c->state == C_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            conn_fail(c);
            return;
        }
        on_connected(c, now);
        return;
    }
    uint32_t gen = c->gen;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(c, now);
        if (c->gen != gen || c->state == C_FREE)
            return; /* closed (and maybe reused) meanwhile */
    }
    if (events & EPOLLOUT)
        conn_flush(c);
}

/* ---- main loop -------------------------------------------------------- */

#define MAX_EVENTS 512

static void poll_once(int timeout_ms) {
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return;
        perror("epoll_wait");
        exit(1);
    }
    uint64_t now = now_ns();
    for (int i = 0; i < n; i++) {
        uint32_t idx = (uint32_t)(evs[i].data.u64 & 0xffffffffu);
        uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
        conn *c = &conns[idx];
        if (c->gen != gen || c->state == C_FREE)
            continue; /* stale: the slot was closed/reused in this batch */
        on_event(c, evs[i].events, now);
    }
}

static void run_timed(double seconds) {
    uint64_t t0 = now_ns();
    deadline_ns = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < nconns; i++)
        conn_start(&conns[i]);
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline_ns)
            break;
        if (budget && ops + errors >= budget)
            break; /* every message came back (or its connection failed) */
        uint64_t left = deadline_ns - now;
        int ms = (int)((left + 999999u) / 1000000u);
        poll_once(ms);
        if (mode == M_CHURN && now_ns() < deadline_ns) {
            /* churn: every slot whose connection ended starts a new one */
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == C_FREE)
                    conn_start(&conns[i]);
        }
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    double p50 = hist ? hist_pct_us(0.50) : 0.0;
    double p99 = hist ? hist_pct_us(0.99) : 0.0;
    static const char *names[] = { "pingpong", "pipeline", "bulk", "churn", "idle" };
    printf("result mode=%s ops=%llu seconds=%.3f ops_per_s=%.1f mb_per_s=%.2f "
           "p50_us=%.1f p99_us=%.1f errors=%llu bytes=%llu\n",
           names[mode], (unsigned long long)ops, elapsed, (double)ops / elapsed,
           (double)bytes_echoed / elapsed / 1e6, p50, p99,
           (unsigned long long)errors, (unsigned long long)bytes_echoed);
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
}

static void run_idle(void) {
    uint64_t t0 = now_ns();
    int next = 0;
    /* open every connection, at most IDLE_MAX_INFLIGHT unfinished at once */
    for (;;) {
        while (next < idle_target && inflight < IDLE_MAX_INFLIGHT) {
            conn_start(&conns[next]);
            next++;
        }
        if (next >= idle_target && inflight == 0)
            break;
        poll_once(1000);
        if (now_ns() - t0 > 120ull * 1000000000ull) {
            fprintf(stderr, "load idle: timed out opening connections\n");
            errors += (uint64_t)inflight + (uint64_t)(idle_target - next);
            break;
        }
    }
    double setup = (double)(now_ns() - t0) / 1e9;
    printf("ready conns=%d errors=%llu seconds=%.3f\n", held, (unsigned long long)errors, setup);
    fflush(stdout);

    /* hold until a line or EOF on stdin */
    char ch;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            break;
    }
    /* anything the server did meanwhile (it should have done nothing) */
    int still = 0;
    for (int i = 0; i < idle_target; i++) {
        conn *c = &conns[i];
        if (c->state == C_HELD) {
            char b;
            ssize_t r = recv(c->fd, &b, 1, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                errors++; /* closed or reset while held */
            else if (r > 0)
                errors++; /* unsolicited bytes */
            else
                still++;
        }
        if (c->fd >= 0)
            close(c->fd);
    }
    printf("result mode=idle ops=%d seconds=%.3f ops_per_s=0 mb_per_s=0 p50_us=0 p99_us=0 "
           "errors=%llu bytes=%llu\n",
           still, setup, (unsigned long long)errors, (unsigned long long)bytes_echoed);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr,
            "usage:\n"
            "  load pingpong HOST PORT CONNS SIZE SECONDS\n"
            "  load pingpong_n HOST PORT CONNS SIZE COUNT\n"
            "  load pipeline HOST PORT CONNS DEPTH SIZE SECONDS\n"
            "  load bulk     HOST PORT CHUNK SECONDS\n"
            "  load churn    HOST PORT PARALLEL SIZE SECONDS\n"
            "  load idle     HOST PORT CONNS\n");
    exit(2);
}

static long arg_long(const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "load: bad number '%s' (want %ld..%ld)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

static double arg_seconds(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v > 0) || v > 86400) {
        fprintf(stderr, "load: bad duration '%s'\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 4)
        usage();
    const char *m = argv[1];
    double seconds = 0;
    if (!strcmp(m, "pingpong") && argc == 7) {
        mode = M_PINGPONG;
        nconns = (int)arg_long(argv[4], 1, 1000000);
        msg_size = (size_t)arg_long(argv[5], 1, MAX_IO);
        seconds = arg_seconds(argv[6]);
    } else if (!strcmp(m, "pingpong_n") && argc == 7) {
        mode = M_PINGPONG;
        nconns = (int)arg_long(argv[4], 1, 1000000);
        msg_size = (size_t)arg_long(argv[5], 1, MAX_IO);
        budget = (uint64_t)arg_long(argv[6], 1, 2000000000L);
        seconds = 600; /* a bound, not a duration */
    } else if (!strcmp(m, "pipeline") && argc == 8) {
        mode = M_PIPELINE;
        nconns = (int)arg_long(argv[4], 1, 1000000);
        depth = (size_t)arg_long(argv[5], 1, 1000000);
        msg_size = (size_t)arg_long(argv[6], 1, MAX_IO);
        seconds = arg_seconds(argv[7]);
    } else if (!strcmp(m, "bulk") && argc == 6) {
        mode = M_BULK;
        nconns = 1;
        chunk = (size_t)arg_long(argv[4], 1, BULK_WINDOW);
        seconds = arg_seconds(argv[5]);
    } else if (!strcmp(m, "churn") && argc == 7) {
        mode = M_CHURN;
        nconns = (int)arg_long(argv[4], 1, 100000);
        msg_size = (size_t)arg_long(argv[5], 1, MAX_IO);
        seconds = arg_seconds(argv[6]);
    } else if (!strcmp(m, "idle") && argc == 5) {
        mode = M_IDLE;
        nconns = idle_target = (int)arg_long(argv[4], 1, 10000000);
    } else {
        usage();
    }

    signal(SIGPIPE, SIG_IGN);
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)arg_long(argv[3], 1, 65535));
    if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) {
        fprintf(stderr, "load: HOST must be an IPv4 address, got '%s'\n", argv[2]);
        return 1;
    }

    pattern_init();
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) {
        perror("calloc");
        return 1;
    }
    for (int i = 0; i < nconns; i++)
        conns[i].fd = -1;
    if (mode == M_PINGPONG) {
        hist = calloc(HIST_N, sizeof *hist);
        if (!hist) {
            perror("calloc");
            return 1;
        }
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 1;
    }

    if (mode == M_IDLE)
        run_idle();
    else
        run_timed(seconds);
    return 0;
}
