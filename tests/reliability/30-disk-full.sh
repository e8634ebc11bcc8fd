#!/bin/bash
# Disk full: ENOSPC at a cache insert and at a database commit (fault
# points), and a real full file system (the cache on a tmpfs of a few MiB).
# The round's jobs fail with the no-space result code 0x90C00007, the
# gateway stays up, and the next round succeeds once there is space again;
# nothing in the cache or the databases is corrupt.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"
C_SIZE=${C_SIZE:-1048576}
# a small gateway: the quota leaves room for a rebuild and a download in flight
C_CONF_EXTRA="cache-quota 6M"
. "$top_srcdir/tests/reliability/lib-campaign.sh"

# the cache on its own small file system
mkdir -p "$GW_CACHE"
if ! mount -t tmpfs -o size=10m tmpfs "$GW_CACHE"; then
	t_fail "cannot mount a tmpfs for the cache (this test needs root)"
	t_done
fi
trap 'umount -l "$GW_CACHE" 2>/dev/null; t_cleanup' EXIT

NOSPACE=$(( 0x90C00007 ))
reported_of() { c_shadow_reported "$1"; }
c_shadow_reported() { "$DELTAGATE" shadow --broker "$MQTT_URL" --timeout 5 get "$1" 2>/dev/null | jq -c '.state.reported'; }
# every device of the round failed with the no-space code
all_nospace() {
	_b=""
	for _d in $C_DEVICES; do
		[ "$(c_final_of "$_d" "$1")" = FAILED ] || _b="$_b $_d:$(c_final_of "$_d" "$1")"
		_x=$(grep "^state/$_d/update " "$T_DIR/trace" | grep -F "\"jobId\":\"$1\"" | grep -F '"FAILED"' |
			sed -n 's/.*"extendedResultCode":\([0-9]*\).*/\1/p' | tail -1)
		[ "$_x" = "$NOSPACE" ] || _b="$_b $_d:ext=$_x"
	done
	[ -z "$_b" ] || { echo "#$_b"; return 1; }
}
# the devices still run their image, untouched
untouched() { # the last good round (r0: none)
	for _d in $C_DEVICES; do
		_w="$T_DIR/img/$1.bin"
		[ "$_d" = d2 ] && [ "$1" != r0 ] && _w="$T_DIR/img/$1-full.bin"
		[ "$_d" = d3 ] && _w="$T_DIR/img/r0.bin"
		cmp -s "$(c_image "$_d")" "$_w" || { echo "# $_d differs from $_w"; return 1; }
	done
}

c_setup
gw_up() { ! t_is_gone "$GW_PID"; }

# 1. ENOSPC at every cache insert of the round
t_check "ENOSPC at cache inserts" t_fault_on "$GW_PID" cache/insert/before-fsync ENOSPC
c_round full1
t_check "full1: every device reported" c_wait_final full1 120
t_check "full1: every job failed with 0x90C00007 (no space)" all_nospace full1
t_check "full1: the devices kept their images" untouched r0
t_check "the gateway stays up" gw_up
t_fault_off "$GW_PID" cache/insert/before-fsync
C_PREV=$C_OLD
c_round ok1
t_check "ok1: the next round ends" c_wait_final ok1 120
c_check ok1
GOOD=ok1

# 2. the file system really is full: a filler leaves less than an image
used=$(df -B1 --output=used "$GW_CACHE" | tail -1)
avail=$(df -B1 --output=avail "$GW_CACHE" | tail -1)
t_diag "cache fs: $used bytes used, $avail available"
head -c $(( avail - C_SIZE / 2 )) /dev/zero > "$GW_CACHE/filler" 2>/dev/null
t_diag "after the filler: $(df -B1 --output=avail "$GW_CACHE" | tail -1) bytes available"
c_round full2
t_check "full2: every device reported" c_wait_final full2 120
t_check "full2: every job failed with 0x90C00007 (no space)" all_nospace full2
t_check "full2: the devices kept their images" untouched "$GOOD"
t_check "the gateway stays up on a full disk" gw_up
rm -f "$GW_CACHE/filler"
t_diag "space back: $(df -B1 --output=avail "$GW_CACHE" | tail -1) bytes available; $(ls -la "$GW_CACHE" "$GW_CACHE"/.partial "$GW_CACHE"/default 2>&1 | tr '\n' ' ')"
C_PREV=$C_OLD
c_round ok2
t_check "ok2: the round after space came back ends" c_wait_final ok2 120
c_check ok2

# 3. ENOSPC at one group commit of the gateway's database: kept, retried
t_check "ENOSPC at the next commit" t_fault_on "$GW_PID" store/batch-commit ENOSPC onetime
c_round db3
t_check "db3: the round ends" c_wait_final db3 120
t_check "the gateway stays up after a failed commit" gw_up
c_check db3

c_check_end
t_done
