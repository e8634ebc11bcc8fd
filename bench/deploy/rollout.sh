#!/bin/bash
# bench/deploy/rollout.sh - deploy's own cost for a rollout of N devices
# through one gateway (default 1000): its wall time, its CPU time (user +
# sys) and the requests it publishes upstream, against the reference of
# doing it by hand: one `deltagate shadow update` per device (CPU and wall
# time of publishing alone, no waiting for results).
#   bench/deploy/rollout.sh [DEVICES]        (after a build in ./build)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-1000}
export top_builddir=${BUILD_DIR:-$top/build} top_srcdir=$top
[ -x "$top_builddir/src/deltagate" ] || { echo "build first" >&2; exit 1; }
. "$top/tests/lib.sh"
. "$top/tests/lib-nginx.sh"
. "$top/tests/lib-gateway.sh"

echo "command: bench/deploy/rollout.sh $N"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1 /proc/loadavg)"
t_start_mosquitto; t_start_shadowd --log-level warn; t_start_nginx
t_gw_flasher
printf '%s\n' "$NGINX_SECRET" > "$T_DIR/secret"
"$DELTAGATE" keygen "$T_DIR/op.pem" >/dev/null
head -c 65536 /dev/urandom > "$T_DIR/v1.bin"
head -c 65536 /dev/urandom > "$T_DIR/v2.bin"
V1=$(t_sha "$T_DIR/v1.bin")
devs=(); ids=""
for i in $(seq 1 "$N"); do devs+=("r$i sha256=$V1"); ids="$ids r$i"; done
t_gw_conf "${devs[@]}"
sed -i 's/^log-level debug/log-level info/; s/^report-rate 200/report-rate 5000/; s/^progress-interval 50/progress-interval 5000/' "$T_DIR/gw.conf"
{ echo "max-deliveries 32"; echo "trusted-key $T_DIR/op.pub.pem"; } >> "$T_DIR/gw.conf"
t_gw_start
echo "$ids" > "$T_DIR/devices"

/usr/bin/time -f '%e %U %S' -o "$T_DIR/time" "$DELTAGATE" deploy --broker "$MQTT_URL" \
	--state-dir "$T_DIR/op" --storage "file://$NGINX_WWW/st" --base-url "$NGINX_URL/s/st" \
	--secret-file "$T_DIR/secret" --sign-key "$T_DIR/op.pem" --image "$T_DIR/v2.bin" --version 2 \
	--job-id bench --devices-file "$T_DIR/devices" --waves 10%,100% --wave-timeout 3600 --json \
	> "$T_DIR/deploy.json" 2>/dev/null
read -r wall user sys < "$T_DIR/time"
ok=$(jq .succeeded "$T_DIR/deploy.json"); get=$(jq .requests.get "$T_DIR/deploy.json"); upd=$(jq .requests.update "$T_DIR/deploy.json")
echo "deploy: $N devices, 2 waves (10%, 100%), signed: $ok succeeded"
echo "deploy: wall $wall s (including every device's update), CPU user $user s + sys $sys s"
echo "deploy: upstream requests: $get shadow gets + $upd desired-state updates = $((get + upd)) ($(awk "BEGIN {printf \"%.2f\", ($get + $upd) / $N}") per device)"

# reference: the same number of desired states published by hand
desired=$(jq -c '.state.desired' <<< "$("$DELTAGATE" shadow --broker "$MQTT_URL" get r1)" | jq -c '.jobId = "ref" | .signature = null')
/usr/bin/time -f '%e %U %S' -o "$T_DIR/time" sh -c "for i in \$(seq 1 $N); do '$DELTAGATE' shadow --broker '$MQTT_URL' --quiet update nogw\$i '{\"state\":{\"desired\":$desired}}'; done"
read -r rwall ruser rsys < "$T_DIR/time"
echo "reference (one 'deltagate shadow update' per device, publishing only): wall $rwall s, CPU user $ruser s + sys $rsys s"
echo "ratio of CPU time deploy / reference: $(awk "BEGIN {printf \"%.3f\", ($user + $sys) / ($ruser + $rsys)}")"
