# tests/lib-delta.sh - what the delta CLI tests (40-42) share; sourced by
# them with DL_NAME set to a short name for the work directory.
# Sets DG (the CLI) and W (a work directory removed at exit); TAP lines
# counted in n, failures in fails (the test ends with [ "$fails" -eq 0 ]).
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
DG="$top_builddir/src/deltagate"
W=$(mktemp -d "${TMPDIR:-/tmp}/${DL_NAME:-dgdelta}.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { # check NAME EXPECTED_STATUS COMMAND...
	name=$1; want=$2; shift 2
	"$@" >"$W/cmd.out" 2>"$W/err"; got=$?
	if [ "$got" -eq "$want" ]; then ok "$name"; else
		nok "$name (exit $got, want $want)"; sed 's/^/# /' "$W/err"; fi
}
same() { # same NAME FILE1 FILE2
	if cmp -s "$2" "$3"; then ok "$1"; else nok "$1"; fi
}
