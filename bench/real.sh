# shellcheck shell=bash
# bench/real.sh: the real-workload rows of bench/run.sh (sourced by it, after
# its helpers; see bench/README.md). Each row compares a coronet example with
# its native anchor in the same run:
#   http   examples/http_hello.lua   vs nginx (nginx_http.conf.in)
#   redis  examples/redis_lite.lua   vs redis-server
#   proxy  examples/proxy.lua        vs nginx's stream proxy (nginx_stream.conf.in),
#          both in front of the same nginx HTTP server
#   echo   examples/echo_server.lua  vs bench/baseline_echo.c (raw libuv): the
#          deterministic figures only (run.sh's echo table has the wall clock)
#   tls    bench/tls_peer.lua over TLS vs the same code over plain TCP: bulk
#          MB/s and full handshakes per second (the client is coronet too)
# Wall-clock figures: for each run the two servers are measured one after the
# other (the order alternates run by run), each on a fresh server pinned to
# CPU 0 with the load on CPU 1; a figure is the median of the runs and its
# ratio the median of the per-run (pair) ratios, shown with their range.
# Deterministic figures (user-space instructions and system calls per
# operation): see exact_instructions and exact_syscalls below.

EXACT_N=${BENCH_EXACT_N:-10000}
PROXY_MIB=${BENCH_PROXY_MIB:-256}
TLS_EXACT_N=${BENCH_TLS_EXACT_N:-200} # a handshake is ~100x an echo round trip under callgrind
TLS_CONNS=${BENCH_TLS_CONNS:-2000}
TLS_IDLE=${BENCH_TLS_IDLE:-2000}
TLS_CERTS=$TMP/certs
BLOB=$TMP/blob  # the proxy rows' large file (made by proxy_upstream_start)
BLOB_BYTES=$((PROXY_MIB * 1048576))
NGINX_STREAM_MODULE=${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}
[[ $EXACT_N =~ ^[1-9][0-9]*$ ]] || die "BENCH_EXACT_N must be a positive integer, got '$EXACT_N'"
[[ $TLS_EXACT_N =~ ^[1-9][0-9]*$ ]] || die "BENCH_TLS_EXACT_N must be a positive integer, got '$TLS_EXACT_N'"
[[ $TLS_CONNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_TLS_CONNS must be a positive integer, got '$TLS_CONNS'"
[[ $TLS_IDLE =~ ^[1-9][0-9]*$ ]] || die "BENCH_TLS_IDLE must be a positive integer, got '$TLS_IDLE'"
[[ $PROXY_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_PROXY_MIB must be a positive integer, got '$PROXY_MIB'"
# wrk takes whole seconds
WRK_SECONDS=$(awk -v s="$BENCH_SECONDS" 'BEGIN{ n = int(s + 0.5); print (n < 1 ? 1 : n) }')
# redis-benchmark takes a request count: about BENCH_SECONDS of work per test
# at the rates of this machine (its runs are shorter for a fast server).
REDIS_N1=$(awk -v s="$BENCH_SECONDS" 'BEGIN{ n = int(40000 * s / 16) * 16; print (n < 1600 ? 1600 : n) }')
REDIS_N16=$((REDIS_N1 * 5))
read -r -a REDIS_TESTS <<<"${BENCH_REDIS_TESTS:-PING_INLINE PING_MBULK SET GET}"

# ---- tools: a missing one fails the run loudly --------------------------

real_require() { # part -> dies naming what is missing
    local -a need=() missing=()
    local t
    case $1 in
    http) need=(nginx wrk valgrind callgrind_control strace) ;;
    redis) need=(redis-server redis-benchmark redis-cli valgrind callgrind_control strace) ;;
    proxy) need=(nginx wrk curl cmp valgrind callgrind_control strace) ;;
    echo) need=(valgrind callgrind_control strace) ;;
    tls) need=(openssl valgrind callgrind_control strace) ;;
    esac
    for t in "${need[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
    if [[ $1 == proxy && ! -f $NGINX_STREAM_MODULE ]]; then missing+=("$NGINX_STREAM_MODULE (libnginx-mod-stream)"); fi
    ((${#missing[@]} == 0)) ||
        die "the $1 rows need: ${missing[*]} (Debian: wrk nginx-light libnginx-mod-stream redis-server redis-tools valgrind strace curl; or leave $1 out of BENCH_PARTS)"
}

# ---- processes ------------------------------------------------------------

REAL_PIDS=()  # every process started here and not stopped yet (cleanup kills them)
real_cleanup() {
    local p
    for p in "${REAL_PIDS[@]}"; do kill_wait "$p"; done
    REAL_PIDS=()
}

stop_bg() { # pid: stops it (TERM, then KILL) and forgets it
    local p keep=()
    kill_wait "$1"
    for p in "${REAL_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    REAL_PIDS=("${keep[@]}")
}

# Starts CMD... pinned like a server (CPU 0) or like the load (CPU 1), output
# to LOG, and waits until PORT accepts (60 s: valgrind starts slowly). Sets
# BG_PID; returns 1 (the process stopped) if it died or never listened.
start_bg() { # server|load port log cmd...
    local pin=$1 port=$2 logf=$3 i
    shift 3
    local -a p=("${PIN_LOAD[@]}")
    [[ $pin == server ]] && p=("${PIN_SERVER[@]}")
    "${p[@]}" "$@" >"$logf" 2>&1 </dev/null &
    BG_PID=$!
    REAL_PIDS+=("$BG_PID")
    for ((i = 0; i < 3000; i++)); do
        proc_alive "$BG_PID" || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.02
    done
    log "$1 did not start on port $port: $(tail -n 3 "$logf" | tr '\n' ' ' | cut -c1-300)"
    stop_bg "$BG_PID"
    return 1
}

# An nginx configuration from a template, in a directory of its own.
nginx_conf() { # template port upstream -> NGINX_DIR
    NGINX_DIR=$TMP/nginx.$2
    rm -rf "$NGINX_DIR"
    mkdir -p "$NGINX_DIR"
    sed -e "s|@DIR@|$NGINX_DIR|g" -e "s|@PORT@|$2|g" -e "s|@UPSTREAM@|$3|g" \
        -e "s|@BLOB@|$BLOB|g" -e "s|@MODULE@|$NGINX_STREAM_MODULE|g" \
        "$ROOT/bench/$1" >"$NGINX_DIR/nginx.conf"
}

# The command of a server kind on PORT (UPSTREAM: the proxies' target) -> CMD
real_cmd() { # kind port [upstream]
    case $1 in
    nginx_http) nginx_conf nginx_http.conf.in "$2" 0; CMD=(nginx -p "$NGINX_DIR/" -c "$NGINX_DIR/nginx.conf") ;;
    nginx_stream) nginx_conf nginx_stream.conf.in "$2" "$3"; CMD=(nginx -p "$NGINX_DIR/" -c "$NGINX_DIR/nginx.conf") ;;
    redis) mkdir -p "$TMP/redis.$2"
        CMD=(redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis.$2") ;;
    coronet_http) CMD=("$LUA" "$ROOT/examples/http_hello.lua" "$2") ;;
    coronet_redis) CMD=("$LUA" "$ROOT/examples/redis_lite.lua" "$2") ;;
    coronet_proxy) CMD=("$LUA" "$ROOT/examples/proxy.lua" "$2" 127.0.0.1 "$3") ;;
    baseline_echo) CMD=("$BIN/baseline_echo" "$2") ;;
    coronet_echo) CMD=("$LUA" "$ROOT/examples/echo_server.lua" "$2") ;;
    coronet_plain) CMD=("$LUA" "$ROOT/bench/tls_peer.lua" server "$2" plain) ;;
    coronet_tls) CMD=("$LUA" "$ROOT/bench/tls_peer.lua" server "$2" tls "$TLS_CERTS/server.pem" "$TLS_CERTS/server.key") ;;
    esac
}

# Starts a server of KIND on a free port, plain or under WRAP (an array
# name: the valgrind command line). Sets RPID, RPORT.
start_real() { # kind [wrap-array-name]
    local -a wrap=()
    if [[ -n ${2:-} ]]; then
        local -n wrap_ref=$2
        wrap=("${wrap_ref[@]}")
    fi
    for _ in 1 2 3; do
        next_port || return 1
        RPORT=$PORT
        real_cmd "$1" "$RPORT" "${UPSTREAM_PORT:-0}"
        if start_bg server "$RPORT" "$TMP/$1.$RPORT.log" "${wrap[@]}" "${CMD[@]}"; then
            RPID=$BG_PID
            return 0
        fi
    done
    return 1
}

# ---- records ----------------------------------------------------------------

declare -A RV=()     # "metric|side|run" -> value (side: anchor, coronet)
declare -A RFAIL=()  # "row|side" -> why it failed (row: http, redis, proxy)
declare -A EXACT=()  # "metric|side" -> "first second" (the two repeats)
REAL_ROWS=()         # "key|row|label|fmt|kind": kind up/down (wall clock), exact
real_metric() { REAL_ROWS+=("$1|$2|$3|$4|$5"); }

real_fail() { # row side reason
    RFAIL["$1|$2"]="${RFAIL["$1|$2"]:-}${RFAIL["$1|$2"]:+; }$3"
    log "$1 $2: FAIL ($3)"
}

cpu_us_per() { # ticks-before ticks-after ops
    calc "($2 - $1) * 1000000 / $CLK_TCK / $3"
}

# ---- loads ----------------------------------------------------------------

# wrk against PORT with CONNS connections for WRK_SECONDS; sets WRK_RPS,
# WRK_REQS, WRK_CPU (server µs per request, PID's CPU). Returns 1 with
# WRK_ERR on a failure (non-2xx answers, socket errors, no request).
wrk_run() { # pid port conns
    local c0 c1 out lrc=0
    WRK_ERR=""
    c0=$(proc_cpu_ticks "$1") || { WRK_ERR="server died"; return 1; }
    out=$(timeout -k 5 "$((WRK_SECONDS + 30))" "${PIN_LOAD[@]}" wrk -t1 -c"$3" -d"${WRK_SECONDS}s" --timeout 10s \
        "http://127.0.0.1:$2/" 2>&1) || lrc=$?
    c1=$(proc_cpu_ticks "$1") || { WRK_ERR="server died"; return 1; }
    WRK_REQS=$(awk '/requests in/{print $1}' <<<"$out")
    WRK_RPS=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
    if ((lrc != 0)) || [[ -z $WRK_REQS || -z $WRK_RPS ]] || ((WRK_REQS == 0)); then
        WRK_ERR="wrk exit $lrc: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
        return 1
    fi
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        WRK_ERR=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' \n' ' ')
        return 1
    fi
    WRK_CPU=$(cpu_us_per "$c0" "$c1" "$WRK_REQS")
}

# http_load: exactly COUNT requests over CONNS connections, every answer checked.
http_drive() { # port conns count
    local out
    out=$(timeout -k 5 600 "${PIN_LOAD[@]}" "$BIN/http_load" 127.0.0.1 "$1" "$2" "$3") || return 1
    [[ $(kv "$out" requests) == "$3" && $(kv "$out" errors) == 0 ]] || { log "http_load: $out"; return 1; }
}

# redis-benchmark: COUNT requests of one TEST, 50 clients, pipeline DEPTH.
# Sets REDIS_RPS. A server error makes redis-benchmark exit non-zero.
redis_drive() { # port depth test count
    local out
    out=$(timeout -k 5 600 "${PIN_LOAD[@]}" redis-benchmark -h 127.0.0.1 -p "$1" -c 50 -P "$2" -t "$3" -n "$4" \
        -q --csv 2>&1) || { log "redis-benchmark: $(tail -n 2 <<<"$out" | tr '\n' ' ')"; return 1; }
    REDIS_RPS=$(awk -F'"' -v t="$3" '$2 == t {print $4}' <<<"$out")
    [[ -n $REDIS_RPS ]] || { log "redis-benchmark printed no $3 line: $out"; return 1; }
}

# COUNT transfers of the large file through PORT, each to /dev/null (its
# size checked). Sets CURL_MBS of the last one (10^6 B/s).
blob_drive() { # port count
    local i out code size secs
    for ((i = 0; i < $2; i++)); do
        out=$(timeout -k 5 600 "${PIN_LOAD[@]}" curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' \
            "http://127.0.0.1:$1/blob") || { log "curl failed: $out"; return 1; }
        read -r code size secs <<<"$out"
        [[ $code == 200 && $size == "$BLOB_BYTES" ]] || { log "curl: status $code, $size of $BLOB_BYTES bytes"; return 1; }
    done
    CURL_MBS=$(calc "$size / $secs / 1000000")
}

# The large file through PORT, byte for byte against the original.
blob_verify() { # port
    timeout -k 5 600 "${PIN_LOAD[@]}" curl -sf "http://127.0.0.1:$1/blob" | cmp -s - "$BLOB"
}

# ---- deterministic figures ------------------------------------------------
# Both counts use the same trick: the server handles DRIVE with N operations
# and then with 2N (fresh client connections each time), and the per-operation
# figure is (count(2N) - count(N)) / N, which cancels what a client run costs
# whatever its length (connecting, closing, redis-benchmark's CONFIG GET).
# The pair is measured twice on the same warmed-up server; the two results
# should agree within about 1 %.

CALLGRIND=(valgrind --tool=callgrind --callgrind-out-file=OUT)
EXACT_REPEATS=${BENCH_EXACT_REPEATS:-2}
[[ $EXACT_REPEATS =~ ^[12]$ ]] || die "BENCH_EXACT_REPEATS must be 1 or 2, got '$EXACT_REPEATS'"

socket_count() { # pid -> open sockets (its other descriptors come and go: valgrind's, redis's)
    find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l
}

# Runs DRIVE... COUNT, then waits (up to 10 s) until the server PID has
# closed the client run's connections, so that their cost lands in this run.
drive_settled() { # pid count drive...
    local pid=$1 count=$2 base i
    shift 2
    base=$(socket_count "$pid")
    "$@" "$count" || return 1
    for ((i = 0; i < 1000; i++)); do
        (($(socket_count "$pid") <= base)) && return 0
        sleep 0.01
    done
    log "the server still holds $(($(socket_count "$pid") - base)) more sockets than before the run"
    return 1
}

# User-space instructions (callgrind's Ir, every thread) per operation of
# DRIVE... (called with the operation count appended) on a server started
# under callgrind: counters zeroed before each client run, dumped after it.
# Sets EXACT_V1, EXACT_V2. The server (pid PID, dump files OUT.k) is given.
exact_instructions() { # pid out-file n drive...
    local pid=$1 out=$2 n=$3 rep m t
    shift 3
    local -a totals=()
    for ((rep = 1; rep <= EXACT_REPEATS; rep++)); do
        for m in 1 2; do
            callgrind_control -z "$pid" >/dev/null 2>&1 || { log "callgrind_control -z $pid failed"; return 1; }
            drive_settled "$pid" $((m * n)) "$@" || return 1
            callgrind_control -d "$pid" >/dev/null 2>&1 || { log "callgrind_control -d $pid failed"; return 1; }
            CG_DUMPS=$((CG_DUMPS + 1))
            t=$(awk '/^totals:/{print $2}' "$out.$CG_DUMPS" 2>/dev/null)
            [[ -n $t ]] || { log "no totals in $out.$CG_DUMPS"; return 1; }
            totals+=("$t")
        done
    done
    EXACT_V1=$(calc "(${totals[1]} - ${totals[0]}) / $n")
    EXACT_V2=$EXACT_V1
    ((EXACT_REPEATS == 1)) || EXACT_V2=$(calc "(${totals[3]} - ${totals[2]}) / $n")
}

# System calls (every thread) per operation, counted by strace -c -f
# attached to the plain server PID around each client run (it detaches once
# the server has closed that run's connections).
exact_syscalls() { # pid n drive...
    local pid=$1 n=$2 rep m k=0 spid i
    shift 2
    local -a calls=()
    for ((rep = 1; rep <= EXACT_REPEATS; rep++)); do
        for m in 1 2; do
            k=$((k + 1))
            strace -f -c -o "$TMP/strace.$pid.$k" -p "$pid" 2>"$TMP/strace.$pid.$k.log" &
            spid=$!
            REAL_PIDS+=("$spid")
            for ((i = 0; i < 500; i++)); do
                grep -q attached "$TMP/strace.$pid.$k.log" 2>/dev/null && break
                sleep 0.01
            done
            drive_settled "$pid" $((m * n)) "$@" || { stop_bg "$spid"; return 1; }
            kill -INT "$spid" 2>/dev/null || true
            wait "$spid" 2>/dev/null || true
            stop_bg "$spid"
            calls+=("$(awk '$NF == "total" {print $4}' "$TMP/strace.$pid.$k")")
            [[ -n ${calls[-1]} ]] || { log "strace counted nothing: $(tail -n 2 "$TMP/strace.$pid.$k.log")"; return 1; }
        done
    done
    EXACT_V1=$(calc "(${calls[1]} - ${calls[0]}) / $n")
    EXACT_V2=$EXACT_V1
    ((EXACT_REPEATS == 1)) || EXACT_V2=$(calc "(${calls[3]} - ${calls[2]}) / $n")
}

# Runs the deterministic measurements of ROW for one side: the server under
# callgrind, then plain under strace. MEASURE (a function) is called as
# MEASURE instructions|syscalls PID PORT OUT and records its figures.
exact_side() { # row side kind measure
    local row=$1 side=$2 kind=$3 measure=$4 out
    out=$TMP/callgrind.$kind.out
    # shellcheck disable=SC2034  # read by start_real through its name
    CG_WRAP=("${CALLGRIND[@]/OUT/$out}")
    CG_DUMPS=0
    if ! start_real "$kind" CG_WRAP; then real_fail "$row" "$side" "did not start under callgrind"; return 1; fi
    if ! "$measure" instructions "$RPID" "$RPORT" "$out"; then
        stop_bg "$RPID"; real_fail "$row" "$side" "instruction count failed"; return 1
    fi
    stop_bg "$RPID"
    rm -f "$out" "$out".*
    if ! start_real "$kind"; then real_fail "$row" "$side" "did not start"; return 1; fi
    if ! "$measure" syscalls "$RPID" "$RPORT"; then
        stop_bg "$RPID"; real_fail "$row" "$side" "system call count failed"; return 1
    fi
    stop_bg "$RPID"
}

# One deterministic figure; records EXACT[key|side]. The first figure taken
# from a server process warms it up first with one N-operation run (under
# callgrind only the zeroed runs count anyway).
exact_figure() { # what pid out key side n drive...
    local what=$1 pid=$2 out=$3 key=$4 side=$5 n=$6
    shift 6
    if [[ ${WARMED_PID:-} != "$pid" ]]; then
        "$@" "$n" || return 1
        WARMED_PID=$pid
    fi
    if [[ $what == instructions ]]; then
        exact_instructions "$pid" "$out" "$n" "$@" || return 1
    else
        exact_syscalls "$pid" "$n" "$@" || return 1
    fi
    EXACT["$key|$side"]="$EXACT_V1 $EXACT_V2"
    log "  $key $side: $EXACT_V1, $EXACT_V2 per operation"
}

# ---- row: HTTP --------------------------------------------------------------

real_metric http_c50_rps http "HTTP wrk -c50: requests/s" "%.0f" up
real_metric http_c50_cpu http "HTTP wrk -c50: server CPU us/request" "%.2f" down
real_metric http_c50_ir http "HTTP -c50: user instructions/request" "%.0f" exact
real_metric http_c50_sys http "HTTP -c50: system calls/request" "%.3f" exact
real_metric http_c400_rps http "HTTP wrk -c400: requests/s" "%.0f" up
real_metric http_c400_cpu http "HTTP wrk -c400: server CPU us/request" "%.2f" down
real_metric http_c400_ir http "HTTP -c400: user instructions/request" "%.0f" exact
real_metric http_c400_sys http "HTTP -c400: system calls/request" "%.3f" exact

http_kind() { if [[ $1 == anchor ]]; then echo nginx_http; else echo coronet_http; fi; }

http_wall() { # side run
    local c
    start_real "$(http_kind "$1")" || { real_fail http "$1" "server did not start"; return 1; }
    for c in 50 400; do
        if ! wrk_run "$RPID" "$RPORT" "$c"; then
            stop_bg "$RPID"; real_fail http "$1" "wrk -c$c: $WRK_ERR"; return 1
        fi
        RV["http_c${c}_rps|$1|$2"]=$WRK_RPS
        RV["http_c${c}_cpu|$1|$2"]=$WRK_CPU
        log "http run $2/$RUNS $1 -c$c: $WRK_RPS requests/s, $(printf '%.2f' "$WRK_CPU") us CPU/request"
    done
    stop_bg "$RPID"
}

http_measure() { # instructions|syscalls pid port [out]
    local c
    for c in 50 400; do
        exact_figure "$1" "$2" "${4:-}" "http_c${c}_$([[ $1 == instructions ]] && echo ir || echo sys)" \
            "$EXACT_SIDE" "$EXACT_N" http_drive "$3" "$c" || return 1
    done
}

# ---- row: Redis protocol ----------------------------------------------------

redis_metrics() {
    local depth t k
    for depth in 1 16; do
        for t in "${REDIS_TESTS[@]}"; do
            k=redis_p${depth}_$t
            real_metric "${k}_ops" redis "redis -P$depth $t: ops/s" "%.0f" up
            real_metric "${k}_cpu" redis "redis -P$depth $t: server CPU us/op" "%.3f" down
            real_metric "${k}_ir" redis "redis -P$depth $t: user instructions/op" "%.0f" exact
            real_metric "${k}_sys" redis "redis -P$depth $t: system calls/op" "%.3f" exact
        done
    done
}
redis_metrics

redis_kind() { if [[ $1 == anchor ]]; then echo redis; else echo coronet_redis; fi; }

redis_wall() { # side run
    local depth t n c0 c1 v
    start_real "$(redis_kind "$1")" || { real_fail redis "$1" "server did not start"; return 1; }
    for depth in 1 16; do
        n=$REDIS_N1
        ((depth == 1)) || n=$REDIS_N16
        for t in "${REDIS_TESTS[@]}"; do
            c0=$(proc_cpu_ticks "$RPID") || c0=""
            if [[ -z $c0 ]] || ! redis_drive "$RPORT" "$depth" "$t" "$n" || ! c1=$(proc_cpu_ticks "$RPID"); then
                stop_bg "$RPID"; real_fail redis "$1" "-P$depth $t failed"; return 1
            fi
            RV["redis_p${depth}_${t}_ops|$1|$2"]=$REDIS_RPS
            RV["redis_p${depth}_${t}_cpu|$1|$2"]=$(cpu_us_per "$c0" "$c1" "$n")
            log "redis run $2/$RUNS $1 -P$depth $t: $REDIS_RPS ops/s, $(printf '%.3f' "$(cpu_us_per "$c0" "$c1" "$n")") us CPU/op"
        done
    done
    # what SET stored, read back by another client
    v=$(timeout 10 redis-cli -h 127.0.0.1 -p "$RPORT" GET key:__rand_int__ 2>&1) || v=""
    stop_bg "$RPID"
    [[ ${#v} == 3 ]] || { real_fail redis "$1" "GET after SET returned '$v'"; return 1; }
}

redis_measure() { # instructions|syscalls pid port [out]
    local depth t n suffix=ir
    [[ $1 == instructions ]] || suffix=sys
    for depth in 1 16; do
        n=$EXACT_N
        ((depth == 1)) || n=$((EXACT_N * 2))
        for t in "${REDIS_TESTS[@]}"; do
            exact_figure "$1" "$2" "${4:-}" "redis_p${depth}_${t}_$suffix" "$EXACT_SIDE" "$n" \
                redis_drive "$3" "$depth" "$t" || return 1
        done
    done
}

# ---- row: proxy -------------------------------------------------------------

real_metric proxy_rps proxy "proxy wrk -c50: requests/s" "%.0f" up
real_metric proxy_cpu proxy "proxy wrk -c50: proxy CPU us/request" "%.2f" down
real_metric proxy_ir proxy "proxy -c50: user instructions/request" "%.0f" exact
real_metric proxy_sys proxy "proxy -c50: system calls/request" "%.3f" exact
real_metric proxy_mbs proxy "proxy ${PROXY_MIB} MiB transfer: MB/s" "%.0f" up
real_metric proxy_mb_cpu proxy "proxy ${PROXY_MIB} MiB transfer: proxy CPU us/MB" "%.1f" down
real_metric proxy_mb_ir proxy "proxy transfer: user instructions/MB" "%.0f" exact
real_metric proxy_mb_sys proxy "proxy transfer: system calls/MB" "%.2f" exact

proxy_kind() { if [[ $1 == anchor ]]; then echo nginx_stream; else echo coronet_proxy; fi; }
BLOB_MB=$(calc "$PROXY_MIB * 1048576 / 1000000")

# The upstream of both proxies: one nginx HTTP server, pinned with the load
# (CPU 1) so the proxy has CPU 0 to itself, serving the large file.
proxy_upstream_start() {
    head -c "$BLOB_BYTES" /dev/urandom >"$BLOB" || return 1
    next_port || return 1
    real_cmd nginx_http "$PORT"
    start_bg load "$PORT" "$TMP/upstream.log" "${CMD[@]}" || return 1
    UPSTREAM_PORT=$PORT
    UPSTREAM_PID=$BG_PID
}

proxy_wall() { # side run
    local c0 c1
    start_real "$(proxy_kind "$1")" || { real_fail proxy "$1" "proxy did not start"; return 1; }
    if ! wrk_run "$RPID" "$RPORT" 50; then
        stop_bg "$RPID"; real_fail proxy "$1" "wrk -c50: $WRK_ERR"; return 1
    fi
    RV["proxy_rps|$1|$2"]=$WRK_RPS
    RV["proxy_cpu|$1|$2"]=$WRK_CPU
    c0=$(proc_cpu_ticks "$RPID") || c0=""
    if [[ -z $c0 ]] || ! blob_drive "$RPORT" 1 || ! c1=$(proc_cpu_ticks "$RPID"); then
        stop_bg "$RPID"; real_fail proxy "$1" "large transfer failed"; return 1
    fi
    RV["proxy_mbs|$1|$2"]=$CURL_MBS
    RV["proxy_mb_cpu|$1|$2"]=$(calc "($c1 - $c0) * 1000000 / $CLK_TCK / $BLOB_MB")
    if ! blob_verify "$RPORT"; then
        stop_bg "$RPID"; real_fail proxy "$1" "the large file came through altered"; return 1
    fi
    stop_bg "$RPID"
    log "proxy run $2/$RUNS $1: $WRK_RPS requests/s, $(printf '%.2f' "$WRK_CPU") us CPU/request," \
        "$(printf '%.0f' "$CURL_MBS") MB/s"
}

proxy_measure() { # instructions|syscalls pid port [out]
    local suffix=ir
    [[ $1 == instructions ]] || suffix=sys
    exact_figure "$1" "$2" "${4:-}" "proxy_$suffix" "$EXACT_SIDE" "$EXACT_N" http_drive "$3" 50 || return 1
    # transfers: one, then two; per MB below
    exact_figure "$1" "$2" "${4:-}" "proxy_mb_$suffix" "$EXACT_SIDE" 1 blob_drive "$3" || return 1
    local v1 v2
    read -r v1 v2 <<<"${EXACT["proxy_mb_$suffix|$EXACT_SIDE"]}"
    EXACT["proxy_mb_$suffix|$EXACT_SIDE"]="$(calc "$v1 / $BLOB_MB") $(calc "$v2 / $BLOB_MB")"
}

# ---- row: echo (deterministic figures only) -----------------------------------

real_metric echo_pp50_ir echo "echo ping-pong 64 B x50: user instructions/round trip" "%.0f" exact
real_metric echo_pp50_sys echo "echo ping-pong 64 B x50: system calls/round trip" "%.3f" exact

echo_kind() { if [[ $1 == anchor ]]; then echo baseline_echo; else echo coronet_echo; fi; }
echo_wall() { :; } # the echo table measures these servers' wall clock

# load pingpong_n: exactly COUNT round trips of 64 B over 50 connections.
echo_drive() { # port count
    local out
    out=$(timeout -k 5 600 "${PIN_LOAD[@]}" "$LOAD" pingpong_n 127.0.0.1 "$1" 50 64 "$2") || return 1
    [[ $(kv "$out" ops) == "$2" && $(kv "$out" errors) == 0 ]] || { log "load: $out"; return 1; }
}

echo_measure() { # instructions|syscalls pid port [out]
    local suffix=ir
    [[ $1 == instructions ]] || suffix=sys
    exact_figure "$1" "$2" "${4:-}" "echo_pp50_$suffix" "$EXACT_SIDE" "$EXACT_N" echo_drive "$3"
}

# ---- row: TLS ---------------------------------------------------------------
# The anchor is coronet itself over plain TCP: the ratios are what TLS costs.

real_metric tls_bulk_mbs tls "TLS bulk upload: MB/s" "%.0f" up
real_metric tls_bulk_cpu tls "TLS bulk upload: server CPU us/MB" "%.0f" down
real_metric tls_conn_rate tls "TLS connections x8 (full handshake): connections/s" "%.0f" up
real_metric tls_conn_cpu tls "TLS connections x8: server CPU us/connection" "%.1f" down
real_metric tls_conn_ir tls "TLS connections x8: user instructions/connection" "%.0f" exact
real_metric tls_conn_sys tls "TLS connections x8: system calls/connection" "%.2f" exact
real_metric tls_idle_rss tls "TLS idle x$TLS_IDLE: server RSS KiB/connection" "%.2f" down

tls_kind() { if [[ $1 == anchor ]]; then echo coronet_plain; else echo coronet_tls; fi; }
tls_security() { if [[ $1 == anchor ]]; then echo plain; else echo tls; fi; }

tls_certs() {
    [[ -f $TLS_CERTS/server.pem ]] || bash "$ROOT/spec/tls/make_certs.sh" "$TLS_CERTS" >/dev/null
}

# bench/tls_peer.lua as the load: prints "count seconds".
tls_client() { # security port mode args...
    timeout -k 5 600 "${PIN_LOAD[@]}" "$LUA" "$ROOT/bench/tls_peer.lua" "$3" "$2" "$1" "$TLS_CERTS/ca.pem" "${@:4}"
}

# Exactly COUNT connections with concurrency 8 (every answer checked by the client).
tls_drive() { # port count
    local out
    out=$(tls_client "$EXACT_SECURITY" "$1" connections "$2" 8 2>&1) || { log "tls_peer: $out"; return 1; }
    [[ ${out%%$'\t'*} == "$2" ]] || { log "tls_peer: $out"; return 1; }
}

tls_wall() { # side run
    local security c0 c1 out count secs
    security=$(tls_security "$1")
    start_real "$(tls_kind "$1")" || { real_fail tls "$1" "server did not start"; return 1; }
    c0=$(proc_cpu_ticks "$RPID")
    out=$(tls_client "$security" "$RPORT" bulk "$PROXY_MIB" 2>&1) || { stop_bg "$RPID"; real_fail tls "$1" "bulk: $out"; return 1; }
    c1=$(proc_cpu_ticks "$RPID")
    read -r count secs <<<"$out"
    RV["tls_bulk_mbs|$1|$2"]=$(calc "$count / $secs / 1000000")
    RV["tls_bulk_cpu|$1|$2"]=$(cpu_us_per "$c0" "$c1" "$(calc "$count / 1000000")")
    c0=$(proc_cpu_ticks "$RPID")
    out=$(tls_client "$security" "$RPORT" connections "$TLS_CONNS" 8 2>&1) ||
        { stop_bg "$RPID"; real_fail tls "$1" "connections: $out"; return 1; }
    c1=$(proc_cpu_ticks "$RPID")
    read -r count secs <<<"$out"
    RV["tls_conn_rate|$1|$2"]=$(calc "$count / $secs")
    RV["tls_conn_cpu|$1|$2"]=$(cpu_us_per "$c0" "$c1" "$count")
    tls_idle "$security" "$2" || { stop_bg "$RPID"; real_fail tls "$1" "idle: $TLS_IDLE_ERR"; return 1; }
    RV["tls_idle_rss|$1|$2"]=$TLS_IDLE_KIB
    log "tls run $2/$RUNS $1: $(printf '%.0f' "${RV["tls_bulk_mbs|$1|$2"]}") MB/s, $(printf '%.0f' "${RV["tls_conn_rate|$1|$2"]}") connections/s"
    stop_bg "$RPID"
}

# TLS_IDLE connections held open by bench/tls_peer.lua idle: sets
# TLS_IDLE_KIB (the server's RSS growth per connection) or TLS_IDLE_ERR.
tls_idle() { # security run
    local r0 r1 out="$TMP/tls_idle.$2.out" cpid
    r0=$(proc_rss_kib "$RPID") || { TLS_IDLE_ERR="no VmRSS"; return 1; }
    timeout -k 5 300 "${PIN_LOAD[@]}" "$LUA" "$ROOT/bench/tls_peer.lua" idle "$RPORT" "$1" "$TLS_CERTS/ca.pem" \
        "$TLS_IDLE" >"$out" 2>&1 &
    cpid=$!
    REAL_PIDS+=("$cpid")
    for _ in $(seq 600); do
        grep -q '^ready' "$out" && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $(cat "$out") != "ready $TLS_IDLE" ]]; then
        TLS_IDLE_ERR="the client did not hold $TLS_IDLE connections: $(head -c 300 "$out")"
        stop_bg "$cpid"
        return 1
    fi
    sleep 0.2 # the server's last handshakes finish
    r1=$(proc_rss_kib "$RPID") || r1=""
    stop_bg "$cpid"
    [[ -n $r1 ]] || { TLS_IDLE_ERR="no VmRSS"; return 1; }
    TLS_IDLE_KIB=$(calc "($r1 - $r0) / $TLS_IDLE")
}

tls_measure() { # instructions|syscalls pid port [out]
    local suffix=ir
    [[ $1 == instructions ]] || suffix=sys
    EXACT_SECURITY=$(tls_security "$EXACT_SIDE")
    exact_figure "$1" "$2" "${4:-}" "tls_conn_$suffix" "$EXACT_SIDE" "$TLS_EXACT_N" tls_drive "$3"
}

# ---- run --------------------------------------------------------------------

# One row: RUNS wall-clock pairs (order alternating), then the deterministic
# figures of each side.
real_row() { # row
    local row=$1 run side
    local -a order
    for ((run = 1; run <= RUNS; run++)); do
        order=(anchor coronet)
        ((run % 2)) || order=(coronet anchor)
        for side in "${order[@]}"; do
            [[ -z ${RFAIL["$row|$side"]:-} ]] || continue
            "${row}_wall" "$side" "$run" || true
        done
    done
    for side in anchor coronet; do
        EXACT_SIDE=$side
        log "$row $side: deterministic figures (callgrind, then strace)"
        exact_side "$row" "$side" "$("${row}_kind" "$side")" "${row}_measure" || true
    done
}

run_real_parts() { # parts...
    local part
    "$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/http_load" "$ROOT/bench/http_load.c" || die "cannot build bench/http_load.c"
    for part in "$@"; do real_require "$part"; done
    for part in "$@"; do
        log "$part rows: $RUNS runs per side, then the deterministic figures"
        if [[ $part == proxy ]]; then
            if ! proxy_upstream_start; then
                real_fail proxy anchor "the upstream nginx did not start"
                real_fail proxy coronet "the upstream nginx did not start"
                continue
            fi
            real_row proxy
            stop_bg "$UPSTREAM_PID"
        elif [[ $part == tls ]] && ! tls_certs; then
            real_fail tls anchor "spec/tls/make_certs.sh failed"
            real_fail tls coronet "spec/tls/make_certs.sh failed"
        else
            real_row "$part"
        fi
    done
}

# ---- table ----------------------------------------------------------------

# Fills REAL_TABLE with "label|anchor|anchor value|coronet value|ratio|note" lines.
real_table() { # parts...
    local m key row label fmt kind a c ratio note r ra rc v1 v2 w1 w2 spread
    local -a ratios av cv
    REAL_TABLE=()
    for m in "${REAL_ROWS[@]}"; do
        IFS='|' read -r key row label fmt kind <<<"$m"
        [[ " $* " == *" $row "* ]] || continue
        a="" c="" ratio="" note=""
        if [[ $kind == exact ]]; then
            if [[ -n ${EXACT["$key|anchor"]:-} ]]; then
                read -r v1 v2 <<<"${EXACT["$key|anchor"]}"
                # shellcheck disable=SC2059
                a=$(printf "$fmt" "$(calc "($v1 + $v2) / 2")")
                spread=$(calc "($v1 > $v2 ? $v1 - $v2 : $v2 - $v1) * 100 / (($v1 + $v2) / 2 + 1e-9)")
                ((EXACT_REPEATS == 1)) || note="repeats ${spread%????}% apart"
            fi
            if [[ -n ${EXACT["$key|coronet"]:-} ]]; then
                read -r w1 w2 <<<"${EXACT["$key|coronet"]}"
                # shellcheck disable=SC2059
                c=$(printf "$fmt" "$(calc "($w1 + $w2) / 2")")
                spread=$(calc "($w1 > $w2 ? $w1 - $w2 : $w2 - $w1) * 100 / (($w1 + $w2) / 2 + 1e-9)")
                ((EXACT_REPEATS == 1)) || note+="${note:+, }coronet's ${spread%????}%"
            fi
            if [[ -n $a && -n $c ]] && awk -v x="$v1" -v y="$v2" 'BEGIN{exit !(x + y > 0)}'; then
                ratio=$(calc "($w1 + $w2) / ($v1 + $v2)")
                ratio=$(printf '%.2fx' "$ratio")
            fi
        else
            av=() cv=() ratios=()
            for ((r = 1; r <= RUNS; r++)); do
                ra=${RV["$key|anchor|$r"]:-}
                rc=${RV["$key|coronet|$r"]:-}
                [[ -n $ra ]] && av+=("$ra")
                [[ -n $rc ]] && cv+=("$rc")
                if [[ -n $ra && -n $rc ]] && awk -v x="$ra" 'BEGIN{exit !(x > 0)}'; then
                    ratios+=("$(calc "$rc / $ra")")
                fi
            done
            # shellcheck disable=SC2059
            ((${#av[@]})) && a=$(printf "$fmt" "$(median "${av[@]}")")
            # shellcheck disable=SC2059
            ((${#cv[@]})) && c=$(printf "$fmt" "$(median "${cv[@]}")")
            if ((${#ratios[@]})); then
                ratio=$(printf '%.2fx' "$(median "${ratios[@]}")")
                if ((${#ratios[@]} > 1)); then
                    note=$(printf '%s\n' "${ratios[@]}" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1}
                        END {printf "pairs %.2f-%.2f", lo, hi}')
                fi
            fi
        fi
        [[ -n ${RFAIL["$row|anchor"]:-} && -z $a ]] && a=fail
        [[ -n ${RFAIL["$row|coronet"]:-} && -z $c ]] && c=fail
        REAL_TABLE+=("$label|$(real_anchor_name "$row")|${a:-fail}|${c:-fail}|${ratio:--}|$note")
    done
}

real_anchor_name() {
    case $1 in
    http) echo nginx ;;
    echo) echo "raw libuv" ;;
    redis) echo redis-server ;;
    proxy) echo "nginx stream" ;;
    tls) echo "coronet, plain TCP" ;;
    esac
}

real_failures() { # -> lines "- row / side: reason"
    local k
    for k in "${!RFAIL[@]}"; do echo "- ${k%%|*} / ${k#*|}: ${RFAIL[$k]}"; done | sort
}
