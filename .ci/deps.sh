# shellcheck shell=bash
# .ci/deps.sh: shared by .ci/run, .ci/test and .ci/demo (source it; it runs nothing).
#
#   ci_section TITLE    prints a section header
#   ci_install_deps     installs the Debian 12 packages the build and tests need,
#                       if any is missing: as root with apt-get, otherwise through
#                       sudo when there is one; does nothing when all are present.

# lua-socket: the raw peer of spec/hostile_peers_spec.lua; bc: the child process of
# examples/child_process.lua and the process specs; libclang-rt-14-dev: libFuzzer
# (only recommended by clang-14, so named here for installs without recommends).
# luarocks: .ci/rock; lua-ldoc (and lua-markdown, its markdown formatter): .ci/docs and
# spec/docs_spec.lua. curl, netcat-openbsd, nginx-light, redis-server (for
# redis-benchmark) and redis-tools (redis-cli): the real clients and servers of the
# metrics, connection and example specs. libssl-dev: the TLS engine; openssl: the
# test certificates (spec/tls/make_certs.sh) and the s_client/s_server peers.
# wrk, libnginx-mod-stream (nginx's TCP proxy) and strace: the HTTP, Redis and
# proxy rows of the benchmark smoke (bench/real.sh).
CI_DEPS=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libuv1-dev lua-busted lua-socket
         clang libclang-rt-14-dev valgrind bc luarocks lua-ldoc lua-markdown curl netcat-openbsd
         nginx-light redis-server redis-tools libssl-dev openssl wrk libnginx-mod-stream strace)

ci_section() {
    printf '\n==== %s ==== (%s)\n' "$*" "$(date '+%H:%M:%S')"
}

# The packages of CI_DEPS that dpkg does not list as installed, one per line.
ci_missing_deps() {
    local pkg
    for pkg in "${CI_DEPS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -qx 'install ok installed' || echo "$pkg"
    done
}

ci_install_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "deps: no dpkg here; assuming the tools are installed: ${CI_DEPS[*]}"
        return 0
    fi
    local -a missing sudo=()
    mapfile -t missing < <(ci_missing_deps)
    if ((${#missing[@]} == 0)); then
        echo "deps: all present (${CI_DEPS[*]})"
        return 0
    fi
    echo "deps: missing: ${missing[*]}"
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "deps: not root and no sudo: install these first: ${missing[*]}" >&2
            return 1
        fi
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${CI_DEPS[@]}"
}
