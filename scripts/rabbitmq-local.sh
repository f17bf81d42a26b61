#!/usr/bin/env bash
# A private RabbitMQ broker for tests and the demo: everything it writes (mnesia, logs, config,
# HOME with its Erlang cookie, pid, port) lives under one directory, it listens on 127.0.0.1 only,
# on a port of its own, under a node name of its own, so several run side by side with each other
# and with a system rabbitmq-server (which keeps 5672; this script never uses 5672 and never
# touches the system broker, its /var/lib/rabbitmq or its config).
#
#   scripts/rabbitmq-local.sh start DIR   starts the broker in the background, prints
#                                         "amqp_port=PORT" once the AMQP port accepts connections,
#                                         and exits 0 (1 with the log's tail if it does not come up
#                                         within $RABBITMQ_START_TIMEOUT s, default 60)
#   scripts/rabbitmq-local.sh stop DIR    stops it (SIGTERM to its process group: a clean
#                                         shutdown; SIGKILL after 15 s), waits until it is gone
#   scripts/rabbitmq-local.sh kill DIR    SIGKILL to its process group (a crash), waits
#   scripts/rabbitmq-local.sh status DIR  exit 0 and "amqp_port=PORT" if it runs, else 1
#
# $RABBITMQ_WATCH_PID (start): a process id; when that process ends, a small watcher kills the
# broker, so a test that crashes leaves no broker behind.
#
# Port: $RABBITMQ_PORT, else the port DIR was started with before (so a restart keeps the port
# and its clients can reconnect), else a free one picked by the kernel. The Erlang distribution
# port is the AMQP port's own free neighbour pick (RABBITMQ_DIST_PORT); the node name is
# vigil-PORT@localhost. The durable queues and persistent messages in DIR survive stop/start.
#
# Why it runs /usr/lib/rabbitmq/bin/rabbitmq-server and not /usr/sbin/rabbitmq-server: the latter
# (Debian's wrapper) cd's to /var/lib/rabbitmq, drops root to the user rabbitmq with su, and
# sends the output to /var/log/rabbitmq; the former is the server itself and runs as whoever
# calls it (root in CI, or a normal user), with the environment given here.
#
# epmd: Erlang nodes find each other's distribution ports through epmd (port 4369), one per
# machine, shared by all nodes. It is started here with `epmd -daemon` (a no-op if one runs),
# so it is a daemon outside the broker's process group: stopping a broker never kills the epmd
# other brokers use, and a stopped broker's node name leaves epmd with its connection, so the
# next start under the same name works. We wait on the AMQP port, never with rabbitmqctl (the
# CLI needs the cookie and distribution ports of its own, and given the server's dist port it
# takes it and the server dies).
set -euo pipefail

SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
SELF=$(realpath "${BASH_SOURCE[0]}")

usage() {
  echo "usage: $0 start|stop|kill|status DIR" >&2
  exit 2
}

# running DIR: the broker's process group id if its leader is alive.
running() {
  local dir=$1 pid
  [[ -f $dir/pgid ]] || return 1
  pid=$(cat "$dir/pgid")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# free_port [NOT]: a TCP port on 127.0.0.1 nobody listens on (the kernel's pick), never 5672,
# 25672 or NOT.
free_port() {
  local not=${1:-0} port
  while :; do
    port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    [[ $port != 5672 && $port != 25672 && $port != "$not" ]] && break
  done
  echo "$port"
}

# accepts PORT: true if something accepts connections on 127.0.0.1:PORT.
accepts() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local dir=$1 port dist pgid
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if pgid=$(running "$dir"); then
    echo "amqp_port=$(cat "$dir/port")"
    return 0
  fi
  if [[ -n ${RABBITMQ_PORT:-} ]]; then
    port=$RABBITMQ_PORT
  elif [[ -f $dir/port ]]; then
    port=$(cat "$dir/port")
  else
    port=$(free_port)
  fi
  if [[ $port == 5672 ]]; then
    echo "rabbitmq-local: refusing port 5672 (the system broker's)" >&2
    return 1
  fi
  if accepts "$port"; then
    echo "rabbitmq-local: port $port is taken" >&2
    return 1
  fi
  if [[ -f $dir/dist_port ]] && ! accepts "$(cat "$dir/dist_port")"; then
    dist=$(cat "$dir/dist_port")
  else
    dist=$(free_port "$port")
  fi
  echo "$port" >"$dir/port"
  echo "$dist" >"$dir/dist_port"
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  # No plugins (the management plugin would open more ports); listen on loopback only; a small
  # free-disk limit so a full /tmp does not block publishers without saying why.
  echo "[]." >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$port
disk_free_limit.absolute = 10MB
log.console = false
log.file.level = info
EOF
  : >"$dir/rabbitmq-env.conf"
  : >"$dir/log/startup.log"
  epmd -daemon
  (
    cd "$dir"
    export HOME="$dir/home"
    export RABBITMQ_NODENAME="vigil-$port@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$port
    export RABBITMQ_DIST_PORT=$dist
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
    # Few schedulers that do not spin: the machine is shared with compilers.
    export RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD=none
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 2:2 +A 4"
    # Its own session and process group (setsid execs in place: the child is not a group
    # leader), so stop can signal exactly the broker's processes; $! is the beam's pid (the
    # scripts exec erl, erl execs beam).
    exec setsid "$SERVER" </dev/null >>"$dir/log/startup.log" 2>&1
  ) &
  pgid=$!
  echo "$pgid" >"$dir/pgid"
  local timeout=${RABBITMQ_START_TIMEOUT:-60} waited=0
  while ! accepts "$port"; do
    if ! kill -0 "$pgid" 2>/dev/null; then
      echo "rabbitmq-local: the broker exited during start; $dir/log:" >&2
      tail -n 30 "$dir/log/startup.log" "$dir"/log/*.log >&2 || true
      rm -f "$dir/pgid"
      return 1
    fi
    if ((waited >= timeout * 10)); then
      echo "rabbitmq-local: port $port not open after ${timeout}s; $dir/log:" >&2
      tail -n 30 "$dir/log/startup.log" "$dir"/log/*.log >&2 || true
      stop "$dir" KILL
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if [[ -n ${RABBITMQ_WATCH_PID:-} ]]; then
    # Outside the broker's group and detached from our output (a reader waits for its end).
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [[ -f $3/pgid ]]; do sleep 1; done
                    if [[ -f $3/pgid ]]; then "$2" kill "$3"; fi' \
      watch "$RABBITMQ_WATCH_PID" "$SELF" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  echo "amqp_port=$port"
}

# stop DIR [TERM|KILL]
stop() {
  local dir=$1 signal=${2:-TERM} pgid i
  [[ -d $dir ]] || return 0
  pgid=$(running "$dir") || {
    rm -f "$dir/pgid"
    return 0
  }
  kill -"$signal" -- "-$pgid" 2>/dev/null || true
  # The whole group gone (the beam, erl_child_setup, inet_gethost), 15 s at most before KILL.
  for ((i = 0; i < 150; i++)); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$pgid" 2>/dev/null; then
    kill -KILL -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # Reap it if it is our child (it is not when start ran in another shell).
  wait "$pgid" 2>/dev/null || true
  rm -f "$dir/pgid"
}

[[ $# -eq 2 ]] || usage
case $1 in
  start) start "$2" ;;
  stop) stop "$2" TERM ;;
  kill) stop "$2" KILL ;;
  status)
    if running "$2" >/dev/null; then
      echo "amqp_port=$(cat "$2/port")"
    else
      exit 1
    fi
    ;;
  *) usage ;;
esac
