#!/bin/sh
# A small app to watch vigil work: it "serves" until SIGTERM, then drains for a second and
# exits 0. It leaves an orphan behind every few seconds, which vigil reaps, and marks itself
# ready with a file that vigil's exec probe checks.
ready=${DEMO_READY_FILE:-/tmp/vigil-demo.ready}
drain() { echo "demo: $1, finishing in-flight work"; sleep 1; rm -f "$ready"; echo "demo: bye"; exit 0; }
trap 'drain SIGTERM' TERM
trap 'drain SIGINT' INT
trap 'echo "demo: SIGHUP, reloading"' HUP
echo "demo: starting as uid $(id -u), pid $$; \`kill -TERM $PPID\` (vigil) starts the drain"
sleep 1
touch "$ready"
echo "demo: ready"
n=0
while :; do
  n=$((n + 1))
  # A child that forks and exits at once: its own child is re-parented to vigil, which reaps it.
  (sleep 0.1 &)
  echo "demo: working ($n)"
  sleep 2 &
  wait $!
done
