#!/bin/sh
# bench/reliability/repeat.sh N TEST [LOAD] - run one test N times (in the
# build tree), idle or with both cores loaded (LOAD=load: stress-ng --cpu
# <cores>, started here and stopped by its PID), and count the runs where
# every check passed. For the "passes every time" records in
# docs/reliability.md.
#   bench/reliability/repeat.sh 20 tests/integration/53-gateway-kill9.sh load
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:?N}; t=${2:?TEST}; load=${3:-idle}
b=${BUILD_DIR:-$top/build}
[ -x "$b/proxy/deltagated" ] || { echo "build first (scripts/check)" >&2; exit 2; }
spid=
if [ "$load" = load ]; then
	stress-ng --cpu "$(nproc)" --quiet &
	spid=$!
	trap 'kill "$spid" 2>/dev/null' EXIT
fi
echo "command: $0 $*"
echo "machine: $(nproc) CPUs, $(uname -m), $(date -u '+%Y-%m-%d %H:%M UTC'), load: $load"
ok=0 bad=0 i=0
log=$(mktemp -d /tmp/dgrepeat.XXXXXX)
while [ "$i" -lt "$n" ]; do
	i=$((i + 1))
	t0=$(date +%s)
	if (cd "$b" && top_srcdir="$top" top_builddir="$b" bash "$top/$t" > "$log/run$i.log" 2>&1) &&
		! grep -q '^not ok' "$log/run$i.log"; then
		ok=$((ok + 1)); r=pass
	else
		bad=$((bad + 1)); r="FAIL ($log/run$i.log)"
	fi
	echo "run $i: $r, $(grep -c '^ok' "$log/run$i.log") checks, $(( $(date +%s) - t0 )) s, load average $(cut -d' ' -f1 /proc/loadavg)"
done
echo "$t: $ok of $n runs passed ($load)"
[ "$bad" -eq 0 ] && rm -rf "$log"
[ "$bad" -eq 0 ]
