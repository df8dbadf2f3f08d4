#!/usr/bin/env bash
# Run the local ClickHouse server (Debian's clickhouse-server package) for
# callguard's tests and demo. No init system is needed: the server runs as a
# daemon under the `clickhouse` user with a pid file.
#
#   scripts/clickhouse-server.sh ensure   install if missing, start if not answering, wait
#   scripts/clickhouse-server.sh start    start if not answering, wait (no install)
#   scripts/clickhouse-server.sh stop     stop the server this script started, wait
#   scripts/clickhouse-server.sh status   exit 0 if `SELECT 1` answers on port 9000
#   scripts/clickhouse-server.sh users    write the writer/reader users for old servers
#   scripts/clickhouse-server.sh purge    delete a stopped private instance's data and logs
#
# `users` is for servers without SQL users (18.x): it reads
# CALLGUARD_WRITER_PASSWORD and CALLGUARD_READER_PASSWORD, the names
# `callguard db migrate` reads (CALLGUARD_CH_WRITER_PASSWORD and
# CALLGUARD_CH_READER_PASSWORD still work), and optionally
# CALLGUARD_CH_DATABASE, default "callguard", from the environment, never from
# arguments, and writes /etc/clickhouse-server/users.d/callguard.xml with
# SHA-256 password hashes. The server reloads users files by itself.
#
# Every command is idempotent. Settings (environment):
#   CLICKHOUSE_HOST (127.0.0.1), CLICKHOUSE_PORT (9000), CLICKHOUSE_WAIT_S (60)
#   CLICKHOUSE_INSTANCE   a name: run a second, private server with its own
#                         data (/var/lib/clickhouse-NAME), logs and pid file,
#                         on CLICKHOUSE_PORT (required, not 9000), HTTP on
#                         CLICKHOUSE_HTTP_PORT (PORT+1) and interserver on
#                         PORT+2. Tests that stop a server use one, so the
#                         shared server on 9000 is never interrupted.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

die() { echo "clickhouse-server.sh: $*" >&2; exit 1; }
say() { echo "clickhouse-server.sh${INSTANCE:+ [$INSTANCE]}: $*" >&2; }

CONFIG=/etc/clickhouse-server/config.xml
USERS_DIR=/etc/clickhouse-server/users.d
RUN_DIR=/var/run/clickhouse-server
HOST=${CLICKHOUSE_HOST:-127.0.0.1}
WAIT_S=${CLICKHOUSE_WAIT_S:-60}
INSTANCE=${CLICKHOUSE_INSTANCE:-}
OVERRIDES=()
if [ -z "$INSTANCE" ]; then
    PORT=${CLICKHOUSE_PORT:-9000}
    LOG_DIR=/var/log/clickhouse-server
    DATA_DIR=/var/lib/clickhouse
    PID_FILE=$RUN_DIR/clickhouse-server.pid
else
    [[ "$INSTANCE" =~ ^[a-z0-9_-]+$ ]] || die "CLICKHOUSE_INSTANCE must be lowercase letters, digits, _ or -"
    PORT=${CLICKHOUSE_PORT:?set CLICKHOUSE_PORT for instance $INSTANCE}
    [ "$PORT" != 9000 ] || die "instance $INSTANCE needs its own CLICKHOUSE_PORT, not 9000"
    HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-$((PORT + 1))}
    LOG_DIR=/var/log/clickhouse-server-$INSTANCE
    DATA_DIR=/var/lib/clickhouse-$INSTANCE
    PID_FILE=$RUN_DIR/clickhouse-server-$INSTANCE.pid
    # The packaged config, with ports and every path moved (server options after --).
    OVERRIDES=(-- "--tcp_port=$PORT" "--http_port=$HTTP_PORT"
        "--interserver_http_port=$((PORT + 2))" "--path=$DATA_DIR/"
        "--tmp_path=$DATA_DIR/tmp/" "--user_files_path=$DATA_DIR/user_files/"
        "--format_schema_path=$DATA_DIR/format_schemas/"
        "--logger.log=$LOG_DIR/clickhouse-server.log"
        "--logger.errorlog=$LOG_DIR/clickhouse-server.err.log")
fi

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (run with sudo, or as root as CI does)"
}

answering() {
    command -v clickhouse-client >/dev/null 2>&1 || return 1
    clickhouse-client --host "$HOST" --port "$PORT" --user default \
        --query 'SELECT 1' >/dev/null 2>&1
}

install_if_missing() {
    if command -v clickhouse-server >/dev/null 2>&1 && command -v clickhouse-client >/dev/null 2>&1; then
        return 0
    fi
    need_root "installing clickhouse-server"
    say "installing Debian's clickhouse-server and clickhouse-client"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >/dev/null
}

pid_alive() {
    [ -s "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

server_alive() {
    # The daemon writes its pid file a while after it forks (longer on a loaded
    # machine): until then, find it by the pid file its arguments name.
    pid_alive || pgrep -f -- "--pid-file=$PID_FILE" >/dev/null 2>&1
}

errors_since() {
    # Lines the error log gained after line $1 (the log is appended to across starts).
    tail -n "+$(($1 + 1))" "$LOG_DIR/clickhouse-server.err.log" 2>/dev/null
}

wait_ready() {
    local deadline=$((SECONDS + WAIT_S)) log_from=${1:-0} busy
    until answering; do
        # A port taken by another process: the server logs it and lingers
        # without listening; say so now instead of after the whole wait.
        # (|| true: no match is the normal case, and the script runs with pipefail)
        busy=$(errors_since "$log_from" | grep -o 'Address already in use: [0-9.:]*' \
            | head -n 1 || true)
        if [ -n "$busy" ]; then
            if pid_alive; then
                kill "$(cat "$PID_FILE")" 2>/dev/null
                local gone=$((SECONDS + 15))
                while pid_alive && [ "$SECONDS" -lt "$gone" ]; do sleep 0.1; done
            fi
            die "$busy (choose other ports with CLICKHOUSE_PORT; HTTP uses the next one, interserver the one after)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "no answer to SELECT 1 on $HOST:$PORT after ${WAIT_S}s; see $LOG_DIR/ (clickhouse-server.err.log, stderr.log)"
        fi
        if ! server_alive; then
            die "the server exited while starting; see $LOG_DIR/ (clickhouse-server.err.log, stderr.log)"
        fi
        sleep 0.1
    done
}

start() {
    if answering; then
        say "already answering on $HOST:$PORT"
        return 0
    fi
    command -v clickhouse-server >/dev/null 2>&1 || die "clickhouse-server is not installed (run: $0 ensure)"
    need_root "starting clickhouse-server"
    # /var/run is a tmpfs on most machines: the pid directory may be gone.
    install -d -o clickhouse -g clickhouse "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"
    local log_from
    log_from=$(wc -l 2>/dev/null <"$LOG_DIR/clickhouse-server.err.log" || echo 0)
    if pid_alive; then
        say "process $(cat "$PID_FILE") is starting; waiting for it"
    else
        rm -f "$PID_FILE"
        # The packaged config listens on 127.0.0.1 and ::1 (either may be
        # missing) and its users.xml lets `default` in without a password.
        (cd "$DATA_DIR" && runuser -u clickhouse -- "$(command -v clickhouse-server)" \
            --config-file="$CONFIG" --pid-file="$PID_FILE" --daemon "${OVERRIDES[@]}")
    fi
    wait_ready "$log_from"
    say "ready on $HOST:$PORT ($(clickhouse-client --host "$HOST" --port "$PORT" --query 'SELECT version()'))"
}

stop() {
    if ! pid_alive; then
        rm -f "$PID_FILE" 2>/dev/null || true
        if answering; then
            die "a server answers on $HOST:$PORT but was not started by this script (no $PID_FILE)"
        fi
        say "not running"
        return 0
    fi
    need_root "stopping clickhouse-server"
    local pid deadline
    pid=$(cat "$PID_FILE")
    kill -TERM "$pid"
    deadline=$((SECONDS + WAIT_S))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "process $pid still running after ${WAIT_S}s"
        sleep 0.1
    done
    rm -f "$PID_FILE"
    say "stopped"
}

purge() {
    [ -n "$INSTANCE" ] || die "purge is for private instances (CLICKHOUSE_INSTANCE) only"
    ! pid_alive || die "instance $INSTANCE is running: stop it first"
    need_root "deleting $DATA_DIR"
    rm -rf -- "$DATA_DIR" "$LOG_DIR"
    rm -f -- "$PID_FILE"
    say "purged $DATA_DIR and $LOG_DIR"
}

sha256_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

users() {
    need_root "writing $USERS_DIR/callguard.xml"
    local database=${CALLGUARD_CH_DATABASE:-callguard}
    [[ "$database" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CALLGUARD_CH_DATABASE is not a plain identifier"
    local writer_password=${CALLGUARD_WRITER_PASSWORD:-${CALLGUARD_CH_WRITER_PASSWORD:-}}
    local reader_password=${CALLGUARD_READER_PASSWORD:-${CALLGUARD_CH_READER_PASSWORD:-}}
    [ -n "$writer_password" ] || die "set CALLGUARD_WRITER_PASSWORD"
    [ -n "$reader_password" ] || die "set CALLGUARD_READER_PASSWORD"
    local writer_hash reader_hash tmp
    writer_hash=$(sha256_of "$writer_password")
    reader_hash=$(sha256_of "$reader_password")
    install -d -m 0755 "$USERS_DIR"
    tmp=$(mktemp "$USERS_DIR/.callguard.XXXXXX")
    # 18.x has no per-statement grants: the writer cannot run DDL
    # (allow_ddl=0) but can read its database; the reader is read-only.
    cat >"$tmp" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <callguard_writer><allow_ddl>0</allow_ddl></callguard_writer>
        <callguard_reader><readonly>2</readonly><allow_ddl>0</allow_ddl></callguard_reader>
    </profiles>
    <users>
        <callguard_writer>
            <password_sha256_hex>$writer_hash</password_sha256_hex>
            <networks><ip>::/0</ip></networks>
            <profile>callguard_writer</profile>
            <quota>default</quota>
            <allow_databases><database>$database</database></allow_databases>
        </callguard_writer>
        <callguard_reader>
            <password_sha256_hex>$reader_hash</password_sha256_hex>
            <networks><ip>::/0</ip></networks>
            <profile>callguard_reader</profile>
            <quota>default</quota>
            <allow_databases><database>$database</database></allow_databases>
        </callguard_reader>
    </users>
</yandex>
EOF
    chmod 0640 "$tmp"
    chgrp clickhouse "$tmp" 2>/dev/null || true
    mv -f "$tmp" "$USERS_DIR/callguard.xml"
    say "wrote $USERS_DIR/callguard.xml (users callguard_writer, callguard_reader on $database)"
}

case "${1:-}" in
    ensure) install_if_missing; start ;;
    start) start ;;
    stop) stop ;;
    status)
        if answering; then echo "running ($HOST:$PORT)"; else echo "not running"; exit 3; fi ;;
    users) users ;;
    purge) purge ;;
    *) echo "usage: $0 {ensure|start|stop|status|users|purge}" >&2; exit 2 ;;
esac
