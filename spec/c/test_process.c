/* test_process.c: the core's child processes and descriptor streams from
 * plain C. A child's stdin and stdout are streams (EOF reaches it when the
 * writer closes); a missing program fails with nothing left open; closing
 * never kills, cn_loop_close_all does (SIGTERM); a pipe opened with
 * cn_stream_open_fd has the half it cannot do closed, and a regular file or
 * a closed descriptor is refused. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "loop_check.h"
#include "coronet.h"

typedef struct {
  int calls, status;
} outcome;

static void on_status(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->status = status;
}

static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_live(loop) > 0 && cn_loop_run(loop, UV_RUN_ONCE) >= 0 && ++turns < 100000) {
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
}

/* Reads until the end; returns the reader's end status. */
static int read_all(cn_loop *loop, cn_stream *s, char *out, size_t size) {
  size_t got = 0;
  for (;;) {
    size_t len;
    const char *p = cn_reader_peek(s, &len);
    if (len && got + len < size) {
      memcpy(out + got, p, len);
      got += len;
    }
    cn_reader_consume(s, len);
    out[got] = '\0';
    if (cn_reader_status(s)) return cn_reader_status(s);
    outcome o = {0, 0};
    cn_waiter w;
    cn_waiter_init(&w, on_status, &o);
    if (!CHECK_EQ_INT(cn_reader_wait(s, &w, 1), 0)) return -1;
    check_run_until(loop, &o.calls);
  }
}

static void test_sort(void) {
  cn_loop *loop;
  cn_loop_new(&loop, NULL);
  char *args[] = {"sort", NULL};
  cn_process_opts opts = {"sort", args, NULL, NULL};
  cn_process *p;
  cn_stream *in, *out;
  if (!CHECK_EQ_INT(cn_process_spawn(loop, &opts, &p, &in, &out), 0)) return;
  CHECK(cn_process_pid(p) > 0);
  CHECK(cn_reader_is_closed(in)); /* the child's stdin is not ours to read */
  CHECK_EQ_INT(cn_writer_write(in, "b\na\n", 4), 0);
  cn_writer_close(in);
  char text[64];
  CHECK_EQ_INT(read_all(loop, out, text, sizeof text), UV_EOF);
  CHECK_EQ_STR(text, "a\nb\n");
  outcome o = {0, 0};
  cn_waiter w;
  cn_waiter_init(&w, on_status, &o);
  cn_process_exit_wait(p, &w);
  check_run_until(loop, &o.calls);
  int64_t code = -1;
  int signum = -1;
  CHECK_EQ_INT(cn_process_exit_status(p, &code, &signum), 1);
  CHECK_EQ_INT(code, 0);
  CHECK_EQ_INT(signum, 0);
  CHECK_EQ_INT(cn_process_kill(p, SIGTERM), UV_ESRCH);
  cn_process_close(p);
  cn_stream_unref(in);
  cn_stream_unref(out);
  run_to_end(loop);
  cn_loop_free(loop);
}

static void test_missing_program(void) {
  cn_loop *loop;
  cn_loop_new(&loop, NULL);
  char *args[] = {"coronet-no-such-program", NULL};
  cn_process_opts opts = {args[0], args, NULL, NULL};
  cn_process *p = NULL;
  cn_stream *in = NULL, *out = NULL;
  CHECK_EQ_INT(cn_process_spawn(loop, &opts, &p, &in, &out), UV_ENOENT);
  CHECK(p == NULL && in == NULL && out == NULL);
  run_to_end(loop); /* the pipes libuv opened close */
  cn_loop_free(loop);
}

/* Closing lets go without killing; close_all sends SIGTERM and the handle
 * closes once the child is reaped. */
static void test_close_all_ends_a_child(void) {
  cn_loop *loop;
  cn_loop_new(&loop, NULL);
  char *args[] = {"sleep", "30", NULL};
  cn_process_opts opts = {"sleep", args, NULL, NULL};
  cn_process *p;
  cn_stream *in, *out;
  if (!CHECK_EQ_INT(cn_process_spawn(loop, &opts, &p, &in, &out), 0)) return;
  outcome o = {0, 0};
  cn_waiter w;
  cn_waiter_init(&w, on_status, &o);
  cn_process_exit_wait(p, &w);
  cn_stream_unref(in);
  cn_stream_unref(out);
  cn_loop_close_all(loop, 0);
  check_run_until(loop, &o.calls);
  CHECK_EQ_INT(o.status, 0);
  int64_t code;
  int signum;
  CHECK_EQ_INT(cn_process_exit_status(p, &code, &signum), 1);
  CHECK_EQ_INT(signum, SIGTERM);
  run_to_end(loop);
  cn_process_close(p); /* the handle is closed: this frees it */
  cn_loop_free(loop);
}

static void test_pipe_and_refusals(void) {
  cn_loop *loop;
  cn_loop_new(&loop, NULL);
  int fds[2];
  if (!CHECK_EQ_INT(pipe(fds), 0)) return;
  cn_stream *r, *w;
  CHECK_EQ_INT(cn_stream_open_fd(loop, fds[0], &r), 0);
  CHECK_EQ_INT(cn_stream_open_fd(loop, fds[1], &w), 0);
  CHECK_EQ_INT(cn_stream_kind(r), CN_STREAM_PIPE);
  CHECK(cn_writer_is_closed(r)); /* a read end cannot send */
  CHECK(cn_reader_is_closed(w));
  CHECK_EQ_INT(cn_stream_set_nodelay(w, 1), UV_ENOTSUP);
  CHECK_EQ_INT(cn_writer_write(w, "hi", 2), 0);
  cn_writer_close(w); /* its reader is closed: the write end closes after the flush */
  char text[16];
  CHECK_EQ_INT(read_all(loop, r, text, sizeof text), UV_EOF);
  CHECK_EQ_STR(text, "hi");
  cn_stream_unref(r);
  cn_stream_unref(w);
  char path[] = "/tmp/coronet-test-XXXXXX";
  int file = mkstemp(path);
  cn_stream *s = NULL;
  CHECK_EQ_INT(cn_stream_open_fd(loop, file, &s), UV_EINVAL);
  CHECK(fcntl(file, F_GETFD) >= 0); /* refused: still the caller's */
  close(file);
  unlink(path);
  CHECK_EQ_INT(cn_stream_open_fd(loop, file, &s), UV_EBADF);
  CHECK_EQ_INT(cn_stream_open_dup(loop, file, &s), UV_EBADF);
  /* sockets that carry no byte stream: a datagram one, a listening one */
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK_EQ_INT(cn_stream_open_fd(loop, udp, &s), UV_EINVAL);
  close(udp);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cn_addr any;
  cn_addr_ip(&any, "127.0.0.1", 0);
  CHECK_EQ_INT(bind(listener, (struct sockaddr *)&any.ss, any.len), 0);
  CHECK_EQ_INT(listen(listener, 1), 0);
  CHECK_EQ_INT(cn_stream_open_fd(loop, listener, &s), UV_EINVAL);
  close(listener);
  run_to_end(loop);
  cn_loop_free(loop);
}

int main(void) {
  cn_ignore_sigpipe();
  test_sort();
  test_missing_program();
  test_close_all_ends_a_child();
  test_pipe_and_refusals();
  return check_summary();
}
