# lib_cli.sh: tiny helpers for the shell-level tests (sourced by tests/cli_*.sh).
# Each script ends with cli_finish NAME, printing "NAME: N passed, N failed, N skipped".
CUVAE=${CUVAE:-build/cuvae}
cli_passed=0; cli_failed=0; cli_skipped=0
ok()   { cli_passed=$((cli_passed + 1)); echo "  ok   $1" >&2; }
bad()  { cli_failed=$((cli_failed + 1)); echo "  FAIL $1" >&2; }
skip() { cli_skipped=$((cli_skipped + 1)); echo "  skip $1: $2" >&2; }
cli_finish() { echo "$1: $cli_passed passed, $cli_failed failed, $cli_skipped skipped"; [ "$cli_failed" -eq 0 ]; }
# file_number FILE KEY: the number after "KEY": in FILE (an eval.json, a log line), or where FILE or the
# key is missing "(no KEY in FILE)": never empty, so two files that both lack it never compare equal
# same_tensors A B: the two safetensors files hold the same tensors, byte for byte (names, shapes
# aside from order, data), whatever their __metadata__ (a config with other train.epochs, say)
same_tensors() {
    python3 -c 'import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in header.items()}
sys.exit(0 if tensors(sys.argv[1]) == tensors(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null
}
# is_number TEXT: TEXT is one decimal number (file_number found it)
is_number() { [[ $1 =~ ^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$ ]]; }
file_number() { sed -nE "s/.*\"$2\": ([-0-9.e+]+).*/\1/p" "$1" 2>/dev/null | grep . || echo "(no $2 in $1)"; }
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
# a checkpoint edited and re-signed (its CRC-32 recomputed): EDIT is python on header / meta / data
resign() {   # resign IN OUT EDIT
python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:]); meta = header["__metadata__"]
exec(sys.argv[3])
crc = zlib.crc32(bytes(data))
for key, value in sorted(meta.items(), key=lambda pair: pair[0].encode()):   # (key order, as cuvae)
    if key not in ("crc32", "crc32_entries"): crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
meta.pop("crc32_entries", None); meta["crc32"] = "%08x" % (crc & 0xffffffff)
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
PY
}
