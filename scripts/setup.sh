#!/usr/bin/env bash
# Prepare this checkout to run: a virtual environment in .venv with the pinned model side,
# frontends and Triton server, and the project's own packages; the demo model is committed in models/demo-sd.
#   scripts/setup.sh            what the service needs
#   scripts/setup.sh --dev      also tests, lint, ONNX checks, and Debian's chromium, nginx and libb64
# Re-running is cheap: each step is skipped when its stamp matches the pinned requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="${SD_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [[ ! -x "$venv/bin/python" ]]; then
  say "creating virtual environment $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check -c requirements/lock.txt)

stamp_ok() { [[ -f "$venv/.stamp-$1" ]] && [[ "$(cat "$venv/.stamp-$1")" == "$2" ]]; }
stamp() { echo "$2" > "$venv/.stamp-$1"; }

base_hash=$(cat requirements/model.txt requirements/frontend.txt requirements/triton.txt requirements/lock.txt | sha1sum | cut -c1-16)
if ! stamp_ok base "$base_hash"; then
  say "installing the model side, frontends and Triton (torch is the CPU build unless a GPU build is present)"
  "${pip[@]}" -r requirements/model.txt -r requirements/frontend.txt \
    tritonclient[grpc]==2.51.0 nvidia-cuda-runtime-cu12==12.9.79
  # Only the files of nvidia-pytriton are used (tritonserver and the Python backend); its own
  # Python requirements would pull numpy 2, which the 2.51 backend stub misreads.
  "${pip[@]}" --no-deps nvidia-pytriton==0.7.0
  stamp base "$base_hash"
fi

# The project's own packages, editable: every module importable from anywhere, no path juggling.
"${pip[@]}" --no-deps -e . >/dev/null

if [[ $dev == 1 ]]; then
  dev_hash=$(cat requirements/dev.txt requirements/lock.txt | sha1sum | cut -c1-16)
  if ! stamp_ok dev "$dev_hash"; then
    say "installing test and lint tools"
    "${pip[@]}" -r requirements/dev.txt
    stamp dev "$dev_hash"
  fi
  need=()
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)  # the TLS proxy of the topology test and chaos run
  ldconfig -p | grep -q libb64.so.0d || need+=(libb64-0d)
  if (( ${#need[@]} )); then
    say "installing Debian packages: ${need[*]}"
    if [[ $(id -u) == 0 ]]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if [[ ! -f models/demo-sd/model_index.json ]]; then
  say "models/demo-sd is missing: restore it with 'git checkout -- models/demo-sd' or retrain it with" \
    "'$venv/bin/python scripts/train_demo_model.py' (about an hour on 2 cores)"
  exit 1
fi
say "ready: $venv"
