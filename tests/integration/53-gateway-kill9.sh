#!/bin/bash
# kill -9 of deltagated during a download, a rebuild and a transfer: every
# job continues from its last durable stage after a restart, a half-done
# download resumes from its byte offset, and nothing that was complete is
# fetched again. The gateway is stopped where the test needs it by fault
# points (docs/reliability.md), never by hoping to catch a stage.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
NGINX_SLOW_RATE=200k
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
t_gw_flasher
kill9_gw() { kill -9 "$GW_PID"; wait "$GW_PID" 2>/dev/null; }

# 1. during a download: 2 MiB at 200 KiB/s, paused after every chunk
# until more than 300 KiB are on disk, then killed there
head -c 2097152 /dev/urandom > "$NGINX_WWW/big.bin"
BIG=$(t_sha "$NGINX_WWW/big.bin")
t_gw_conf "k1" "k2" "k3 address=hold"
t_check "deltagated starts" t_gw_start
t_check "pause after each downloaded chunk" t_fault_on "$GW_PID" fetch/after-chunk pause
t_nginx_mark
t_gw_command k1 jobK1 "$NGINX_URL/slow/big.bin" "$NGINX_WWW/big.bin"
partial=0 pauses=0
while t_wait_stopped 60 "$GW_PID"; do
	pauses=$((pauses + 1))
	partial=$(stat -c %s "$GW_CACHE/.partial/$BIG" 2>/dev/null || echo 0)
	[ "$partial" -gt 300000 ] && break
	[ "$pauses" -ge 5000 ] && break
	kill -CONT "$GW_PID"
done
t_check "stopped in the download with over 300 KiB on disk ($partial bytes, $pauses pauses)" \
	test "$partial" -gt 300000 -a "$partial" -lt 2097152
kill9_gw
have=$(stat -c %s "$GW_CACHE/.partial/$BIG")
t_diag "killed with $have bytes downloaded"
t_check "deltagated restarts" t_gw_start
t_check "k1 succeeds after the restart" t_gw_wait_status k1 jobK1 SUCCEEDED 60
t_check "k1: the device holds the image" cmp "$T_DIR/dev/k1.bin" "$NGINX_WWW/big.bin"
ranges=$(t_nginx_ranges '/slow/big.bin' | grep -c 'bytes=[1-9]')
total=$(t_nginx_bytes '/slow/big.bin')
# the resumed request: asked from the bytes on disk, and what nginx sent for it
resumed=$(t_nginx_log_since '/slow/big.bin' | awk -v r="\"bytes=$have-\"" '$(NF - 1) == r { n++; b += $(NF - 2) } END { print n + 0, b + 0 }')
t_diag "requests: $(t_nginx_requests '/slow/big.bin'), resumed with a Range: $ranges, body bytes sent: $total; from $have: $resumed"
t_check "the download resumed with a Range request" test "$ranges" -ge 1
# nothing on disk is fetched again: one request from the byte the partial
# file ended at, carrying exactly the rest. (What nginx had sent beyond it
# into the socket buffers while the gateway was stopped was never read and
# dies with the kill; its amount follows how long the stops lasted, so a
# bound on nginx's total is a bound on the machine's speed, not the gateway.)
t_check "one request resumed from the $have bytes on disk" test "${resumed% *}" -eq 1
t_check "it carried only the rest: $((2097152 - have)) bytes (nothing on disk fetched twice)" \
	test "${resumed#* }" -eq $((2097152 - have))

# 2. during a rebuild: a 16 MiB image and its delta; the gateway crashes
# when half of the target is written (fault point rebuild/mid-apply)
head -c 16777216 /dev/urandom > "$T_DIR/s.bin"
cp "$T_DIR/s.bin" "$NGINX_WWW/t.bin"
head -c 4096 /dev/urandom | dd of="$NGINX_WWW/t.bin" bs=1 seek=1000000 conv=notrunc 2>/dev/null
t_check "delta of the 16 MiB pair" "$DELTAGATE" diff "$T_DIR/s.bin" "$NGINX_WWW/t.bin" "$NGINX_WWW/st.delta"
t_gw_cache_import "$T_DIR/s.bin"
t_check "crash half way through a rebuild" t_fault_on "$GW_PID" rebuild/mid-apply crash
t_nginx_mark
t_gw_command k2 jobK2 "$NGINX_URL/t.bin" "$NGINX_WWW/t.bin" \
	"$(t_gw_related "$NGINX_URL/st.delta" "$NGINX_WWW/st.delta" "$(t_sha "$T_DIR/s.bin")")"
t_check "deltagated crashed in the rebuild" t_wait_gone 60 "$GW_PID"
wait "$GW_PID" 2>/dev/null; st=$?
t_check "killed by SIGKILL at the fault point (status $st)" test "$st" -eq 137
t_check "the log names the point" grep -q 'fault point rebuild/mid-apply: crash' "$T_DIR/gw.log"
t_check "a half-written target was left behind" sh -c "ls '$GW_CACHE'/.rebuild-* >/dev/null 2>&1"
t_check "deltagated restarts" t_gw_start
t_check "k2 succeeds after the restart" t_gw_wait_status k2 jobK2 SUCCEEDED 90
t_check "k2: the device holds the rebuilt image" cmp "$T_DIR/dev/k2.bin" "$NGINX_WWW/t.bin"
t_check "k2: the delta was fetched once" test "$(t_nginx_requests '/st.delta')" -eq 1
t_check "k2: the full image was never fetched" test "$(t_nginx_requests '/t.bin')" -eq 0
t_check "k2: outcome 1 (rebuilt from the delta)" jq -e '.resultCode == 1 and .extendedResultCode == 0' <<< "$(t_gw_reported k2)"
t_check "no half-written target is left" sh -c "! ls '$GW_CACHE'/.rebuild-* >/dev/null 2>&1"

# 3. during a transfer: k3's flashing tool has started and waits (address
# "hold"); the gateway is killed with the tool running, and the tool with it
: > "$T_DIR/dev/hold"
t_nginx_mark
head -c 100000 /dev/urandom > "$NGINX_WWW/small.bin"
t_gw_command k3 jobK3 "$NGINX_URL/small.bin" "$NGINX_WWW/small.bin"
t_check "k3's tool is flashing" t_wait_for 60 grep -q '^start k3 ' "$T_DIR/dev/flash.log"
kill9_gw
tool=$(awk '$1 == "start" && $2 == "k3" { print $4 }' "$T_DIR/dev/flash.log")
kill -9 -- "-$tool" 2>/dev/null || kill -9 "$tool" 2>/dev/null
rm -f "$T_DIR/dev/hold"
t_check "deltagated restarts" t_gw_start
t_check "k3 succeeds after the restart" t_gw_wait_status k3 jobK3 SUCCEEDED 60
t_check "k3: the device holds the image" cmp "$T_DIR/dev/k3.bin" "$NGINX_WWW/small.bin"
t_check "k3: the staged image was not fetched again" test "$(t_nginx_requests '/small.bin')" -eq 1
t_check "the database is consistent" sh -c "sqlite3 '$GW_DB' 'PRAGMA integrity_check' | grep -qx ok"
t_done
