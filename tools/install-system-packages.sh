#!/usr/bin/env bash
# Make sure the system packages the lab and the quality gates need are present:
#   PostgreSQL >= 15 server binaries (initdb, pg_ctl, pg_basebackup, pg_rewind)
#     and its contrib extensions (pg_stat_statements, amcheck)
#   PgBouncer >= 1.18
#   pgBackRest (the lab's backups and the data integrity runbook's point-in-time restores)
#   python3 with venv support, make, shellcheck (for ansible-test sanity)
#   for the `hosts` lab topology (make lab-up LAB=hosts): iproute2 (ip netns),
#     openssh-server (one sshd per lab host), sudo (the ops user's become),
#     python3-psycopg2 (the lab hosts' Python for modules run over SSH)
#   a Java 17+ runtime (ansible-rulebook's Drools engine, for the EDA rulebook tests)
#   the alert pipeline of the lab (make lab-up LAB_ALERTS=1, the live EDA test):
#     prometheus, prometheus-alertmanager, prometheus-postgres-exporter; the lab
#     runs its own instances, their system services are kept from starting
#
# Quiet and exit 0 when everything is there. Otherwise, as root on Debian/Ubuntu,
# install the missing packages with apt-get, non-interactively; as anyone else,
# print exactly what to install and exit 1.
#
# The Debian packages start a `main` PostgreSQL cluster and a PgBouncer service
# when they are installed. The lab runs its own servers, so this script keeps the
# packages from starting anything (a temporary policy-rc.d, Debian's documented
# switch for maintainer scripts) and, should something start anyway, stops the
# processes that were not running before, found by their PID files.
set -euo pipefail

readonly PG_MIN_MAJOR=15
readonly PGBOUNCER_MIN=1.18
readonly PID_FILE_GLOBS=(/var/run/postgresql/*.pid /var/lib/postgresql/*/*/postmaster.pid)

say() { printf 'install-system-packages: %s\n' "$*" >&2; }

# version_at_least A B: true when dotted version A >= B.
version_at_least() {
    [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]
}

# Print the newest /usr/lib/postgresql/<major>/bin with everything the lab needs.
postgres_bin_dir() {
    local dir major share found=""
    for dir in /usr/lib/postgresql/*/bin; do
        major=$(basename "$(dirname "$dir")")
        if ! [[ $major =~ ^[0-9]+$ ]] || ((major < PG_MIN_MAJOR)); then
            continue
        fi
        [[ -x $dir/postgres && -x $dir/initdb && -x $dir/pg_ctl && -x $dir/pg_basebackup && -x $dir/pg_rewind ]] || continue
        share=/usr/share/postgresql/$major/extension
        [[ -f $share/pg_stat_statements.control && -f $share/amcheck.control ]] || continue
        found=$dir
    done
    [[ -n $found ]] && printf '%s\n' "$found"
}

pgbouncer_ok() {
    local binary version
    binary=$(PATH=$PATH:/usr/sbin:/sbin command -v pgbouncer) || return 1
    version=$("$binary" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p' | head -n1)
    [[ -n $version ]] && version_at_least "$version" "$PGBOUNCER_MIN"
}

python_venv_ok() {
    command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null
}

# ansible-rulebook runs its rules in Drools through jpy: a JVM of version 17 or later.
java_ok() {
    local version
    command -v java >/dev/null || return 1
    version=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    [[ -n $version ]] && ((version >= 17))
}

missing_packages() {
    local missing=()
    postgres_bin_dir >/dev/null || missing+=(postgresql postgresql-contrib)
    pgbouncer_ok || missing+=(pgbouncer)
    command -v pgbackrest >/dev/null || missing+=(pgbackrest)
    python_venv_ok || missing+=(python3 python3-venv)
    command -v make >/dev/null || missing+=(make)
    command -v shellcheck >/dev/null || missing+=(shellcheck)
    # ip: the hosts lab's namespaces; ss -K: the security breach runbook drops one PgBouncer 1.18
    # client by its TCP connection. Both come with iproute2.
    { PATH=$PATH:/usr/sbin:/sbin command -v ip && command -v ss; } >/dev/null || missing+=(iproute2)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v sudo >/dev/null || missing+=(sudo)
    /usr/bin/python3 -c 'import psycopg2' 2>/dev/null || missing+=(python3-psycopg2)
    java_ok || missing+=(default-jre-headless)
    [[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
    [[ -x /usr/bin/prometheus-alertmanager ]] || missing+=(prometheus-alertmanager)
    [[ -x /usr/bin/prometheus-postgres-exporter ]] || missing+=(prometheus-postgres-exporter)
    if ((${#missing[@]})); then
        printf '%s\n' "${missing[@]}"
    fi
}

# PIDs (one a line) of live postgres/pgbouncer processes named in the usual PID files.
service_pids() {
    local file pid state comm
    for file in "${PID_FILE_GLOBS[@]}"; do
        [[ -f $file ]] || continue
        pid=$(head -n1 "$file" 2>/dev/null | tr -dc '0-9')
        [[ -n $pid && -r /proc/$pid/stat ]] || continue
        # A killed process that nobody reaped still has a PID: only count live ones.
        state=$(sed 's/^.*) \([A-Za-z]\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || continue
        [[ $state != Z && $state != X ]] || continue
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        [[ $comm == postgres || $comm == pgbouncer ]] || continue
        printf '%s\n' "$pid"
    done | sort -u
}

process_alive() {
    local state
    state=$(sed 's/^.*) \([A-Za-z]\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

# Stop the given PIDs: fast shutdown for a postmaster (SIGINT), SIGTERM for pgbouncer.
stop_pids() {
    local pid comm waited
    for pid in "$@"; do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        say "stopping $comm (pid $pid) started by the package installation"
        if [[ $comm == postgres ]]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
    done
    for pid in "$@"; do
        waited=0
        while process_alive "$pid" && ((waited < 300)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if process_alive "$pid"; then
            say "process $pid did not stop within 30 s"
            return 1
        fi
    done
}

install_packages() {
    local packages=("$@") policy=/usr/sbin/policy-rc.d own_policy=false
    local before after new_pids=()

    mapfile -t before < <(service_pids)

    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from install-system-packages.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=true
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi

    say "installing: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${packages[@]}" </dev/null >/dev/null

    if $own_policy; then
        rm -f "$policy"
        trap - EXIT
    fi

    mapfile -t after < <(service_pids)
    local pid
    for pid in "${after[@]}"; do
        [[ " ${before[*]} " == *" $pid "* ]] || new_pids+=("$pid")
    done
    if ((${#new_pids[@]})); then
        stop_pids "${new_pids[@]}"
    fi
}

main() {
    local missing
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]})) || exit 0

    if [[ $(id -u) -ne 0 ]]; then
        say "missing system packages; as root run:"
        printf '  apt-get update && apt-get install -y %s\n' "${missing[*]}" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        say "missing system packages and no apt-get here; install the equivalents of: ${missing[*]}"
        exit 1
    fi

    install_packages "${missing[@]}"

    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]})); then
        say "still missing after installation: ${missing[*]}"
        say "needed: PostgreSQL >= $PG_MIN_MAJOR with contrib, PgBouncer >= $PGBOUNCER_MIN"
        exit 1
    fi
}

main "$@"
