#!/usr/bin/env bash
# Private Redis, MariaDB and Neo4j servers for tests and for trying a cluster by hand: each on
# a free loopback port, with its data, socket, pid and log under DIR, no system service, no
# file outside DIR (Neo4j's jars excepted: they are in ~/.m2). Stopped by pid.
#
#   scripts/test_servers.sh start redis DIR [PORT]    -> prints "PORT PID" once it answers PING
#   scripts/test_servers.sh start mariadb DIR [PORT]  -> prints "PORT PID" once `SELECT 1` works
#                                                        (user kgflow, password kgflow-test, any database)
#   scripts/test_servers.sh start neo4j DIR [PORT]    -> prints "PORT PID" once Bolt answers and the
#                                                        log says Started (Bolt on PORT, user neo4j,
#                                                        password kgflow-test, auth on)
#   scripts/test_servers.sh stop PID                  -> SIGTERM, waits for the pid to exit (SIGKILL after 20 s)
#   scripts/test_servers.sh up DIR / down DIR         -> all three, listed in DIR/servers.env as
#                                                        "redis PORT PID", "mariadb PORT PID" and
#                                                        "neo4j PORT PID" lines (the ctest fixture of
#                                                        the contract suites)
#
# A restart keeps the data: `start` again with the same DIR and PORT (MariaDB's datadir is only
# initialised when empty). Redis runs with persistence off (--save '' --appendonly no) unless
# KG_TEST_REDIS_AOF=1 (then appendonly yes, appendfsync always), which the restart tests use.
# KG_TEST_MARIADB_ARGS: extra mariadbd options, split on white space (for tests only, e.g.
# --transaction-isolation=READ-COMMITTED to check the code does not rely on the default).
# KG_TEST_NEO4J_AUTH=0: Neo4j with authentication off. KG_TEST_NEO4J_HEAP: its -Xmx (512m).
# KG_TEST_NEO4J_CONF: extra neo4j.conf lines, separated by ';' (e.g. dbms.routing_ttl=2s).
#
# Neo4j 5.26 Community comes from Maven Central (scripts/neo4j/pom.xml; resolved once into ~/.m2,
# ~125 MB, and the classpath cached in ~/.cache/kgflow) and runs on Debian's Java 17 with
# org.neo4j.server.CommunityEntryPoint, the class the tarball's `bin/neo4j console` runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
neo4j_password=kgflow-test

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
    # Once more after a failure (seen once, in a run whose log was gone with its directory): the
    # end of each failed attempt's log goes to stderr, so the test log keeps the cause.
    local attempt
    for attempt in 1 2; do
      if mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
        --skip-test-db >"$dir/install.log" 2>&1; then
        break
      fi
      echo "mariadb-install-db failed (attempt $attempt; log: $dir/install.log), its end:" >&2
      tail -n 20 "$dir/install.log" >&2
      rm -rf "$dir/data"
      [ "$attempt" = 2 ] && exit 1
    done
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

# The classpath of the Neo4j server (resolved by Maven once, then read from the cache).
neo4j_classpath() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/kgflow
  local cp="$cache/neo4j-$(sha256sum "$here/neo4j/pom.xml" | cut -c1-16).classpath"
  if [ ! -s "$cp" ]; then
    mkdir -p "$cache"
    if ! mvn -B -q -f "$here/neo4j/pom.xml" dependency:build-classpath -Dmdep.outputFile="$cp.tmp" >"$cache/mvn.log" 2>&1; then
      echo "could not resolve Neo4j from Maven Central (log: $cache/mvn.log)" >&2
      tail -n 20 "$cache/mvn.log" >&2
      return 1
    fi
    mv "$cp.tmp" "$cp"
  fi
  cat "$cp"
}

bolt_answers() {  # bolt_answers PORT: a Bolt handshake offering 5.4..5.0 gets a version back
  python3 - "$1" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(bytes.fromhex("6060b017" "00040405" "00000000" "00000000" "00000000"))
reply = s.recv(4)
sys.exit(0 if len(reply) == 4 and reply != b"\0\0\0\0" and reply[3] == 5 else 1)
PYEOF
}

start_neo4j() {
  local dir=$1 port=${2:-$(free_port)}
  mkdir -p "$dir/conf" "$dir/logs"
  local cp
  cp=$(neo4j_classpath) || exit 1
  local auth=true
  [ "${KG_TEST_NEO4J_AUTH:-1}" = 0 ] && auth=false
  cat >"$dir/conf/neo4j.conf" <<EOF
server.default_listen_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$port
server.bolt.tls_level=DISABLED
server.http.enabled=false
server.https.enabled=false
dbms.security.auth_enabled=$auth
dbms.usage_report.enabled=false
server.memory.pagecache.size=64m
db.tx_log.preallocate=false
server.directories.data=$dir/data
server.directories.logs=$dir/logs
server.directories.run=$dir/run
server.directories.plugins=$dir/plugins
server.directories.import=$dir/import
internal.dbms.bolt.netty_server_shutdown_quiet_period=0
internal.dbms.bolt.netty_server_shutdown_timeout=5s
EOF
  if [ -n "${KG_TEST_NEO4J_CONF:-}" ]; then
    tr ';' '\n' <<<"$KG_TEST_NEO4J_CONF" >>"$dir/conf/neo4j.conf"
  fi
  local jvm=(-Xmx"${KG_TEST_NEO4J_HEAP:-512m}" -XX:TieredStopAtLevel=1 -Dfile.encoding=UTF-8
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Dio.netty.tryReflectionSetAccessible=true)
  if [ ! -d "$dir/data/databases" ]; then
    NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf" java "${jvm[@]}" -cp "$cp" org.neo4j.cli.AdminTool \
      dbms set-initial-password "$neo4j_password" >"$dir/logs/password.log" 2>&1 ||
      { echo "neo4j: set-initial-password failed (log: $dir/logs/password.log)" >&2; exit 1; }
  fi
  local started_before
  started_before=$(grep -c ' Started\.' "$dir/logs/neo4j.log" 2>/dev/null || true)
  NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf" java "${jvm[@]}" -cp "$cp" org.neo4j.server.CommunityEntryPoint \
    --home-dir="$dir" --config-dir="$dir/conf" </dev/null >>"$dir/logs/neo4j.log" 2>&1 &
  local pid=$!
  if ! wait_until 120 "$pid" bash -c "[ \$(grep -c ' Started\.' '$dir/logs/neo4j.log' 2>/dev/null || true) -gt ${started_before:-0} ] && '$0' bolt-answers $port"; then
    echo "neo4j did not start on port $port (log: $dir/logs/neo4j.log)" >&2
    tail -n 30 "$dir/logs/neo4j.log" >&2 || true
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
      neo4j) start_neo4j "${3:?DIR}" "${4:-}" ;;
      *) echo "usage: $0 start redis|mariadb|neo4j DIR [PORT]" >&2; exit 2 ;;
    esac ;;
  stop) stop_pid "${2:?PID}" ;;
  bolt-answers) bolt_answers "${2:?PORT}" ;;
  up)
    dir=${2:?DIR}
    rm -rf "$dir"
    mkdir -p "$dir"
    # A server that fails to start stops those started before it (no server outlives a failed up).
    r=$(start_redis "$dir/redis") || exit 1
    m=$(start_mariadb "$dir/mariadb") || { (stop_pid "${r#* }"); exit 1; }
    n=$(start_neo4j "$dir/neo4j") || { (stop_pid "${r#* }"); (stop_pid "${m#* }"); exit 1; }
    printf 'redis %s\nmariadb %s\nneo4j %s\n' "$r" "$m" "$n" >"$dir/servers.env" ;;
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
          tail -n 40 "$dir/$kind/error.log" "$dir/$kind/redis.log" "$dir/$kind/logs/neo4j.log" 2>/dev/null >&2 || true
        fi
        (stop_pid "$pid")
      done <"$dir/servers.env"
    fi
    rm -rf "$dir"
    exit $died ;;
  *) echo "usage: $0 start redis|mariadb|neo4j DIR [PORT] | stop PID | up DIR | down DIR" >&2; exit 2 ;;
esac
