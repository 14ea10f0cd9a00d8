# lib_cli.sh: tiny helpers for the shell-level tests (sourced by tests/cli_*.sh).
# Each script ends with cli_finish NAME, printing "NAME: N passed, N failed, N skipped".
CUVAE=${CUVAE:-build/cuvae}
cli_passed=0; cli_failed=0; cli_skipped=0
ok()   { cli_passed=$((cli_passed + 1)); echo "  ok   $1" >&2; }
bad()  { cli_failed=$((cli_failed + 1)); echo "  FAIL $1" >&2; }
skip() { cli_skipped=$((cli_skipped + 1)); echo "  skip $1: $2" >&2; }
cli_finish() { echo "$1: $cli_passed passed, $cli_failed failed, $cli_skipped skipped"; [ "$cli_failed" -eq 0 ]; }
# torch_or_skip SCRIPT WHAT FILE...: unless /usr/bin/python3 imports torch and numpy and every FILE
# is non-empty, records WHAT as skipped with the reason and ends the script with its summary line.
torch_or_skip() {
    local script=$1 what=$2 file; shift 2
    if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
        skip "$what" "python3-torch not installed (apt-get install python3-torch)"; cli_finish "$script"; exit
    fi
    for file in "$@"; do
        [ -s "$file" ] || { skip "$what" "data/mnist missing (run make data)"; cli_finish "$script"; exit; }
    done
}

# expect_error NAME EXPECTED_EXIT PATTERN -- command...
# passes when the command exits EXPECTED_EXIT and prints exactly one stderr
# line matching PATTERN (grep -E), and nothing on stdout.
expect_error() {
    local name="$1" want_rc="$2" pattern="$3"; shift 4
    local out err rc
    err=$(mktemp); out=$("$@" 2>"$err"); rc=$?
    local lines; lines=$(grep -c . "$err")
    if [ "$rc" -eq "$want_rc" ] && [ "$lines" -eq 1 ] && grep -qE -- "$pattern" "$err" && [ -z "$out" ]; then
        ok "$name"
    else
        bad "$name: exit $rc (want $want_rc), stderr: $(head -c 400 "$err")"
    fi
    rm -f "$err"
}
