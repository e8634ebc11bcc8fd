#!/bin/bash
# deltagate deploy --gateway GW: every device behind a gateway, as the
# gateway's own shadow lists them (reported.devices, published at start and
# after SIGHUP); a gateway that does not answer is an error, nothing is
# published; deltagate status --watch refreshes (several reports).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher
printf '%s\n' "$NGINX_SECRET" > "$T_DIR/secret"
head -c 100000 /dev/urandom > "$T_DIR/v2.bin"
t_gw_conf "g1 version=1" "g2 version=1" "g3 version=1"
t_check "deltagated starts" t_gw_start
gw_devices() { "$DELTAGATE" shadow --broker "$MQTT_URL" get "${GW_ID:-gw1}" 2>/dev/null | jq -c '.state.reported.devices'; }
devices_are() { [ "$(gw_devices)" = "$1" ]; }
has_device() { gw_devices | jq -e "index(\"$1\")" >/dev/null; }
t_check "the gateway's shadow lists its devices" t_wait_for 30 devices_are '["g1","g2","g3"]'
t_diag "reported.devices: $(gw_devices)"

# a device added by SIGHUP joins the list
sed -i 's/^device "g3 version=1"$/device "g3 version=1"\ndevice "g4 version=1"/' "$T_DIR/gw.conf"
grep -q '"g4 ' "$T_DIR/gw.conf" || echo 'device "g4 version=1"' >> "$T_DIR/gw.conf"
kill -HUP "$GW_PID"
t_check "after SIGHUP the list has the new device" t_wait_for 30 has_device g4

deploy() {
	timeout 300 "$DELTAGATE" deploy --broker "$MQTT_URL" --state-dir "$T_DIR/state" --storage "file://$NGINX_WWW/stage" \
		--base-url "$NGINX_URL/s/stage" --secret-file "$T_DIR/secret" "$@"
}
deploy --image "$T_DIR/v2.bin" --version 2.0 --job-id gwroll --gateway gw1 --wave-timeout 120 \
	--json > "$T_DIR/roll.json" 2> "$T_DIR/roll.err"; rc=$?
t_diag "$(tail -2 "$T_DIR/roll.err")"
t_check "deploy --gateway gw1: exit 0" test $rc -eq 0
t_check "deploy --gateway gw1: the 4 devices it serves, all succeeded" jq -e '.succeeded == 4 and .failed == 0' "$T_DIR/roll.json"
t_check "every device behind gw1 holds the image" sh -c 'for d in g1 g2 g3 g4; do cmp -s "$1/dev/$d.bin" "$2" || exit 1; done' _ "$T_DIR" "$T_DIR/v2.bin"

# links bound to the gateway's address (nginx location /b/ checks
# $remote_addr): bound to 127.0.0.1, the gateway downloads; bound to
# another address, nginx refuses it and the job fails with the fetch's 403
head -c 90000 /dev/urandom > "$T_DIR/v3.bin"
deploy --image "$T_DIR/v3.bin" --version 3.0 --job-id bound --devices g1 --base-url "$NGINX_URL/b/stage" \
	--link-client-ip 127.0.0.1 --wave-timeout 120 --json > "$T_DIR/bound.json" 2>/dev/null
t_check "deploy --link-client-ip 127.0.0.1: the gateway downloads it (succeeded)" jq -e '.succeeded == 1' "$T_DIR/bound.json"
t_check "the bound link carries the address-bound hash (nginx /b/ served it)" \
	grep -q 'GET /b/stage/[0-9a-f]*\.img?md5=[^ ]* HTTP/1.1" 200' "$NGINX_ACCESS"
head -c 90000 /dev/urandom > "$T_DIR/v4.bin"
deploy --image "$T_DIR/v4.bin" --version 4.0 --job-id elsewhere --devices g2 --base-url "$NGINX_URL/b/stage" \
	--link-client-ip 192.0.2.7 --wave-timeout 120 --json > "$T_DIR/elsewhere.json" 2>/dev/null
t_check "bound to 192.0.2.7: the job fails (nginx 403 to the gateway)" jq -e '.failed == 1' "$T_DIR/elsewhere.json"
t_check "... with the fetch's 'forbidden' code 0x90100104" sh -c \
	"\"$DELTAGATE\" shadow --broker '$MQTT_URL' get g2 | jq -e '.state.reported.extendedResultCode == 2416967940' >/dev/null"
t_check "--link-client-ip with a bad address is refused (exit 2)" sh -c \
	"\"$DELTAGATE\" deploy --image '$T_DIR/v4.bin' --version 5 --devices g1 --storage file:///tmp --base-url x --secret-file '$T_DIR/secret' --link-client-ip 300.1.1.1 >/dev/null 2>&1; [ \$? -eq 2 ]"

# a gateway that does not exist (no shadow): an error, nothing published
deploy --image "$T_DIR/v2.bin" --version 3.0 --job-id nogw --gateway gw-nowhere > /dev/null 2> "$T_DIR/nogw.err"; rc=$?
t_check "deploy --gateway of an unknown gateway fails (exit 1)" test $rc -eq 1
t_check "... saying which gateway" grep -q 'gw-nowhere' "$T_DIR/nogw.err"
t_check "... and no device got a command" sh -c "! \"$DELTAGATE\" shadow --broker '$MQTT_URL' get g1 | grep -q nogw"
t_check "--gateway and --devices together are refused (exit 2)" sh -c \
	"\"$DELTAGATE\" deploy --image '$T_DIR/v2.bin' --version 3 --gateway gw1 --devices g1 --storage file:///tmp >/dev/null 2>&1; [ \$? -eq 2 ]"

# status --watch: it refreshes (two reports) until stopped
"$DELTAGATE" status --broker "$MQTT_URL" --gateway gw1 --watch > "$T_DIR/watch" 2>&1 &
WPID=$!
T_PIDS="$T_PIDS $WPID"
t_check "status --watch prints the roll-up again and again" t_wait_for 30 sh -c "[ \$(grep -c 'gwroll' '$T_DIR/watch') -ge 2 ]"
kill "$WPID"; wait "$WPID" 2>/dev/null
t_check "status --watch shows gwroll: 4 succeeded" sh -c "grep 'gwroll' '$T_DIR/watch' | tail -1 | grep -qw 4"
t_done
