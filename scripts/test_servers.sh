#!/usr/bin/env bash
# Private Redis and MariaDB servers for tests and for trying a cluster by hand: each on a
# free loopback port, with its data, socket, pid and log under DIR, no system service, no
# file outside DIR. Stopped by pid.
#
#   scripts/test_servers.sh start redis DIR [PORT]    -> prints "PORT PID" once it answers PING
#   scripts/test_servers.sh start mariadb DIR [PORT]  -> prints "PORT PID" once `SELECT 1` works
#                                                        (user kgflow, password kgflow-test, any database)
#   scripts/test_servers.sh stop PID                  -> SIGTERM, waits for the pid to exit (SIGKILL after 20 s)
#   scripts/test_servers.sh up DIR / down DIR         -> both servers, listed in DIR/servers.env as
#                                                        "redis PORT PID" and "mariadb PORT PID" lines
#                                                        (the ctest fixture of the contract suites)
#
# A restart keeps the data: `start` again with the same DIR and PORT (MariaDB's datadir is only
# initialised when empty). Redis runs with persistence off (--save '' --appendonly no) unless
# KG_TEST_REDIS_AOF=1 (then appendonly yes, appendfsync always), which the restart tests use.
# KG_TEST_MARIADB_ARGS: extra mariadbd options, split on white space (for tests only, e.g.
# --transaction-isolation=READ-COMMITTED to check the code does not rely on the default).
set -euo pipefail

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_until() {  # wait_until SECONDS PID COMMAND...: until COMMAND succeeds, while PID lives
  local deadline=$((SECONDS + $1)) pid=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.05
  done
}

start_redis() {
  local dir=$1 port=${2:-$(free_port)}
  mkdir -p "$dir"
  local persist=(--save '' --appendonly no)
  if [ "${KG_TEST_REDIS_AOF:-0}" = 1 ]; then persist=(--save '' --appendonly yes --appendfsync always); fi
  redis-server --port "$port" --bind 127.0.0.1 "${persist[@]}" --dir "$dir" --daemonize no \
    --logfile "$dir/redis.log" --maxmemory-policy noeviction --protected-mode yes </dev/null >/dev/null 2>&1 &
  local pid=$!
  if ! wait_until 20 "$pid" bash -c "[ \"\$(redis-cli -h 127.0.0.1 -p $port ping)\" = PONG ]"; then
    echo "redis-server did not start on port $port (log: $dir/redis.log)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    exit 1
  fi
  echo "$port $pid"
}

start_mariadb() {
  local dir=$1 port=${2:-$(free_port)}
  mkdir -p "$dir"
  local fresh=0 extra=()
  read -r -a extra <<<"${KG_TEST_MARIADB_ARGS:-}"
  if [ ! -d "$dir/data/mysql" ]; then
    fresh=1
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || { echo "mariadb-install-db failed (log: $dir/install.log)" >&2; exit 1; }
  fi
  mariadbd --no-defaults --user=root --datadir="$dir/data" --socket="$dir/mysqld.sock" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_bin --skip-name-resolve \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --max-connections=500 \
    --innodb-flush-log-at-trx-commit=2 "${extra[@]}" </dev/null >/dev/null 2>&1 &
  local pid=$!
  if [ $fresh = 1 ]; then
    if ! wait_until 60 "$pid" mariadb --no-defaults -uroot --socket="$dir/mysqld.sock" -e 'SELECT 1'; then
      echo "mariadbd did not start on port $port (log: $dir/error.log)" >&2
      kill -TERM "$pid" 2>/dev/null || true
      exit 1
    fi
    mariadb --no-defaults -uroot --socket="$dir/mysqld.sock" <<'SQL'
DELETE FROM mysql.global_priv WHERE User = '';
CREATE USER 'kgflow'@'127.0.0.1' IDENTIFIED BY 'kgflow-test';
GRANT ALL PRIVILEGES ON *.* TO 'kgflow'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
  fi
  if ! wait_until 60 "$pid" mariadb --no-defaults -h127.0.0.1 -P"$port" -ukgflow -pkgflow-test -e 'SELECT 1'; then
    echo "mariadbd did not answer on port $port (log: $dir/error.log)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    exit 1
  fi
  echo "$port $pid"
}

stop_pid() {
  local pid=$1 deadline=$((SECONDS + 20))
  kill -TERM "$pid" 2>/dev/null || exit 0
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.05
  done
}

case "${1:-}" in
  start)
    case "${2:-}" in
      redis) start_redis "${3:?DIR}" "${4:-}" ;;
      mariadb) start_mariadb "${3:?DIR}" "${4:-}" ;;
      *) echo "usage: $0 start redis|mariadb DIR [PORT]" >&2; exit 2 ;;
    esac ;;
  stop) stop_pid "${2:?PID}" ;;
  up)
    dir=${2:?DIR}
    rm -rf "$dir"
    mkdir -p "$dir"
    r=$(start_redis "$dir/redis")
    m=$(start_mariadb "$dir/mariadb")
    printf 'redis %s\nmariadb %s\n' "$r" "$m" >"$dir/servers.env" ;;
  down)
    # A server that died during the run fails this step and shows the end of its log (the tests
    # that used it then fell back to private servers, or failed).
    dir=${2:?DIR}
    died=0
    if [ -f "$dir/servers.env" ]; then
      while read -r kind _ pid; do
        if ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
          died=1
          echo "$kind (pid $pid) died during the run; end of its log:" >&2
          tail -n 40 "$dir/$kind/error.log" "$dir/$kind/redis.log" 2>/dev/null >&2 || true
        fi
        (stop_pid "$pid")
      done <"$dir/servers.env"
    fi
    rm -rf "$dir"
    exit $died ;;
  *) echo "usage: $0 start redis|mariadb DIR [PORT] | stop PID | up DIR | down DIR" >&2; exit 2 ;;
esac
