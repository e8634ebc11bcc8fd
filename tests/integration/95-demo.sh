#!/bin/bash
# scripts/demo, the README's first command, run on the suite's own build:
# it must end 0 and its table must say what happened - 23 devices on 2.0 /
# 2.0.0(+0), dev13's failed install reported as failed, the legacy devices
# by the full-image fallback, the others and the four serial devices by
# delta - with most of the upstream bytes saved.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

out="$T_DIR/demo.out"
rc=0
DEMO_BUILD=$top_builddir "$top_srcdir/scripts/demo" > "$out" 2>&1 || rc=$?
t_check "scripts/demo exits 0" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -60 "$out" | sed 's/^/# /'

row() { grep -E "^   $1 " "$out"; }
# device driver from to via resultCode extended seconds
ok=0; for i in 1 2 3 4 6 7 8 9 11 12 14 16 17 18 19; do
	row "dev$i" | grep -qE "^   dev$i +coap +1\.0 +2\.0 +delta +1 +0x00000000 " && ok=$((ok + 1))
done
t_check "15 CoAP devices on 1.0 updated by delta (resultCode 1)" test "$ok" -eq 15
ok=0; for i in 5 10 15 20; do
	row "dev$i" | grep -qE "^   dev$i +coap +0\.9 +2\.0 +full +2 +0x90800008 " && ok=$((ok + 1))
done
t_check "4 legacy CoAP devices by the full-image fallback (resultCode 2, 0x90800008)" test "$ok" -eq 4
t_check "dev13's failed install is reported failed (resultCode 0)" \
	sh -c "grep -E '^   dev13 ' '$out' | grep -qE '\(FAILED\) +[a-z-]+ +0 '"
ok=0; for d in "dev21 +ymodem +1\.0\.0 +2\.0\.0 " "dev22 +ymodem +1\.0\.0 +2\.0\.0 " \
	"dev23 +stm32 +1\.0\.0\+0 +2\.0\.0\+0 " "dev24 +smp +1\.0\.0\+0 +2\.0\.0\+0 "; do
	grep -qE "^   ${d}+delta +1 +0x00000000 " "$out" && ok=$((ok + 1))
done
t_check "the 4 serial devices (YMODEM x2, STM32, SMP) updated by delta" test "$ok" -eq 4
saved=$(sed -n 's/.*saved \([0-9]*\)%.*/\1/p' "$out")
t_check "upstream bytes saved >= 90% (measured: ${saved:-?}%)" test "${saved:-0}" -ge 90
t_check "deltagate status lists the jobs" grep -qE '^   TOTAL +job-v2 ' "$out"
t_check "everything it started was stopped" grep -q '== stopping everything started' "$out"
t_done
