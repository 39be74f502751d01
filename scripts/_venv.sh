# Shared by scripts/run and scripts/test: create .venv with Python >= 3.11 and install
# listener (with the given extras) when pyproject.toml changed since the last install.
ensure_venv() {
  local extras="$1" py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for cand in python3 python3.13 python3.12 python3.11; do
      if "$cand" -c "import sys; sys.exit(sys.version_info < (3, 11))" >/dev/null 2>&1; then
        py="$cand"; break
      fi
    done
  fi
  [ -n "$py" ] || { echo "error: listener needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  local stamp=".venv/.listener-installed${extras}"
  local want; want="$(cat pyproject.toml | cksum)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".${extras}"
    echo "$want" > "$stamp"
  fi
}
