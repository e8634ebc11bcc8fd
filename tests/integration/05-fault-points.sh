#!/bin/bash
# The fault points (docs/reliability.md) exist only in a build made with
# --enable-fault-injection: there the daemons call libfiu and take their
# points from the environment; without it every module that has points
# compiles to objects with no fiu symbol at all.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

fiu_syms() { nm "$1" 2>/dev/null | grep -c ' fiu_' || true; }
if grep -q '^#define DG_FAULT_INJECTION 1' "$top_builddir/config.h"; then
	t_check "deltagated calls libfiu (fault-injection build)" test "$(fiu_syms "$DELTAGATED")" -gt 0
	t_check "deltagate-shadowd calls libfiu" test "$(fiu_syms "$SHADOWD")" -gt 0
	# a point switched on from the environment acts: EIO at the first commit
	# of the state database is a start-up failure, said as such
	out=$(FIU_ENABLE='enable name=store/commit,failnum=5' \
		"$DELTAGATED" --db "$T_DIR/gw.db" --cache-root "$T_DIR/c" \
		--broker mqtt://127.0.0.1:1 2>&1 & p=$!; t_wait_gone 20 $p; kill $p 2>/dev/null; wait $p)
	t_check "a point enabled at start fires (store/commit EIO)" \
		grep -q 'fault point store/commit: failing with Input/output error' <<< "$out"
	out=$(FIU_ENABLE='enable name=no/such,failnum=5,bogus=1' "$DELTAGATED" --db "$T_DIR/gw2.db" \
		--cache-root "$T_DIR/c2" --broker mqtt://127.0.0.1:1 2>&1); st=$?
	t_check "a malformed FIU_ENABLE is refused at start (status $st)" test "$st" -ne 0
else
	t_check "deltagated has no fiu symbol (release build)" test "$(fiu_syms "$DELTAGATED")" -eq 0
	t_check "deltagate-shadowd has no fiu symbol" test "$(fiu_syms "$SHADOWD")" -eq 0
fi

# every file with points, compiled as a release build would
mkdir -p "$T_DIR/rel"
grep -v 'DG_FAULT_INJECTION' "$top_builddir/config.h" > "$T_DIR/rel/config.h"
cflags="-std=c11 -D_GNU_SOURCE -DHAVE_CONFIG_H -I$T_DIR/rel -I$top_srcdir/src -I$top_srcdir/cache -I$top_srcdir/proxy
 $(pkg-config --cflags libevent libcoap-3-openssl jansson libcurl sqlite3 libssl zlib 2>/dev/null)"
n=0 bad=""
for f in $(grep -rl 'DG_FAULT(' "$top_srcdir/src" "$top_srcdir/proxy" "$top_srcdir/cache" | grep '\.c$') \
	"$top_srcdir/src/dg_fault.c"; do
	o="$T_DIR/rel/$(basename "$f" .c).o"
	# shellcheck disable=SC2086
	if ! ${CC:-cc} $cflags -c "$f" -o "$o" 2>"$T_DIR/rel/cc.err"; then
		bad="$bad $(basename "$f")(build)"; sed 's/^/# /' "$T_DIR/rel/cc.err" | head -5
		continue
	fi
	n=$((n + 1))
	[ "$(fiu_syms "$o")" -eq 0 ] || bad="$bad $(basename "$f")"
done
t_check "release objects of the $n files with points have no fiu symbol${bad:+ (not:$bad)}" \
	test -z "$bad" -a "$n" -ge 9
t_done
