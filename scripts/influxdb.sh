#!/usr/bin/env bash
# A private InfluxDB 1.x for k6 samples.
#
#   scripts/influxdb.sh ensure-installed           install the Debian package when influxd is missing
#   scripts/influxdb.sh start <port> <data-dir>    start influxd on 127.0.0.1:<port> (no-op when it answers)
#   scripts/influxdb.sh stop <data-dir>            stop the influxd started with that data dir
#
# The HTTP API listens on <port>; the RPC/backup service on <port>+2, so instances
# started on ports at least 3 apart do not collide.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$SCRIPT_DIR/influxdb.conf.template"
START_TIMEOUT_SECONDS=15

say() { printf '==> %s\n' "$*"; }
die() { printf 'influxdb.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Whether something answers GET http://127.0.0.1:<port>/ping with 204 (InfluxDB's answer).
# Plain bash /dev/tcp rather than curl, so a bare machine needs nothing more.
is_up() {
  local port="$1" status_line
  status_line="$(timeout 2 bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
      head -n 1 <&3' _ "$port" 2>/dev/null)" || return 1
  [[ "$status_line" == HTTP/1.?" 204"* ]]
}

ensure_installed() {
  if command -v influxd >/dev/null; then
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "influxd is missing and installing it needs root (or sudo)"
    sudo=(sudo)
  fi
  say "installing influxdb (apt-get install influxdb)"
  "${sudo[@]}" apt-get update -qq
  # `env` so the variable survives sudo, which resets the environment.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb
  hash -r
  command -v influxd >/dev/null || die "influxd is still not on PATH after installing influxdb"
}

start() {
  local port="$1" data_dir="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -le 65533 ] \
    || die "port must be a number from 1 to 65533, got '$port'"

  if is_up "$port"; then
    say "InfluxDB already answers on 127.0.0.1:${port}"
    return 0
  fi
  command -v influxd >/dev/null \
    || die "influxd not found: run 'scripts/influxdb.sh ensure-installed' (or apt-get install -y influxdb)"

  mkdir -p "$data_dir"
  data_dir="$(cd "$data_dir" && pwd)"
  local config="$data_dir/influxdb.conf" log="$data_dir/influxd.log" pid_file="$data_dir/influxd.pid"

  sed -e "s|@PORT@|${port}|g" \
      -e "s|@RPC_PORT@|$((port + 2))|g" \
      -e "s|@DATA_DIR@|${data_dir}|g" \
      "$TEMPLATE" >"$config"

  say "starting influxd on 127.0.0.1:${port} (data in ${data_dir})"
  # setsid: the daemon must outlive this script and not get the caller's Ctrl-C.
  setsid influxd -config "$config" >"$log" 2>&1 </dev/null &
  echo $! >"$pid_file"

  local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
  until is_up "$port"; do
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      echo "influxd exited during startup; last lines of $log:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "influxd did not answer /ping within ${START_TIMEOUT_SECONDS}s; last lines of $log:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  say "InfluxDB is up on 127.0.0.1:${port} (pid $(cat "$pid_file"))"
}

stop() {
  local data_dir="$1" pid_file="$1/influxd.pid"
  if [ ! -f "$pid_file" ]; then
    say "no influxd.pid in ${data_dir}: nothing to stop"
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # Let it flush the WAL; force only if it hangs.
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "influxd (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
    say "stopped influxd (pid $pid)"
  else
    say "influxd (pid $pid) was not running"
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
  ensure-installed)
    [ $# -eq 1 ] || usage
    ensure_installed
    ;;
  start)
    [ $# -eq 3 ] || usage
    start "$2" "$3"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    stop "$2"
    ;;
  *)
    usage
    ;;
esac
