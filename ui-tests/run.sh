#!/usr/bin/env bash
# Browser tests of the flame-lab JupyterLab extension: starts JupyterLab (token, free port,
# FLAME_LAB_HOME in a temp folder), runs Playwright in Debian's Chromium, stops JupyterLab.
#   ui-tests/run.sh            all suites
#   ui-tests/run.sh no-api     the panel without the flame_lab server API (works today)
#   ui-tests/run.sh sandbox    the full submission against the sandbox (needs the server extension)
#   ui-tests/run.sh widgets    saved monitors after a kernel restart and a reopen (sandbox too)
# Env: JUPYTER (default: .venv/bin/jupyter of the repo, else jupyter on PATH), CHROMIUM (default
# /usr/bin/chromium). Screenshots go to ui-tests/artifacts/ and ci-artifacts/ (both git-ignored).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
SUITES=("${@:-no-api sandbox widgets}")
read -r -a SUITES <<<"${SUITES[*]}"

if [[ -z "${JUPYTER:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/jupyter" ]]; then JUPYTER="$ROOT/.venv/bin/jupyter"; else JUPYTER="$(command -v jupyter || true)"; fi
  [[ -n "$JUPYTER" ]] || { echo "run.sh: no jupyter found: set JUPYTER=/path/to/venv/bin/jupyter" >&2; exit 2; }
fi
BIN="$(dirname "$JUPYTER")"
PYTHON="$BIN/python"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || { echo "run.sh: no Chromium at $CHROMIUM (apt-get install -y chromium)" >&2; exit 2; }

# The labextension is build output: build it if this checkout has none yet, or if the
# extension's sources changed since (else the browser would test an older extension).
BUILT="$ROOT/flame_lab/labextension/package.json"
if [[ ! -f "$BUILT" ]] || [[ -n "$(find "$ROOT/extension/src" "$ROOT/extension/style" "$ROOT/extension/package.json" -type f -newer "$BUILT" -not -path '*/__tests__/*' 2>/dev/null | head -1)" ]]; then
  echo "run.sh: building the Lab extension (none yet, or its sources changed)"
  [[ -d "$ROOT/extension/node_modules" ]] || (cd "$ROOT/extension" && npm ci --no-audit --no-fund)
  (cd "$ROOT/extension" && PATH="$BIN:$PATH" npm run build:prod)
fi
[[ -d "$HERE/node_modules/@playwright/test" ]] || (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)

WORK="$(mktemp -d -t flame-lab-ui.XXXXXX)"
LAB_PID=""
stop_lab() {
  if [[ -n "$LAB_PID" ]] && kill -0 "$LAB_PID" 2>/dev/null; then
    kill "$LAB_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$LAB_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$LAB_PID" 2>/dev/null || true
  fi
  LAB_PID=""
}
stop_sandbox() {  # the sandbox hub and node agents outlive JupyterLab: stop them by their home
  if [[ -d "$WORK/home/sandbox" && -x "$BIN/flame-lab" ]]; then
    FLAME_LAB_HOME="$WORK/home" "$BIN/flame-lab" sandbox down >/dev/null 2>&1 || true
  fi
}
cleanup() { stop_lab; stop_sandbox; rm -rf "$WORK"; }
trap cleanup EXIT

# Isolated Jupyter folders; the extension is found through JUPYTER_PATH, the venv is left alone.
mkdir -p "$WORK/data/labextensions" "$WORK/config" "$WORK/runtime" "$WORK/home" "$WORK/notebooks"
ln -s "$ROOT/flame_lab/labextension" "$WORK/data/labextensions/flame-lab"
export JUPYTER_PATH="$WORK/data" JUPYTER_CONFIG_DIR="$WORK/config" JUPYTER_RUNTIME_DIR="$WORK/runtime"
export FLAME_LAB_HOME="$WORK/home"
# No "get Jupyter news?" toast over the screenshots.
mkdir -p "$WORK/config/labconfig"
echo '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}' >"$WORK/config/labconfig/page_config.json"
# Notebooks are copied so a submission's provenance is written to the copy, not the repository.
# FLAME_LAB_UI_NOTEBOOKS may name another folder to serve as notebooks/.
NOTEBOOKS="${FLAME_LAB_UI_NOTEBOOKS:-$ROOT/notebooks}"
if [[ -d "$NOTEBOOKS" ]]; then cp -r "$NOTEBOOKS/." "$WORK/notebooks/"; fi
export ARTIFACTS="$HERE/artifacts"
mkdir -p "$ARTIFACTS" "$ROOT/ci-artifacts"

start_lab() {  # $1 = suite; sets LAB_URL, LAB_TOKEN, LAB_PID
  local port token extra=() root="$WORK/$1"
  # Each suite gets its own folder and workspace, so no tab or dialog carries over between them.
  mkdir -p "$root/workspaces"
  cp -r "$WORK/notebooks" "$root/"
  port="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  token="$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')"
  if [[ "$1" == "no-api" ]]; then extra+=("--ServerApp.jpserver_extensions=flame_lab=False"); fi
  if [[ "$1" != "no-api" ]]; then extra+=("--ServerApp.jpserver_extensions=flame_lab=True"); fi
  env -u FLAME_LAB_UI_PASSPHRASE -u FLAME_LAB_PASSPHRASE "$JUPYTER" lab --allow-root --no-browser --ip=127.0.0.1 --port="$port" \
    --ServerApp.port_retries=0 --IdentityProvider.token="$token" --ServerApp.root_dir="$root" --LabApp.workspaces_dir="$root/workspaces" \
    --LabApp.expose_app_in_browser=True --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
    "${extra[@]}" >"$ARTIFACTS/jupyterlab-$1.log" 2>&1 &
  LAB_PID=$!
  export LAB_URL="http://127.0.0.1:$port" LAB_TOKEN="$token"
  # Bounded wait for the server to answer (60 s), failing with its log.
  "$PYTHON" - "$LAB_URL" "$LAB_TOKEN" <<'PY' || { tail -40 "$ARTIFACTS/jupyterlab-$1.log" >&2; exit 1; }
import sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while True:
    try:
        req = urllib.request.Request(url + "/api/status", headers={"Authorization": "token " + token})
        urllib.request.urlopen(req, timeout=2).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("JupyterLab did not answer within 60 s")
        time.sleep(0.3)
PY
  # Each suite is only meaningful if the flame_lab API is absent (no-api) or present (sandbox).
  local code
  code="$("$PYTHON" -c 'import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1] + "/flame-lab/api/version", headers={"Authorization": "token " + sys.argv[2]})
try:
    print(urllib.request.urlopen(req, timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)' "$LAB_URL" "$LAB_TOKEN")"
  if [[ "$1" == "no-api" && "$code" != "404" ]]; then
    echo "run.sh: /flame-lab/api/version answered $code, expected 404 with the server extension disabled" >&2
    return 1
  fi
  if [[ "$1" != "no-api" && "$code" != "200" ]]; then
    echo "run.sh: /flame-lab/api/version answered $code: the $1 suite needs the flame_lab server extension installed and enabled" >&2
    return 1
  fi
}

# The sandbox suites need a researcher key; Lab is started without the passphrase, so the
# server asks for it and the test types it into the passphrase dialog.
if [[ " ${SUITES[*]} " == *" sandbox "* || " ${SUITES[*]} " == *" widgets "* ]]; then
  FLAME_LAB_UI_PASSPHRASE="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(18))')"
  export FLAME_LAB_UI_PASSPHRASE
  FLAME_LAB_PASSPHRASE="$FLAME_LAB_UI_PASSPHRASE" "$BIN/flame-lab" keys init >"$ARTIFACTS/keys-init.log" 2>&1 \
    || { cat "$ARTIFACTS/keys-init.log" >&2; exit 1; }
fi

status=0
for suite in "${SUITES[@]}"; do
  echo "== ui-tests: $suite"
  if start_lab "$suite"; then
    (cd "$HERE" && npx playwright test --project="$suite") || status=1
  else
    status=1
  fi
  stop_lab
done
exit "$status"
