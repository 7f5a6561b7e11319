#!/usr/bin/env bash
# Creates the Python virtualenv the end-to-end tests use (DuckDB, pyarrow, ...) and prints
# its python's path as the last line of output.
#
# The venv lives in ${CARGO_TARGET_DIR:-<repo>/target}/pyenv and is rebuilt only when
# requirements.txt changes. A lock (flock) serialises concurrent callers: several test
# binaries may start at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
requirements="$here/requirements.txt"

fail() {
  echo "pyenv.sh: $*" >&2
  exit 1
}

target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in
  /*) ;;
  *) target="$repo/$target" ;; # cargo resolves a relative target dir from the workspace
esac
venv="$target/pyenv"
python="$venv/bin/python"
# A copy of the requirements the venv was built from: a changed list rebuilds it.
installed="$venv/requirements.installed"

command -v flock >/dev/null 2>&1 || fail "flock is missing (install util-linux)"
mkdir -p "$target"
exec 9>"$target/pyenv.lock"
flock 9

if [ -x "$python" ] && cmp -s "$requirements" "$installed"; then
  echo "$python"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 is missing (install python3, 3.11 or newer)"
rm -rf "$venv"
python3 -m venv "$venv" >&2 ||
  fail "python3 -m venv failed: the venv module or ensurepip is missing (install python3-venv)"
"$python" -m pip --version >/dev/null 2>&1 ||
  fail "pip is missing in the new venv (install python3-pip / python3-venv)"
"$python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements" >&2 ||
  fail "pip install -r $requirements failed (is PyPI reachable?)"
cp "$requirements" "$installed"
echo "$python"
