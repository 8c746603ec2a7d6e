# infra/venv.sh: sourced by infra/test and infra/checkov (bash).
#
#     ensure_venv WHO VENV REQUIREMENTS...
#
# Makes VENV a Python venv with the pinned REQUIREMENTS files installed. It is
# created on first use and rebuilt only when a requirements file (or the
# Python version) changes, so only the first run needs PyPI. WHO names the
# caller in its messages. Exits the caller on failure.

venv_fingerprint() { # VENV REQUIREMENTS...: hash of the files and the venv's Python
    local venv=$1
    shift
    "$venv/bin/python" - "$@" <<'PY'
import hashlib, sys
h = hashlib.sha256(sys.version.encode())
for path in sys.argv[1:]:
    h.update(path.encode() + b"\0")
    with open(path, "rb") as f:
        h.update(f.read())
print(h.hexdigest())
PY
}

ensure_venv() {
    local who=$1 venv=$2
    shift 2
    local stamp=$venv/.requirements.sha256
    if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        if [[ -f $stamp && $(<"$stamp") == "$(venv_fingerprint "$venv" "$@")" ]]; then
            return 0 # up to date
        fi
        echo "$who: requirements changed, rebuilding $venv"
    else
        echo "$who: creating $venv"
    fi
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv"; then
        printf '%s: error: %s\n' "$who" "could not create a venv with 'python3 -m venv' (on Debian/Ubuntu: apt-get install python3-venv)." >&2
        exit 1
    fi
    local args=() r start=$SECONDS
    for r in "$@"; do args+=(-r "$r"); done
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${args[@]}"; then
        printf '%s: error: %s\n' "$who" "pip install into $venv failed (is PyPI reachable?)." >&2
        exit 1
    fi
    venv_fingerprint "$venv" "$@" >"$stamp" # written last, so an interrupted install is retried
    echo "$who: venv ready in $((SECONDS - start)) s"
}
