#!/bin/bash
# deltagate deploy end to end: mosquitto, deltagate-shadowd, deltagated
# (exec devices, trusted key) and nginx secure_link over the staged
# directory. A signed rollout in waves; a re-run stages nothing twice; a
# rollout stopped by its failure threshold with the rest untouched; kill -9
# mid-rollout then --resume; --cancel restores the previous desired state.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher
STAGE="$NGINX_WWW/stage"
STATE="$T_DIR/state"
printf '%s\n' "$NGINX_SECRET" > "$T_DIR/secret"
"$DELTAGATE" keygen "$T_DIR/op.pem" >/dev/null
head -c 200000 /dev/urandom > "$T_DIR/v1.bin"
cp "$T_DIR/v1.bin" "$T_DIR/v2.bin"
head -c 500 /dev/urandom | dd of="$T_DIR/v2.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
head -c 200000 /dev/urandom > "$T_DIR/v3.bin"
V1=$(t_sha "$T_DIR/v1.bin")
t_gw_cache_import "$T_DIR/v1.bin"

lines=()
for i in 0 1 2 3 4 5 6 7 8 9; do lines+=("w$i sha256=$V1 version=1"); done
for i in 0 1 2 3 4 5 6 7; do a=""; [ $i -lt 2 ] && a=" address=fail"; lines+=("f$i sha256=$V1 version=1$a"); done
lines+=("h1 sha256=$V1 address=hold" "h2 sha256=$V1 address=hold" "n1 sha256=$V1" "n2 sha256=$V1")
t_gw_conf "${lines[@]}"
echo "trusted-key $T_DIR/op.pub.pem" >> "$T_DIR/gw.conf"
t_check "deltagated starts (trusted key)" t_gw_start

# deploy_bg ARGS: deploy in the background, DPID its own process id
deploy_bg() {
	"$DELTAGATE" deploy --broker "$MQTT_URL" --state-dir "$STATE" --storage "file://$STAGE" \
		--base-url "$NGINX_URL/s/stage" --secret-file "$T_DIR/secret" --sign-key "$T_DIR/op.pem" "$@" &
	DPID=$!
	T_PIDS="$T_PIDS $DPID"
}
deploy() {
	timeout 300 "$DELTAGATE" deploy --broker "$MQTT_URL" --state-dir "$STATE" --storage "file://$STAGE" \
		--base-url "$NGINX_URL/s/stage" --secret-file "$T_DIR/secret" --sign-key "$T_DIR/op.pem" "$@"
}
desired_job() { "$DELTAGATE" shadow --broker "$MQTT_URL" get "$1" 2>/dev/null | jq -r '.state.desired.jobId // "none"'; }
db() { sqlite3 "$STATE/deploy.db" "$1"; }

# --- a full rollout in three waves (1 + 4 + 5 devices), with a delta from v1
deploy --image "$T_DIR/v2.bin" --from "$T_DIR/v1.bin" --version 2.0 --job-id roll1 \
	--manifest-provider contoso --manifest-name pump-fw \
	--devices w0,w1,w2,w3,w4,w5,w6,w7,w8,w9 --waves 10%,50%,100% --wave-timeout 120 \
	--json > "$T_DIR/roll1.json" 2> "$T_DIR/roll1.err"; rc=$?
t_diag "$(tail -3 "$T_DIR/roll1.err")"
t_check "rollout: exit 0" test $rc -eq 0
t_check "rollout: 10 succeeded, 0 failed (--json)" jq -e '.succeeded == 10 and .failed == 0 and .waves == 3' "$T_DIR/roll1.json"
t_check "rollout: waves of 1, 4 and 5 devices" \
	test "$(jq -c '[.table[].wave] | group_by(.) | map(length)' "$T_DIR/roll1.json")" = "[1,4,5]"
t_check "every device holds v2" sh -c 'for i in 0 1 2 3 4 5 6 7 8 9; do cmp -s "$1/dev/w$i.bin" "$2" || exit 1; done' _ "$T_DIR" "$T_DIR/v2.bin"
t_check "the commands were signed (the gateway accepted signed commands)" \
	test "$(grep -c 'signed command accepted' "$T_DIR/gw.log")" -eq 10
t_check "the delta was used (resultCode 1, no full download)" \
	sh -c "$(declare -f t_gw_reported); DELTAGATE='$DELTAGATE' MQTT_URL='$MQTT_URL'; t_gw_reported w5 | jq -e '.resultCode == 1'"
# wave order: w0 (wave 1) ended before any device of wave 2 started
end0=$(awk '$1 == "end" && $2 == "w0" { print $3 }' "$T_DIR/dev/flash.log")
first2=$(awk '$1 == "start" && ($2 == "w1" || $2 == "w2" || $2 == "w3" || $2 == "w4") { print $3 }' "$T_DIR/dev/flash.log" | sort -n | head -1)
t_check "wave 2 started after wave 1 finished" test "$first2" -gt "$end0"
t_check "staged: the image, one delta and the manifest under content-hash names" \
	test "$(ls "$STAGE" | grep -c '^[0-9a-f]\{64\}\.img$')" -eq 1 -a "$(ls "$STAGE" | grep -c '\.delta$')" -eq 1 -a "$(ls "$STAGE" | grep -c '\.importmanifest\.json$')" -eq 1

V2=$(t_sha "$T_DIR/v2.bin")
M="$STAGE/$V2.importmanifest.json"
t_check "import manifest v5 staged next to the image" \
	jq -e '.manifestVersion == "5.0" and .updateId.provider == "contoso" and .updateId.version == "2.0"' "$M"
t_check "import manifest: the image and its delta with the source hash" \
	jq -e --arg img "$V2.img" --arg src "$(openssl dgst -sha256 -binary "$T_DIR/v1.bin" | openssl base64)" \
	'.files[0].filename == $img and (.files[0].relatedFiles[0].filename | endswith(".delta")) and .files[0].relatedFiles[0].properties["microsoft.sourceFileHash"] == $src' "$M"

# --- re-run: nothing staged twice
before=$(stat -c %Y%n "$STAGE"/* | sort)
deploy --image "$T_DIR/v2.bin" --from "$T_DIR/v1.bin" --version 2.0 --job-id roll1b --devices w0 \
	--manifest-provider contoso --manifest-name pump-fw \
	> /dev/null 2> "$T_DIR/roll1b.err"; rc=$?
t_check "re-run: exit 0" test $rc -eq 0
t_check "re-run: staged 0 bytes" grep -q 'staged 0 bytes' "$T_DIR/roll1b.err"
t_check "re-run: the staged files are the same files" test "$(stat -c %Y%n "$STAGE"/* | sort)" = "$before"
deploy --image "$T_DIR/v2.bin" --version 2 --job-id roll1 --devices w0 >/dev/null 2>&1; rc=$?
t_check "an existing job id: exit 1" test $rc -eq 1

# --- a tampered or expired link of the staged image gets 403
url=$("$DELTAGATE" shadow --broker "$MQTT_URL" get w0 | jq -r .state.desired.softwareURL)
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$NGINX_CA" "$1"; }
t_check "the published link downloads (200)" test "$(code "$url")" = 200
t_check "a tampered link gets 403" test "$(code "$(echo "$url" | sed 's/md5=\(.\)/md5=\1Z/')")" = 403
t_check "a link with a moved expiry gets 403" test "$(code "$(echo "$url" | sed 's/expires=\([0-9]*\)/expires=1\1/')")" = 403

# --- the failure threshold: f0 and f1 fail in wave 1, the rest stay untouched
for i in 2 3 4 5 6 7; do "$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update f$i '{"state":{"desired":{"jobId":"old"}}}'; done
deploy --image "$T_DIR/v3.bin" --version 3 --job-id roll2 --devices f0,f1,f2,f3,f4,f5,f6,f7 \
	--waves 25%,100% --abort-failure-rate 20% --wave-timeout 120 > "$T_DIR/roll2.out" 2> "$T_DIR/roll2.err"; rc=$?
t_diag "$(tail -2 "$T_DIR/roll2.err")"
t_check "threshold: exit 3" test $rc -eq 3
t_check "threshold: the table shows f0 or f1 failed, f2..f7 pending" \
	sh -c "grep -qE '^f[01] .* failed ' '$T_DIR/roll2.out' && [ \$(grep -cE '^f[2-7] .* pending ' '$T_DIR/roll2.out') -eq 6 ]"
t_check "threshold: the untouched devices still desire their old job" \
	sh -c "$(declare -f desired_job); DELTAGATE='$DELTAGATE' MQTT_URL='$MQTT_URL'; for i in 2 3 4 5 6 7; do [ \"\$(desired_job f\$i)\" = old ] || exit 1; done"
t_check "threshold: no untouched device was flashed" sh -c "! grep -qE '^start f[2-7] ' '$T_DIR/dev/flash.log'"
t_check "threshold: the state says stopped" test "$(db "SELECT status FROM rollout WHERE job_id = 'roll2'")" = stopped

# --- kill -9 mid-rollout, then --resume
touch "$T_DIR/dev/hold"
deploy_bg --image "$T_DIR/v3.bin" --version 3 --job-id roll3 --devices h1,h2,n1,n2 --waves 50%,100% \
	--wave-timeout 300 > "$T_DIR/roll3.out" 2> "$T_DIR/roll3.err"
t_check "kill: wave 1 is published (durable state)" \
	t_wait_for 30 sh -c "[ \"\$(sqlite3 '$STATE/deploy.db' \"SELECT count(*) FROM rdevice WHERE job_id = 'roll3' AND state = 'published'\")\" -eq 2 ]"
kill -9 $DPID; wait $DPID 2>/dev/null
t_check "kill: deploy is gone" sh -c "! kill -0 $DPID 2>/dev/null"
t_check "kill: wave 2 untouched" test "$(db "SELECT count(*) FROM rdevice WHERE job_id = 'roll3' AND state = 'pending'")" -eq 2
rm -f "$T_DIR/dev/hold"
deploy --resume roll3 > "$T_DIR/roll3r.out" 2> "$T_DIR/roll3r.err"; rc=$?
t_diag "$(tail -2 "$T_DIR/roll3r.err")"
t_check "resume: exit 0" test $rc -eq 0
t_check "resume: all four succeeded" test "$(grep -c ' succeeded ' "$T_DIR/roll3r.out")" -eq 4
t_check "resume: n1 and n2 hold v3" sh -c "cmp -s '$T_DIR/dev/n1.bin' '$T_DIR/v3.bin' && cmp -s '$T_DIR/dev/n2.bin' '$T_DIR/v3.bin'"
t_check "resume: each device flashed once" \
	sh -c "for d in h1 h2 n1 n2; do [ \$(grep -c \"^start \$d \" '$T_DIR/dev/flash.log') -eq 1 ] || exit 1; done"

# --- cancel: z1, z2 are behind no gateway (they never start)
for z in z1 z2; do "$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update $z '{"state":{"desired":{"jobId":"before","softwareVersion":"1"}}}'; done
deploy_bg --image "$T_DIR/v3.bin" --version 3 --job-id roll4 --devices z1,z2,z3,z4 --waves 50%,100% \
	--wave-timeout 300 > /dev/null 2>&1
t_check "cancel: wave 1 published" \
	t_wait_for 30 sh -c "[ \"\$(sqlite3 '$STATE/deploy.db' \"SELECT count(*) FROM rdevice WHERE job_id = 'roll4' AND state = 'published'\")\" -eq 2 ]"
t_check "cancel: z1 desires roll4" t_wait_for 10 sh -c "$(declare -f desired_job); DELTAGATE='$DELTAGATE' MQTT_URL='$MQTT_URL'; [ \"\$(desired_job z1)\" = roll4 ]"
kill -9 $DPID; wait $DPID 2>/dev/null
deploy --cancel roll4 > "$T_DIR/roll4.out" 2>&1; rc=$?
t_check "cancel: exit 0" test $rc -eq 0
t_check "cancel: z1 and z2 desire their previous job again" \
	t_wait_for 10 sh -c "$(declare -f desired_job); DELTAGATE='$DELTAGATE' MQTT_URL='$MQTT_URL'; [ \"\$(desired_job z1)\" = before ] && [ \"\$(desired_job z2)\" = before ]"
t_check "cancel: z1's softwareURL is gone, its version back" \
	sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get z1 | jq -e '.state.desired.softwareURL == null and .state.desired.softwareVersion == \"1\"'"
t_check "cancel: z3, z4 never got a desired state (no shadow: 404)" \
	sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get z3 2>&1 | grep -q 404 && '$DELTAGATE' shadow --broker '$MQTT_URL' get z4 2>&1 | grep -q 404"
for z in z1 z2; do t_diag "$z: $("$DELTAGATE" shadow --broker "$MQTT_URL" get $z | jq -c .state.desired)"; done
t_diag "$(db "SELECT device, state FROM rdevice WHERE job_id = 'roll4'" | tr '\n' ' ')"
t_check "cancel: all four are canceled in the state" \
	test "$(db "SELECT count(*) FROM rdevice WHERE job_id = 'roll4' AND state = 'canceled'")" -eq 4
deploy --resume nosuchjob >/dev/null 2>&1; rc=$?
t_check "resume of an unknown job: exit 1" test $rc -eq 1

t_done
