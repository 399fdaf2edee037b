#!/usr/bin/env bash
# Run the whole service on this machine: set up, start Triton with both models, start the
# frontends against it, print the URLs. Ctrl-C stops both.
#   scripts/run.sh [--config FILE]
# The config defaults to $SD_CONFIG or config.yaml; SD__SECTION__KEY=value overrides apply to
# both sides (for example SD__SERVER__PORT=9000 or SD__TRITON__GRPC_PORT=9001).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

config="${SD_CONFIG:-$root/config.yaml}"
while (( $# )); do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --config=*) config="${1#*=}"; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
config=$(realpath "$config")
export SD_CONFIG="$config"

say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }

scripts/setup.sh
python="${SD_VENV:-$root/.venv}/bin/python"

# Refuse a bad config before starting anything; print what the URLs need.
read -r host port modes < <("$python" - <<'PY'
import sys
from sdconfig import ConfigError, load_settings
try:
    s = load_settings()
except ConfigError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
host = "127.0.0.1" if s.server.host in ("0.0.0.0", "::", "") else s.server.host
print(host, s.server.port, ",".join(s.server.modes))
PY
)

mkdir -p logs
launcher_log="$root/logs/launch_triton.out"
: > "$launcher_log"
triton_pid="" frontends_pid="" tail_pid=""

stop() {
  trap - INT TERM EXIT
  [[ -n "$tail_pid" ]] && kill "$tail_pid" 2>/dev/null || true
  if [[ -n "$frontends_pid" ]] && kill -0 "$frontends_pid" 2>/dev/null; then
    say "stopping the frontends"
    kill -TERM "$frontends_pid" 2>/dev/null || true
    wait "$frontends_pid" 2>/dev/null || true
  fi
  if [[ -n "$triton_pid" ]] && kill -0 "$triton_pid" 2>/dev/null; then
    say "stopping Triton"
    kill -TERM "$triton_pid" 2>/dev/null || true
    wait "$triton_pid" 2>/dev/null || true
  fi
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

say "starting Triton (progress below; full server log: see triton.log_file in $config)"
PYTHONUNBUFFERED=1 "$python" scripts/launch_triton.py --config "$config" > "$launcher_log" 2>&1 &
triton_pid=$!
tail -n +1 -f "$launcher_log" &
tail_pid=$!

ready=""
while [[ -z "$ready" ]]; do
  if ! kill -0 "$triton_pid" 2>/dev/null; then
    wait "$triton_pid" || true
    triton_pid=""
    say "Triton did not start; see $launcher_log" >&2
    exit 1
  fi
  ready=$(grep -m1 '^READY ' "$launcher_log" || true)
  [[ -n "$ready" ]] || sleep 0.5
done
kill "$tail_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true
tail_pid=""
grpc=$(sed -E 's/.*grpc=([^ ]+).*/\1/' <<< "$ready")
triton_http=$(sed -E 's/.*http=([^ ]+).*/\1/' <<< "$ready")
triton_metrics=$(sed -E 's/.*metrics=([^ ]+).*/\1/' <<< "$ready")

say "starting the frontends on http://$host:$port against Triton at $grpc"
SD__TRITON__URLS="[$grpc]" "$python" -m frontends --config "$config" &
frontends_pid=$!
base="http://$host:$port"
until "$python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$base/healthz" 2>/dev/null; do
  if ! kill -0 "$frontends_pid" 2>/dev/null; then
    wait "$frontends_pid" || true
    frontends_pid=""
    say "the frontends did not start (see above)" >&2
    exit 1
  fi
  sleep 0.3
done

echo
say "ready. Pages:"
[[ ",$modes," == *",realtime,"* ]] && echo "    realtime (webcam)  $base/realtime"
[[ ",$modes," == *",canvas,"* ]] && echo "    canvas (drawing)   $base/canvas"
echo "    index              $base/"
say "APIs (mode is one of: ${modes//,/, }):"
echo "    WS   $base/api/{mode}/ws/{user_id}"
echo "    GET  $base/api/{mode}/stream/{user_id}    MJPEG"
echo "    GET  $base/api/{mode}/settings"
echo "    GET  $base/healthz  $base/readyz  $base/metrics"
echo "    Triton: gRPC $grpc, HTTP http://$triton_http, metrics http://$triton_metrics/metrics"
say "Ctrl-C stops both."

# Whichever stops first takes the other one down with it.
set +e
wait -n "$triton_pid" "$frontends_pid"
status=$?
say "a server exited (status $status); stopping the other"
exit "$status"
