#!/usr/bin/env bash
# bench/run.sh - compare echo servers: raw libuv C (baseline), coronet, luv,
# cqueues and node; then coronet's HTTP, Redis-protocol and proxy examples
# against nginx, redis-server and nginx's stream proxy (bench/real.sh). See
# bench/README.md.
#
#   bash bench/run.sh
#
# Environment:
#   BENCH_PARTS       parts to run (default "echo http redis proxy tls")
#   BENCH_EXACT_N     operations per deterministic count (default 10000)
#   BENCH_PROXY_MIB   size of the proxy and TLS rows' large transfer (default 256)
#   BENCH_TLS_CONNS   connections per TLS wall-clock run (default 2000)
#   BENCH_TLS_EXACT_N connections per TLS deterministic count (default 200)
#   BENCH_TLS_IDLE    connections held open for the TLS idle-memory row (default 2000)
#   BENCH_SECONDS     seconds per measured run (default 5)
#   BENCH_RUNS        runs per figure; each figure is the median (default 3)
#   BENCH_IDLE_CONNS  connections held open by the idle workload (default 10000)
#   BENCH_OUT         markdown copy of the table (default bench/results.md)
#   BENCH_SERVERS     servers to run, space separated (default: all five)
#   BENCH_PORT        first TCP port to try (default: random in 20000-29999)
#   CORONET_BUILD     CMake build dir: binaries go to $CORONET_BUILD/bench
#   LUA, NODE, CC     interpreters / compiler (default lua5.4, node, gcc)
#
# Exit status: 0 when the table was produced (echo cells may say "fail"), 1
# when the harness itself could not be set up (compiler, bad settings, a tool
# of a chosen part missing), 3 when the table was produced but a real-workload
# row failed (a server did not start, a client reported errors).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INVOKE_DIR=$PWD
cd "$ROOT"

BENCH_SECONDS=${BENCH_SECONDS:-5}
RUNS=${BENCH_RUNS:-3}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
if [[ -n ${BENCH_OUT:-} ]]; then
    OUT=$BENCH_OUT
    [[ $OUT == /* ]] || OUT=$INVOKE_DIR/$OUT
else
    OUT=$ROOT/bench/results.md
fi
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
CC=${CC:-gcc}
read -r -a SERVERS <<<"${BENCH_SERVERS:-baseline coronet luv cqueues node}"
read -r -a PARTS <<<"${BENCH_PARTS:-echo http redis proxy tls}"
part_on() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
REAL_PARTS=()
for p in "${PARTS[@]}"; do
    case $p in
    echo) REAL_PARTS+=(echo) ;; # the echo servers' deterministic figures (bench/real.sh)
    http | redis | proxy | tls) REAL_PARTS+=("$p") ;;
    *) echo "bench: BENCH_PARTS: unknown part '$p' (echo http redis proxy tls)" >&2; exit 1 ;;
    esac
done

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

if ! [[ $BENCH_SECONDS =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v s="$BENCH_SECONDS" 'BEGIN{exit !(s > 0)}'; then
    die "BENCH_SECONDS must be a positive number, got '$BENCH_SECONDS'"
fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ $IDLE_CONNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_IDLE_CONNS must be a positive integer, got '$IDLE_CONNS'"
[[ ${SERVERS[0]:-} == baseline ]] || die "BENCH_SERVERS must start with baseline (ratios are to it)"

# shellcheck disable=SC2317  # cleanup/kill_wait are reached through traps
# ---- cleanup: never leave a server or load generator running ---------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/coronet-bench.XXXXXX")
SPID=""       # current server
LPID=""       # current load generator (its timeout wrapper)
IDLE_FD=""    # write end of the idle loader's stdin

kill_wait() { # pid: TERM, up to 2 s, then KILL; reap
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        proc_alive "$pid" || break
        sleep 0.02
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    if [[ -n $IDLE_FD ]]; then exec {IDLE_FD}>&- || true; IDLE_FD=""; fi
    kill_wait "$LPID"; LPID=""
    kill_wait "$SPID"; SPID=""
    if declare -F real_cleanup >/dev/null; then real_cleanup; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM HUP

# ---- build ----------------------------------------------------------------

if [[ -n ${CORONET_BUILD:-} ]]; then
    BIN=$CORONET_BUILD/bench
else
    BIN=$TMP/bin
fi
mkdir -p "$BIN"
UV_FLAGS=$(pkg-config --cflags --libs libuv 2>/dev/null || echo "-luv")
CFLAGS_BENCH=(-O2 -std=c99 -Wall -Wextra -Werror)
# shellcheck disable=SC2086
"$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/baseline_echo" bench/baseline_echo.c $UV_FLAGS ||
    die "cannot build bench/baseline_echo.c"
"$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/load" bench/load.c -lm || die "cannot build bench/load.c"
LOAD=$BIN/load

# ---- machine --------------------------------------------------------------

NPROC=$(nproc)
CPU_MODEL=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
CPU_MODEL=${CPU_MODEL:-unknown}
KERNEL=$(uname -sr)
CLK_TCK=$(getconf CLK_TCK)
if ((NPROC >= 2)); then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    log "only $NPROC CPU: server and load generator are not pinned apart"
    PIN_SERVER=()
    PIN_LOAD=()
fi

# File descriptors for the idle workload: server and loader each need one per
# connection (plus a few).
HARD=$(ulimit -Hn)
WANT=30000
if [[ $HARD != unlimited ]] && ((HARD < WANT)); then WANT=$HARD; fi
ulimit -n "$WANT" 2>/dev/null || log "could not raise ulimit -n to $WANT"
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((IDLE_CONNS > NOFILE - 64)); then
    log "BENCH_IDLE_CONNS=$IDLE_CONNS exceeds ulimit -n $NOFILE; using $((NOFILE - 64))"
    IDLE_CONNS=$((NOFILE - 64))
fi

# ---- servers --------------------------------------------------------------

server_cmd() { # name port -> CMD
    case $1 in
    baseline) CMD=("$BIN/baseline_echo" "$2") ;;
    coronet) CMD=("$LUA" "$ROOT/examples/echo_server.lua" "$2") ;;
    luv) CMD=("$LUA" "$ROOT/bench/luv_echo.lua" "$2") ;;
    cqueues) CMD=("$LUA" "$ROOT/bench/cqueues_echo.lua" "$2") ;;
    node) CMD=("$NODE" "$ROOT/bench/node_echo.js" "$2") ;;
    *) return 1 ;;
    esac
}

server_available() { # name -> 0 if it can run here
    case $1 in
    baseline) [[ -x $BIN/baseline_echo ]] ;;
    coronet) command -v "$LUA" >/dev/null && [[ -f $ROOT/examples/echo_server.lua ]] ;;
    luv) "$LUA" -e 'require "luv"' >/dev/null 2>&1 ;;
    cqueues) "$LUA" -e 'require "cqueues"; require "cqueues.socket"' >/dev/null 2>&1 ;;
    node) command -v "$NODE" >/dev/null ;;
    *) return 1 ;;
    esac
}

proc_alive() { # pid: running (not gone, not a zombie)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z && ${s:0:1} != X ]]
}

proc_cpu_ticks() { # pid -> utime+stime in clock ticks
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[11] + f[12]))
}

proc_rss_kib() { # pid -> VmRSS in KiB
    awk '/^VmRSS:/{print $2; found=1} END{exit !found}' "/proc/$1/status" 2>/dev/null
}

PORT_NEXT=${BENCH_PORT:-$((20000 + RANDOM % 10000))}
port_listening() { # port: something already listens on 127.0.0.1/0.0.0.0:port
    local hex
    hex=$(printf '%04X' "$1")
    grep -qE "^ *[0-9]+: [0-9A-F]{8}:$hex [0-9A-F]{8}:0000 0A " /proc/net/tcp 2>/dev/null
}
next_port() {
    local i
    for ((i = 0; i < 1000; i++)); do
        PORT=$PORT_NEXT
        PORT_NEXT=$((PORT_NEXT >= 32000 ? 20000 : PORT_NEXT + 1))
        port_listening "$PORT" || return 0
    done
    return 1
}

wait_port() { # port pid: until the port accepts (10 s), or the server died
    local i
    for ((i = 0; i < 500; i++)); do
        proc_alive "$2" || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.02
    done
    return 1
}

SERVER_LOG=$TMP/server.log
start_server() { # name -> SPID, PORT
    local attempt
    for attempt in 1 2 3; do
        next_port || return 1
        server_cmd "$1" "$PORT"
        "${PIN_SERVER[@]}" "${CMD[@]}" >"$SERVER_LOG" 2>&1 </dev/null &
        SPID=$!
        if wait_port "$PORT" "$SPID"; then
            return 0
        fi
        log "$1 did not start on port $PORT (attempt $attempt): $(tail -n 3 "$SERVER_LOG" | tr '\n' ' ')"
        kill_wait "$SPID"
        SPID=""
    done
    return 1
}

stop_server() {
    kill_wait "$SPID"
    SPID=""
}

kv() { # "line" key -> value of key=value in line
    local tok
    for tok in $1; do
        if [[ $tok == "$2="* ]]; then
            echo "${tok#*=}"
            return 0
        fi
    done
    return 1
}

calc() { awk "BEGIN{ printf \"%.6f\", $1 }"; }

# ---- workloads ------------------------------------------------------------

WORKLOADS=(pp1 pp50 pipe bulk churn idle)
load_args() { # workload -> LARGS (after HOST PORT)
    case $1 in
    pp1) LARGS=(pingpong 127.0.0.1 "$PORT" 1 64 "$BENCH_SECONDS") ;;
    pp50) LARGS=(pingpong 127.0.0.1 "$PORT" 50 64 "$BENCH_SECONDS") ;;
    pipe) LARGS=(pipeline 127.0.0.1 "$PORT" 50 16 64 "$BENCH_SECONDS") ;;
    bulk) LARGS=(bulk 127.0.0.1 "$PORT" 65536 "$BENCH_SECONDS") ;;
    churn) LARGS=(churn 127.0.0.1 "$PORT" 20 64 "$BENCH_SECONDS") ;;
    idle) LARGS=(idle 127.0.0.1 "$PORT" "$IDLE_CONNS") ;;
    esac
}

# Metrics: key, workload, terminal label, markdown label, printf format.
METRICS=(
    "pp1_p50|pp1|ping-pong 64B x1: p50 latency (us)|ping-pong 64 B ×1: p50 latency (µs)|%.1f"
    "pp1_p99|pp1|ping-pong 64B x1: p99 latency (us)|ping-pong 64 B ×1: p99 latency (µs)|%.1f"
    "pp50_ops|pp50|ping-pong 64B x50: round trips/s|ping-pong 64 B ×50: round trips/s|%.0f"
    "pp50_cpu|pp50|ping-pong 64B x50: server CPU us/round trip|ping-pong 64 B ×50: server CPU µs/round trip|%.2f"
    "pipe_ops|pipe|pipelined 50x16 64B: msgs/s|pipelined 50×16, 64 B: msgs/s|%.0f"
    "pipe_cpu|pipe|pipelined 50x16 64B: server CPU us/msg|pipelined 50×16, 64 B: server CPU µs/msg|%.3f"
    "bulk_mbs|bulk|bulk 64KiB writes x1: MB/s echoed|bulk 64 KiB writes ×1: MB/s echoed|%.0f"
    "bulk_cpu|bulk|bulk 64KiB writes x1: server CPU us/MB|bulk 64 KiB writes ×1: server CPU µs/MB|%.0f"
    "churn_ops|churn|churn x20: connections/s|churn ×20: connections/s|%.0f"
    "churn_cpu|churn|churn x20: server CPU us/connection|churn ×20: server CPU µs/connection|%.1f"
    "churn_err|churn|churn x20: errors (sum of runs)|churn ×20: errors (sum of runs)|%.0f"
    "idle_rss|idle|idle x$IDLE_CONNS: server RSS KiB/connection|idle ×$IDLE_CONNS: server RSS KiB/connection|%.2f"
)

declare -A VALUES=()   # "server|metric" -> space separated per-run values
declare -A FAILED=()   # "server|workload" -> reason
declare -A AVAIL=()    # server -> 1

record() { VALUES["$1|$2"]="${VALUES["$1|$2"]:-} $3"; }

LOAD_OUT=$TMP/load.out
LOAD_ERR=$TMP/load.err

# Runs one timed workload against the running server; sets RESULT, CPU_S.
timed_load() { # workload
    local c0 c1 lrc=0 limit
    load_args "$1"
    limit=$(calc "$BENCH_SECONDS + 30")
    : >"$LOAD_OUT"
    c0=$(proc_cpu_ticks "$SPID") || { FAIL_REASON="server died"; return 1; }
    timeout -k 5 "$limit" "${PIN_LOAD[@]}" "$LOAD" "${LARGS[@]}" >"$LOAD_OUT" 2>>"$LOAD_ERR" &
    LPID=$!
    wait "$LPID" || lrc=$?
    c1=$(proc_cpu_ticks "$SPID") || c1=""
    LPID=""
    RESULT=$(grep -m1 '^result ' "$LOAD_OUT" || true)
    if ((lrc != 0)) || [[ -z $RESULT ]]; then
        FAIL_REASON="load generator exit $lrc"
        return 1
    fi
    if [[ -z $c1 ]] || ! proc_alive "$SPID"; then
        FAIL_REASON="server died"
        return 1
    fi
    CPU_S=$(calc "($c1 - $c0) / $CLK_TCK")
}

idle_load() { # sets RSS_PER_CONN
    local r0 r1 lrc=0 i ready n errs
    load_args idle
    r0=$(proc_rss_kib "$SPID") || { FAIL_REASON="no VmRSS"; return 1; }
    mkfifo "$TMP/idle.in"
    exec {IDLE_FD}<>"$TMP/idle.in"   # read-write: never blocks
    : >"$LOAD_OUT"
    # the loader must not inherit our write end, or it never sees EOF
    timeout -k 5 300 "${PIN_LOAD[@]}" "$LOAD" "${LARGS[@]}" <"$TMP/idle.in" >"$LOAD_OUT" 2>>"$LOAD_ERR" {IDLE_FD}>&- &
    LPID=$!
    ready=""
    for ((i = 0; i < 3000; i++)); do # 150 s
        ready=$(grep -m1 '^ready ' "$LOAD_OUT" || true)
        [[ -n $ready ]] && break
        proc_alive "$LPID" || break
        sleep 0.05
    done
    if [[ -n $ready ]] && proc_alive "$SPID"; then
        r1=$(proc_rss_kib "$SPID") || r1=""
    else
        r1=""
    fi
    exec {IDLE_FD}>&-
    IDLE_FD=""
    rm -f "$TMP/idle.in"
    wait "$LPID" || lrc=$?
    LPID=""
    RESULT=$(grep -m1 '^result ' "$LOAD_OUT" || true)
    if [[ -z $ready ]]; then
        FAIL_REASON="idle loader never became ready (exit $lrc)"
        return 1
    fi
    n=$(kv "$ready" conns)
    errs=$(kv "$ready" errors)
    if [[ -z $r1 ]] || ! proc_alive "$SPID"; then
        FAIL_REASON="server died"
        return 1
    fi
    if ((errs > 0 || n == 0)); then
        FAIL_REASON="$errs connection errors, $n held"
        return 1
    fi
    if ((lrc != 0)) || [[ -z $RESULT ]]; then
        FAIL_REASON="idle loader exit $lrc"
        return 1
    fi
    errs=$(kv "$RESULT" errors)
    if ((errs > 0)); then
        FAIL_REASON="$errs connections lost while held"
        return 1
    fi
    RSS_PER_CONN=$(calc "($r1 - $r0) / $n")
}

# One run of one workload against a fresh server. Records the metrics;
# returns 1 (with FAIL_REASON) when the run failed.
run_one() { # server workload
    local srv=$1 wl=$2 ops errs
    FAIL_REASON=""
    if ! start_server "$srv"; then
        FAIL_REASON="server did not start"
        return 1
    fi
    if [[ $wl == idle ]]; then
        if ! idle_load; then stop_server; return 1; fi
        stop_server
        record "$srv" idle_rss "$RSS_PER_CONN"
        PROGRESS="$(printf '%.2f' "$RSS_PER_CONN") KiB/conn"
        return 0
    fi
    if ! timed_load "$wl"; then stop_server; return 1; fi
    stop_server
    ops=$(kv "$RESULT" ops)
    errs=$(kv "$RESULT" errors)
    if [[ $wl != churn ]] && ((errs > 0)); then
        FAIL_REASON="$errs errors"
        return 1
    fi
    if ((ops == 0)); then
        FAIL_REASON="no operation completed ($errs errors)"
        return 1
    fi
    case $wl in
    pp1)
        record "$srv" pp1_p50 "$(kv "$RESULT" p50_us)"
        record "$srv" pp1_p99 "$(kv "$RESULT" p99_us)"
        PROGRESS="p50 $(kv "$RESULT" p50_us) us, p99 $(kv "$RESULT" p99_us) us"
        ;;
    pp50 | pipe | churn)
        record "$srv" "${wl}_ops" "$(kv "$RESULT" ops_per_s)"
        record "$srv" "${wl}_cpu" "$(calc "$CPU_S * 1000000 / $ops")"
        PROGRESS="$(kv "$RESULT" ops_per_s) ops/s, $(printf '%.2f' "$(calc "$CPU_S * 1000000 / $ops")") us CPU/op"
        if [[ $wl == churn ]]; then
            record "$srv" churn_err "$errs"
            PROGRESS+=", $errs errors"
        fi
        ;;
    bulk)
        local mb
        mb=$(calc "$(kv "$RESULT" bytes) / 1000000")
        record "$srv" bulk_mbs "$(kv "$RESULT" mb_per_s)"
        record "$srv" bulk_cpu "$(calc "$CPU_S * 1000000 / $mb")"
        PROGRESS="$(kv "$RESULT" mb_per_s) MB/s, $(printf '%.0f' "$(calc "$CPU_S * 1000000 / $mb")") us CPU/MB"
        ;;
    esac
    return 0
}

median() {
    printf '%s\n' "$@" | sort -g | awk 'BEGIN {OFMT = "%.6f"} {a[NR] = $1}
        END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
sum() { printf '%s\n' "$@" | awk '{s += $1} END {print s + 0}'; }

# shellcheck source=bench/real.sh
source "$ROOT/bench/real.sh"

# ---- run ------------------------------------------------------------------

T_START=$(date +%s)
if part_on echo; then
for s in "${SERVERS[@]}"; do
    if server_available "$s"; then
        AVAIL[$s]=1
    else
        log "$s: not available here, skipped (n/a)"
    fi
done
[[ -n ${AVAIL[baseline]:-} ]] || die "the baseline server is not available"

n_avail=${#AVAIL[@]}
n_timed=$(( ${#WORKLOADS[@]} - 1 ))
log "$n_avail servers x ${#WORKLOADS[@]} workloads x $RUNS runs, ${BENCH_SECONDS}s each" \
    "(about $(calc "$n_avail * $RUNS * ($n_timed * ($BENCH_SECONDS + 0.5) + 2)" | cut -d. -f1) s)"

# Workload-major, servers interleaved within a run, so that slow drift of the
# machine affects every server alike.
for wl in "${WORKLOADS[@]}"; do
    for ((run = 1; run <= RUNS; run++)); do
        for s in "${SERVERS[@]}"; do
            [[ -n ${AVAIL[$s]:-} ]] || continue
            [[ -z ${FAILED["$s|$wl"]:-} ]] || continue
            PROGRESS=""
            if run_one "$s" "$wl"; then
                log "$wl run $run/$RUNS $s: $PROGRESS"
            else
                FAILED["$s|$wl"]=$FAIL_REASON
                log "$wl run $run/$RUNS $s: FAIL ($FAIL_REASON)"
                if [[ -s $SERVER_LOG ]]; then
                    log "  server output: $(tail -n 5 "$SERVER_LOG" | tr '\n' ' ' | cut -c1-300)"
                fi
            fi
        done
    done
done
# ---- parallel server: net.run_server workers = 1 vs 2 ----------------------
# bench/workers_echo.lua with the CPU-heavy bench/hash_handler.lua (it hashes
# every request before echoing it), ping-pong 64 B x50. Neither side is
# pinned: the workers need every CPU. The server gets 1 s after its port
# answers, so that its worker threads listen before the clients connect (a
# client that arrives earlier queues on the calling state's listener).
declare -A WORKER_OPS=()
WORKERS_FAILED=""
workers_run() { # n: one timed run; appends round trips/s to WORKER_OPS[n]
    local n=$1 lrc=0
    next_port || return 1
    "$LUA" "$ROOT/bench/workers_echo.lua" "$PORT" "$n" >"$SERVER_LOG" 2>&1 </dev/null &
    SPID=$!
    if ! wait_port "$PORT" "$SPID"; then stop_server; return 1; fi
    sleep 1
    timeout -k 5 "$(calc "$BENCH_SECONDS + 30")" "$LOAD" pingpong 127.0.0.1 "$PORT" 50 64 "$BENCH_SECONDS" \
        >"$LOAD_OUT" 2>>"$LOAD_ERR" || lrc=$?
    stop_server
    RESULT=$(grep -m1 '^result ' "$LOAD_OUT" || true)
    ((lrc == 0)) && [[ -n $RESULT ]] && (($(kv "$RESULT" errors) == 0)) || return 1
    WORKER_OPS[$n]="${WORKER_OPS[$n]:-} $(kv "$RESULT" ops_per_s)"
}
if [[ -n ${AVAIL[coronet]:-} ]]; then
    for ((run = 1; run <= RUNS; run++)); do
        for n in 1 2; do
            if workers_run "$n"; then
                log "workers run $run/$RUNS workers=$n: $(kv "$RESULT" ops_per_s) round trips/s"
            else
                WORKERS_FAILED="workers=$n run $run failed"
                log "workers run $run/$RUNS workers=$n: FAIL"
            fi
        done
    done
fi
WORKERS_LINE="parallel server (net.run_server, CPU-heavy handler hashing every request, ping-pong 64 B x50): n/a"
if [[ -n ${WORKER_OPS[1]:-} && -n ${WORKER_OPS[2]:-} ]]; then
    # shellcheck disable=SC2086
    w1=$(median ${WORKER_OPS[1]})
    # shellcheck disable=SC2086
    w2=$(median ${WORKER_OPS[2]})
    WORKERS_LINE=$(printf 'parallel server (net.run_server, CPU-heavy handler hashing every request, ping-pong 64 B x50): workers=1 %.0f round trips/s, workers=2 %.0f round trips/s, ratio %.2fx' \
        "$w1" "$w2" "$(calc "$w2 / $w1")")
fi
[[ -z $WORKERS_FAILED ]] || WORKERS_LINE+=" ($WORKERS_FAILED)"
fi # echo part

if ((${#REAL_PARTS[@]})); then run_real_parts "${REAL_PARTS[@]}"; fi

T_END=$(date +%s)
HEADER="machine: $NPROC CPUs, $CPU_MODEL, $KERNEL"
SETTINGS="settings: ${BENCH_SECONDS}s per run, median of $RUNS runs, idle $IDLE_CONNS conns; server on CPU 0, load on CPU 1; took $((T_END - T_START)) s"
echo
echo "$HEADER"
echo "$SETTINGS"
mkdir -p "$(dirname "$OUT")"
{
    echo "# Benchmark"
    echo
    echo "- $HEADER"
    echo "- $SETTINGS"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
} >"$OUT"

# ---- table ----------------------------------------------------------------

if part_on echo; then

declare -A CELL=()
cell_value() { # server metric-key workload fmt -> VAL (number) or "" ; CELL text
    local srv=$1 key=$2 wl=$3 fmt=$4 vals v
    VAL=""
    if [[ -z ${AVAIL[$srv]:-} ]]; then
        CELL["$srv|$key"]="n/a"
        return
    fi
    if [[ -n ${FAILED["$srv|$wl"]:-} ]]; then
        CELL["$srv|$key"]="fail"
        return
    fi
    vals=${VALUES["$srv|$key"]:-}
    if [[ -z ${vals// /} ]]; then
        CELL["$srv|$key"]="fail"
        return
    fi
    # shellcheck disable=SC2086
    if [[ $key == churn_err ]]; then v=$(sum $vals); else v=$(median $vals); fi
    VAL=$v
    # shellcheck disable=SC2059  # the format comes from METRICS
    CELL["$srv|$key"]=$(printf "$fmt" "$v")
}

for m in "${METRICS[@]}"; do
    IFS='|' read -r key wl tlabel mlabel fmt <<<"$m"
    cell_value baseline "$key" "$wl" "$fmt"
    base=$VAL
    for s in "${SERVERS[@]}"; do
        [[ $s == baseline ]] && continue
        cell_value "$s" "$key" "$wl" "$fmt"
        if [[ -n $VAL && -n $base && $key != churn_err ]] &&
            awk -v b="$base" 'BEGIN{exit !(b != 0)}'; then
            CELL["$s|$key"]+=" ($(awk -v v="$VAL" -v b="$base" 'BEGIN{printf "%.2f", v / b}')x)"
        fi
    done
done

# terminal
w0=0
for m in "${METRICS[@]}"; do
    IFS='|' read -r key wl tlabel mlabel fmt <<<"$m"
    if ((${#tlabel} > w0)); then w0=${#tlabel}; fi
done
declare -A W=()
for s in "${SERVERS[@]}"; do
    W[$s]=${#s}
    for m in "${METRICS[@]}"; do
        key=${m%%|*}
        c=${CELL["$s|$key"]}
        if ((${#c} > W[$s])); then W[$s]=${#c}; fi
    done
done
{
    echo
    printf '%-*s' "$w0" "metric"
    for s in "${SERVERS[@]}"; do printf '  %*s' "${W[$s]}" "$s"; done
    echo
    printf '%-*s' "$w0" "" | tr ' ' '-'
    for s in "${SERVERS[@]}"; do printf '  %s' "$(printf '%*s' "${W[$s]}" "" | tr ' ' '-')"; done
    echo
    for m in "${METRICS[@]}"; do
        IFS='|' read -r key wl tlabel mlabel fmt <<<"$m"
        printf '%-*s' "$w0" "$tlabel"
        for s in "${SERVERS[@]}"; do printf '  %*s' "${W[$s]}" "${CELL["$s|$key"]}"; done
        echo
    done
    echo
    echo "ratios are to baseline: throughput higher is better; latency, CPU/op and RSS lower is better"
    echo "$WORKERS_LINE"
}

# markdown
{
    echo
    echo "## Echo servers"
    echo
    printf '| metric |'
    for s in "${SERVERS[@]}"; do printf ' %s |' "$s"; done
    echo
    printf '|---|'
    for s in "${SERVERS[@]}"; do printf '%s' '---:|'; done
    echo
    for m in "${METRICS[@]}"; do
        IFS='|' read -r key wl tlabel mlabel fmt <<<"$m"
        printf '| %s |' "$mlabel"
        for s in "${SERVERS[@]}"; do printf ' %s |' "${CELL["$s|$key"]}"; done
        echo
    done
    echo
    echo "Ratios are to baseline measured in the same run. Throughput (round trips/s, msgs/s, MB/s,"
    echo "connections/s): higher is better. Latency, server CPU per operation and RSS per connection:"
    echo "lower is better. \"fail\": the server crashed, refused, or echoed wrong bytes in that workload;"
    echo "\"n/a\": the server is not installed or not written yet."
    echo
    echo "- ${WORKERS_LINE/x50/×50}"
    if ((${#FAILED[@]})); then
        echo
        echo "Failures:"
        echo
        for k in "${!FAILED[@]}"; do echo "- ${k%%|*} / ${k#*|}: ${FAILED[$k]}"; done | sort
    fi
} >>"$OUT"
fi # echo part

# ---- table: real workloads --------------------------------------------------

REAL_STATUS=0
if ((${#REAL_PARTS[@]})); then
    real_table "${REAL_PARTS[@]}"
    REAL_HEAD="metric|anchor|anchor value|coronet|ratio|note"
    # terminal: aligned columns
    {
        echo
        printf '%s\n' "$REAL_HEAD" "${REAL_TABLE[@]}" | awk -F'|' '
            { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR }
            END { for (r = 1; r <= n; r++) {
                      line = sprintf("%-" w[1] "s", cell[r, 1])
                      for (i = 2; i <= 5; i++) line = line sprintf("  %" w[i] "s", cell[r, i])
                      print line "  " cell[r, 6]
                      if (r == 1) { s = ""; for (i = 1; i <= 6; i++) s = s sprintf("%" w[i] "s  ", ""); gsub(/ /, "-", s); print s }
                  } }'
        echo
        echo "ratio = coronet / anchor: for requests/s, ops/s and MB/s higher is better, for the rest lower is better;"
        echo "wall clock: median of $RUNS alternating pairs (range of the pair ratios in the note);"
        echo "instructions (callgrind) and system calls (strace): mean of two repeats of (count(2N) - count(N)) / N"
        real_failures
    }
    {
        echo
        echo "## Real workloads: coronet's examples against native servers"
        echo
        echo "| metric | anchor | anchor value | coronet | ratio | note |"
        echo "|---|---|---:|---:|---:|---|"
        for line in "${REAL_TABLE[@]}"; do echo "| ${line//|/ | } |"; done
        echo
        echo "Ratio = coronet / anchor, measured in the same run. Requests/s, ops/s and MB/s: higher is better;"
        echo "CPU per operation, user-space instructions per operation and system calls per operation: lower"
        echo "is better. Wall-clock figures: median of $RUNS runs, the two servers alternating, the ratio being the"
        echo "median of the per-run ratios (their range in the note). Instructions (callgrind) and system calls"
        echo "(strace -c -f): (count for 2N operations - count for N) / N, measured twice, mean shown (how far"
        echo "apart the two repeats were in the note). N = $EXACT_N (redis -P16: $((EXACT_N * 2))); the transfer:"
        echo "(two transfers - one) per MB."
        if ((${#RFAIL[@]})); then
            echo
            echo "Real-workload failures:"
            echo
            real_failures
        fi
    } >>"$OUT"
    ((${#RFAIL[@]} == 0)) || REAL_STATUS=3
fi
log "table written to $OUT"
exit "$REAL_STATUS"
