#!/usr/bin/env bash
# The quick start: installs what is missing, builds, starts a server on an
# embedded SQLite file with one worker, submits a sample task and watches it
# to the end. Ctrl-C (or the end of the task) stops both daemons.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
BIN="${BUILD_DIR:-build}"
DIR="$(mktemp -d /tmp/orchard-demo.XXXXXX)"
PORT="${PORT:-7070}"
echo "demo: data and logs in $DIR"
"$BIN/server/orchard-server" --listen "127.0.0.1:$PORT" --db "$DIR/orchard.db" \
  --port-file "$DIR/port" 2>"$DIR/server.log" &
SERVER=$!
trap 'kill $WORKER $SERVER 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$DIR/port" ] && break; sleep 0.1; done
[ -s "$DIR/port" ] || { echo "demo: server did not start; see $DIR/server.log"; exit 1; }
"$BIN/worker/orchard-worker" --server "127.0.0.1:$PORT" --slots 4 --name demo-worker \
  2>"$DIR/worker.log" &
WORKER=$!
CTL="$BIN/cli/orchardctl --server 127.0.0.1:$PORT"
echo "demo: submitting sleep over 0:1000000 in 40 subtasks (150 ms each), then sum"
ID=$($CTL submit --kind sleep --range 0:1000000 --subtasks 40 --params '{"ms":150}')
$CTL watch "$ID"
ID=$($CTL submit --kind sum --range 0:1000000 --subtasks 100)
$CTL watch "$ID"
$CTL get "$ID"
echo "demo: history of $ID (task rows):"
$CTL history "$ID" | grep -E '^\S+\s+task' || $CTL history "$ID" | head -20
