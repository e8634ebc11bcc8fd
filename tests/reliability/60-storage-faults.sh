#!/bin/bash
# Storage faults in the middle of the update path: the storage answers
# 500 or 404, closes the connection, sends a body shorter than announced,
# serves an image whose SHA-256 is not the command's, and a delta that is
# cut short or damaged. Each job ends with the code that says why (the
# table of docs/gateway.md), the device keeps its image unless the full
# image could be installed, and the gateway goes on serving: a good
# command afterwards succeeds.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
NGINX_STATUSES="500"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
t_gw_flasher
W=$NGINX_WWW
head -c 1048576 /dev/urandom > "$T_DIR/old.bin"
cp "$T_DIR/old.bin" "$W/new.bin"
head -c 8192 /dev/urandom | dd of="$W/new.bin" bs=1 seek=300000 conv=notrunc 2>/dev/null
OLD=$(t_sha "$T_DIR/old.bin")
# a target of its own per device (jobs for one image share its download)
for d in s500 s404 sdrop sshort ssha dcut dbad good; do
	cp "$W/new.bin" "$W/t-$d.bin"
	printf '%-8s' "$d" | dd of="$W/t-$d.bin" bs=1 seek=4096 conv=notrunc 2>/dev/null
done
"$DELTAGATE" diff "$T_DIR/old.bin" "$W/t-dcut.bin" "$W/good.delta" >/dev/null
head -c $(( $(stat -c %s "$W/good.delta") / 2 )) "$W/good.delta" > "$W/cut.delta"
"$DELTAGATE" diff "$T_DIR/old.bin" "$W/t-dbad.bin" "$W/bad.delta" >/dev/null
printf 'XXXXXXXXXXXXXXXX' | dd of="$W/bad.delta" bs=1 seek=$(( $(stat -c %s "$W/bad.delta") / 2 )) conv=notrunc 2>/dev/null
head -c 500000 "$W/t-sshort.bin" > "$W/short-served.bin"
head -c 1048576 /dev/urandom > "$W/other.bin"
devs=""
for d in s500 s404 sdrop sshort ssha dcut dbad good; do devs="$devs|$d sha256=$OLD version=old"; done
IFS='|' read -r -a lines <<< "${devs#|}"
t_gw_conf "${lines[@]}"
t_gw_cache_import "$T_DIR/old.bin"
for d in s500 s404 sdrop sshort ssha dcut dbad good; do cp "$T_DIR/old.bin" "$T_DIR/dev/$d.bin"; done
t_check "deltagated starts" t_gw_start

# the command for a file, with the size and hash of another (what the
# storage should have served)
cmd() { # dev url file-with-the-right-size-and-hash [related]
	t_gw_command "$1" "job-$1" "$2" "$3" "${4:-}"
}
cmd s500 "$NGINX_URL/status/500" "$W/t-s500.bin"
cmd s404 "$NGINX_URL/nothing-here.bin" "$W/t-s404.bin"
cmd sdrop "$NGINX_URL/drop/t-sdrop.bin" "$W/t-sdrop.bin"
# short: the storage's file is cut, the command has the full size
cmd sshort "$NGINX_URL/short-served.bin" "$W/t-sshort.bin"
cmd ssha "$NGINX_URL/other.bin" "$W/t-ssha.bin"
# a delta cut short (declared whole) and a damaged one (declared as damaged:
# its own hash matches, it cannot rebuild the target)
rel_cut="[{\"url\":\"$NGINX_URL/cut.delta\",\"sha256\":\"$(t_sha "$W/good.delta")\",\"size\":$(stat -c %s "$W/good.delta"),\"sourceSha256\":\"$OLD\"}]"
cmd dcut "$NGINX_URL/t-dcut.bin" "$W/t-dcut.bin" "$rel_cut"
GW_VERSION=bad t_gw_command dbad job-dbad "$NGINX_URL/t-dbad.bin" "$W/t-dbad.bin" \
	"$(t_gw_related "$NGINX_URL/bad.delta" "$W/bad.delta" "$OLD")"

ext() { t_gw_reported "$1" | jq -r '.extendedResultCode'; }
rc() { t_gw_reported "$1" | jq -r '.resultCode'; }
hex() { printf '0x%08X' "$1"; }
for d in s500 s404 sdrop sshort ssha; do
	t_check "$d: fails" t_gw_wait_status "$d" "job-$d" FAILED 120
done
t_check "500: the full image's download failed, 5xx (0x90100107)" test "$(hex "$(ext s500)")" = 0x90100107
t_check "404: not found (0x90100105)" test "$(hex "$(ext s404)")" = 0x90100105
t_check "connection closed: network (0x90100108)" test "$(hex "$(ext sdrop)")" = 0x90100108
t_check "short body: $(hex "$(ext sshort)") is a download failure (0x901001xx)" sh -c "[ \$(( $(ext sshort) >> 8 )) -eq $(( 0x901001 )) ]"
t_check "wrong SHA-256: content does not match (0x90100097)" test "$(hex "$(ext ssha)")" = 0x90100097
for d in s500 s404 sdrop sshort ssha; do
	t_check "$d keeps its old image" cmp "$T_DIR/dev/$d.bin" "$T_DIR/old.bin"
done
for d in dcut dbad; do
	t_check "$d: succeeds after the full-image fallback" t_gw_wait_status "$d" "job-$d" SUCCEEDED 120
	t_check "$d: holds the new image" cmp "$T_DIR/dev/$d.bin" "$W/t-$d.bin"
	t_check "$d: outcome 2 (resultCode 2)" test "$(rc "$d")" = 2
done
t_check "cut delta: why is the delta's download ($(hex "$(ext dcut)"), 0x908001xx)" sh -c "[ \$(( $(ext dcut) >> 8 )) -eq $(( 0x908001 )) ]"
t_check "damaged delta: why is the delta processor ($(hex "$(ext dbad)"), 0x90A...)" sh -c "[ \$(( $(ext dbad) >> 20 )) -eq $(( 0x90A )) ]"
# (every job has ended; a failed download's partial is removed as its
# transfer is torn down, which may come just after the job's report)
t_check "no partial download is left" t_wait_for 30 sh -c "[ -z \"\$(ls -A '$GW_CACHE/.partial' 2>/dev/null)\" ]"
t_check "the gateway is up" kill -0 "$GW_PID"
cmd good "$NGINX_URL/t-good.bin" "$W/t-good.bin"
t_check "a good command afterwards succeeds" t_gw_wait_status good job-good SUCCEEDED 60
t_check "the gateway's database is intact" sh -c "sqlite3 '$GW_DB' 'PRAGMA integrity_check' | grep -qx ok"
t_done
