#!/bin/bash
# deltagated end to end with real mosquitto, deltagate-shadowd and nginx
# (HTTPS, secure_link), devices behind the exec driver: a delta update, a
# full update, both fallbacks (delta fails to apply, source not cached),
# an expired URL, a corrupt download and a failing install, each with the
# result codes of the three outcomes; the roll-up on the gateway's shadow.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher

# images: v1 runs on the devices; v2..v6 are v1 with a few changes
W=$NGINX_WWW
head -c 262144 /dev/urandom > "$T_DIR/v1.bin"
for v in 2 3 4 5 6 7; do
	cp "$T_DIR/v1.bin" "$W/v$v.bin"
	for off in 1000 90000 200000; do
		head -c 300 /dev/urandom | dd of="$W/v$v.bin" bs=1 seek=$((off + v * 7)) conv=notrunc 2>/dev/null
	done
done
t_check "deltagate diff makes v1 -> v2" "$DELTAGATE" diff "$T_DIR/v1.bin" "$W/v2.bin" "$W/d12.delta"
t_check "deltagate diff makes v1 -> v4" "$DELTAGATE" diff "$T_DIR/v1.bin" "$W/v4.bin" "$W/d14.delta"
t_check "deltagate diff makes v1 -> v5" "$DELTAGATE" diff "$T_DIR/v1.bin" "$W/v5.bin" "$W/d15.delta"
t_diag "delta v1->v2: $(stat -c %s "$W/d12.delta") bytes for a $(stat -c %s "$W/v2.bin")-byte image"
# a delta that cannot be applied: right size and hash of its own, wrong content
head -c "$(stat -c %s "$W/d14.delta")" /dev/urandom > "$W/d14bad.delta"
V1=$(t_sha "$T_DIR/v1.bin")
OTHER=$(head -c 100 /dev/urandom | sha256sum | cut -d' ' -f1)

t_check "the source image v1 is imported into the gateway's cache" t_gw_cache_import "$T_DIR/v1.bin"
t_gw_conf "dA sha256=$V1 version=1" "dB sha256=$V1" "dC sha256=$V1" "dD sha256=$V1" \
	"dE sha256=$V1" "dF sha256=$V1" "dG sha256=$V1 address=fail"
t_check "deltagated starts" t_gw_start
t_nginx_mark

# A: delta update (source v1 cached) -> outcome 1 via the delta
t_gw_command dA jobA "$(t_signed_url v2.bin 600)" "$W/v2.bin" \
	"$(t_gw_related "$(t_signed_url d12.delta 600)" "$W/d12.delta" "$V1")"
# B: no delta offered -> plain full download
t_gw_command dB jobB "$(t_signed_url v3.bin 600)" "$W/v3.bin"
# C: the delta fails to apply -> full image, outcome 2 (delta processor code)
t_gw_command dC jobC "$(t_signed_url v4.bin 600)" "$W/v4.bin" \
	"$(t_gw_related "$(t_signed_url d14bad.delta 600)" "$W/d14bad.delta" "$V1")"
# D: the delta's source is not cached -> full image, outcome 2 (0x90800008)
t_gw_command dD jobD "$(t_signed_url v5.bin 600)" "$W/v5.bin" \
	"$(t_gw_related "$(t_signed_url d15.delta 600)" "$W/d15.delta" "$OTHER")"
# E: an expired pre-signed URL -> failure, 403 reported distinctly
t_gw_command dE jobE "$(t_signed_url v6.bin -60)" "$W/v6.bin"
# F: corrupt download (the file is not what softwareSha256 says)
cp "$W/v7.bin" "$T_DIR/v7-announced.bin"
head -c 10 /dev/urandom | dd of="$W/v7.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
t_gw_command dF jobF "$(t_signed_url v7.bin 600)" "$T_DIR/v7-announced.bin"
# G: the device's install fails -> outcome 3, device stays on v1
t_gw_command dG jobG "$(t_signed_url v2.bin 600)" "$W/v2.bin" \
	"$(t_gw_related "$(t_signed_url d12.delta 600)" "$W/d12.delta" "$V1")"

t_check "A succeeds" t_gw_wait_status dA jobA SUCCEEDED 60
t_check "B succeeds" t_gw_wait_status dB jobB SUCCEEDED 60
t_check "C succeeds after the fallback" t_gw_wait_status dC jobC SUCCEEDED 60
t_check "D succeeds after the fallback" t_gw_wait_status dD jobD SUCCEEDED 60
t_check "E fails" t_gw_wait_status dE jobE FAILED 60
t_check "F fails" t_gw_wait_status dF jobF FAILED 60
t_check "G fails" t_gw_wait_status dG jobG FAILED 60

for d in A B C D E F G; do t_gw_reported d$d > "$T_DIR/rep.$d"; t_diag "d$d: $(cat "$T_DIR/rep.$d")"; done
t_check "A: outcome 1: resultCode 1, extendedResultCode 0, new version and hash" \
	jq -e ".resultCode == 1 and .extendedResultCode == 0 and .softwareSha256 == \"$(t_sha "$W/v2.bin")\" and .softwareVersion == \"jobA\"" "$T_DIR/rep.A"
t_check "A: the device holds v2" cmp "$T_DIR/dev/dA.bin" "$W/v2.bin"
nd12=$(t_nginx_requests '/s/d12.delta'); nv2=$(t_nginx_requests '/s/v2.bin')
t_check "A: only the delta was downloaded, not v2 (d12: $nd12, v2: $nv2 requests)" test "$nd12" -ge 1 -a "$nv2" -eq 0
t_check "B: outcome 1 with the full image" jq -e '.resultCode == 1 and .extendedResultCode == 0' "$T_DIR/rep.B"
t_check "B: the device holds v3" cmp "$T_DIR/dev/dB.bin" "$W/v3.bin"
t_check "C: outcome 2: resultCode > 0, delta-processor code 0x90A....." \
	jq -e '.resultCode > 0 and (.extendedResultCode / 1048576 | floor) == 2314' "$T_DIR/rep.C"
t_check "C: the device holds v4 (full image)" cmp "$T_DIR/dev/dC.bin" "$W/v4.bin"
t_check "D: outcome 2 with 0x90800008 (source cache miss)" \
	jq -e '.resultCode > 0 and .extendedResultCode == 2424307720' "$T_DIR/rep.D"
t_check "D: the delta was not downloaded" test "$(t_nginx_requests '/s/d15.delta')" -eq 0
t_check "E: outcome 3 with the download handler's 403 code, version unchanged" \
	jq -e '.resultCode == 0 and .extendedResultCode == 2416967940 and (has("softwareSha256") | not)' "$T_DIR/rep.E"
t_check "E: the expired URL was requested once (403 is not retried)" test "$(t_nginx_requests '/s/v6.bin')" -eq 1
t_check "F: outcome 3 with the cache's hash-mismatch code" \
	jq -e ".resultCode == 0 and .extendedResultCode == $(( 0x90100000 + 151 ))" "$T_DIR/rep.F"
t_check "F: nothing was installed" test ! -e "$T_DIR/dev/dF.bin"
t_check "G: outcome 3 with the exec driver's exit code 0x90B00003" \
	jq -e '.resultCode == 0 and .extendedResultCode == 2427453443' "$T_DIR/rep.G"
t_check "G: the device still runs v1 (no image written)" test ! -e "$T_DIR/dev/dG.bin"
t_check "G shared A's image: d12 fetched once for both devices" test "$nd12" -eq 1

# the roll-up on the gateway's own shadow
t_wait_for 10 sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get gw1 | jq -e '.state.reported.jobs.jobC.succeededAfterFallback == 1'"
"$DELTAGATE" shadow --broker "$MQTT_URL" get gw1 > "$T_DIR/gw1"
t_check "roll-up: jobA 1 succeeded, jobC 1 after fallback, jobG 1 failed" \
	jq -e '.state.reported.jobs.jobA.succeeded == 1 and .state.reported.jobs.jobC.succeededAfterFallback == 1 and .state.reported.jobs.jobG.failed == 1 and .state.reported.jobs.jobG.inProgress == 0' "$T_DIR/gw1"
t_check "the cache holds v2 rebuilt from the delta" \
	sh -c "'$DELTAGATE' cache --root '$GW_CACHE' path --provider default '$W/v2.bin' | xargs cmp '$W/v2.bin'"
t_check "the gateway's log never shows a URL signature" sh -c "! grep -q 'md5=' '$T_DIR/gw.log'"
t_check "the outbox is empty (every report acknowledged)" \
	t_wait_for 10 sh -c "[ \$(sqlite3 '$GW_DB' 'SELECT count(*) FROM outbox') -eq 0 ]"
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
