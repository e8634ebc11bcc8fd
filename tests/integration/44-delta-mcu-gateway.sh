#!/bin/bash
# Microcontroller firmware by delta through the gateway (issue 15): real
# mosquitto, deltagate-shadowd, nginx (HTTPS, secure_link) and deltagated
# with simulated CoAP devices (examples/coap-device). The images come from
# tests/mcu-fw.py (no cross compiler): a Cortex-M image (vector table,
# Thumb-2 BL calls, literal pools of absolute pointers, flash at
# 0x08000000) and an ESP32-C3 app image (magic 0xE9, RV32 code), each v2
# with a function inserted near the start so that everything after it
# moves. Checks that `deltagate diff` takes the MCU prediction (item kind 8,
# bsdiff-mcu-predict) and that it beats `--arch none`; then that the gateway
# rebuilds v2 from its cached v1 and the kind-8 delta, pushes it to the
# device (outcome 1, via delta, nginx served the delta and not the image),
# and that the same kind of delta for a source the cache lacks falls back
# to the full image (outcome 2, 0x90800008).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"

MKFW="$top_srcdir/tests/mcu-fw.py"
F=$T_DIR/fw
mkdir -p "$F"

# --- the images and their deltas
for v in 1 2 3; do python3 "$MKFW" cortex-m $v "$F/cm-$v.bin" || t_fail "mcu-fw.py cortex-m $v"; done
for v in 1 2; do python3 "$MKFW" esp32c3 $v "$F/esp-$v.bin" || t_fail "mcu-fw.py esp32c3 $v"; done
t_diag "images: cortex-m $(stat -c %s "$F/cm-1.bin") -> $(stat -c %s "$F/cm-2.bin") bytes," \
	"esp32c3 $(stat -c %s "$F/esp-1.bin") -> $(stat -c %s "$F/esp-2.bin") bytes"

# mcu_delta NAME SOURCE TARGET ARCH: the delta with the prediction ($F/NAME.delta)
# and without (--arch none, $F/NAME-none.delta); checks the method, the item
# kind, the sizes and the round trip
mcu_delta() {
	_n=$1 _s=$2 _t=$3 _a=$4
	if "$DELTAGATE" diff --verbose "$_s" "$_t" "$F/$_n.delta" > "$F/$_n.diff" 2> "$F/$_n.diff.err"; then
		t_ok "$_n: deltagate diff"
	else
		t_fail "$_n: deltagate diff"; sed 's/^/# /' "$F/$_n.diff.err"
	fi
	t_diag "$_n: $(cat "$F/$_n.diff")"
	t_check "$_n: the generator chose bsdiff+$_a-predict" grep -q "bsdiff+$_a-predict\$" "$F/$_n.diff"
	"$DELTAGATE" inspect "$F/$_n.delta" > "$F/$_n.inspect"
	sed 's/^/# /' "$F/$_n.inspect"
	t_check "$_n: deltagate inspect lists a kind-8 item (bsdiff-mcu-predict)" \
		grep -qE '^  [0-9]+: bsdiff-mcu-predict ' "$F/$_n.inspect"
	"$DELTAGATE" diff --arch none "$_s" "$_t" "$F/$_n-none.delta" 2>/dev/null
	"$DELTAGATE" inspect "$F/$_n-none.delta" > "$F/$_n-none.inspect"
	t_check "$_n: with --arch none no item is kind 8" \
		sh -c "! grep -q bsdiff-mcu-predict '$F/$_n-none.inspect'"
	_with=$(stat -c %s "$F/$_n.delta"); _without=$(stat -c %s "$F/$_n-none.delta")
	t_diag "$_n: delta $_with bytes with the MCU prediction, $_without with --arch none" \
		"($(( _with * 100 / _without ))%), target $(stat -c %s "$_t") bytes"
	t_check "$_n: the kind-8 delta is under 2/3 of the one without ($_with < $_without * 2/3)" \
		test $(( _with * 3 )) -lt $(( _without * 2 ))
	"$DELTAGATE" apply "$_s" "$F/$_n.delta" "$F/$_n.out" 2>/dev/null
	t_check "$_n: deltagate apply rebuilds the target" cmp "$F/$_n.out" "$_t"
}
mcu_delta cm12 "$F/cm-1.bin" "$F/cm-2.bin" thumb2
mcu_delta esp12 "$F/esp-1.bin" "$F/esp-2.bin" rv32
mcu_delta cm13 "$F/cm-1.bin" "$F/cm-3.bin" thumb2

# --- the gateway end to end
t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher
W=$NGINX_WWW
cp "$F/cm-2.bin" "$F/cm-3.bin" "$F/esp-2.bin" "$F/cm12.delta" "$F/esp12.delta" "$F/cm13.delta" "$W/"
V1=$(t_sha "$F/cm-1.bin"); E1=$(t_sha "$F/esp-1.bin")
# a build the gateway never saw (its cache holds only the two v1 images)
OTHER=$(head -c 100 /dev/urandom | sha256sum | cut -d' ' -f1)
t_check "cortex-m v1 is imported into the gateway's cache" t_gw_cache_import "$F/cm-1.bin"
t_check "esp32c3 v1 is imported into the gateway's cache" t_gw_cache_import "$F/esp-1.bin"
t_coap_conf "m1 driver=coap sha256=$V1 version=1.0.3" "e1 driver=coap sha256=$E1 version=1.0.3" \
	"n1 driver=coap sha256=$OTHER version=0.9.0"
t_check "deltagated starts with the coap driver" t_gw_start
t_check "the gateway listens for CoAP" t_coap_wait_log 10 "coap: listening on 127.0.0.1:$COAP_PORT"
# the devices hold v1 (m1, e1) and the unknown build (n1)
for d in m1 e1 n1; do mkdir -p "$T_DIR/devices/$d"; done
cp "$F/cm-1.bin" "$T_DIR/devices/m1/image.bin"
cp "$F/esp-1.bin" "$T_DIR/devices/e1/image.bin"
head -c 100000 /dev/urandom > "$T_DIR/devices/n1/image.bin"
t_coap_sim --count 1 --id-prefix m --once --timeout 180 --version 1.0.3
SIMM=$SIM_PID
t_coap_sim --count 1 --id-prefix e --once --timeout 180 --version 1.0.3
SIME=$SIM_PID
t_coap_sim --count 1 --id-prefix n --once --timeout 180 --version 0.9.0
SIMN=$SIM_PID
t_check "the simulated devices register" t_wait_for 30 sh -c \
	"[ \$(grep -c 'coap: registered' '$T_DIR/gw.log') -ge 3 ]"
t_nginx_mark

# m1: cortex-m v1 -> v2 by the kind-8 delta; e1: esp32c3 v1 -> v2 likewise;
# n1: v3 with the cortex-m kind-8 delta offered for a source not cached
GW_VERSION=2.0.3 t_gw_command m1 jobM "$(t_signed_url cm-2.bin 600)" "$W/cm-2.bin" \
	"$(t_gw_related "$(t_signed_url cm12.delta 600)" "$W/cm12.delta" "$V1")"
GW_VERSION=2.0.3 t_gw_command e1 jobE "$(t_signed_url esp-2.bin 600)" "$W/esp-2.bin" \
	"$(t_gw_related "$(t_signed_url esp12.delta 600)" "$W/esp12.delta" "$E1")"
GW_VERSION=3.0.3 t_gw_command n1 jobN "$(t_signed_url cm-3.bin 600)" "$W/cm-3.bin" \
	"$(t_gw_related "$(t_signed_url cm13.delta 600)" "$W/cm13.delta" "$OTHER")"

t_check "m1 (cortex-m) succeeds" t_gw_wait_status m1 jobM SUCCEEDED 120
t_check "e1 (esp32c3) succeeds" t_gw_wait_status e1 jobE SUCCEEDED 120
t_check "n1 succeeds after the fallback" t_gw_wait_status n1 jobN SUCCEEDED 120
wait "$SIMM"; rcm=$?
wait "$SIME"; rce=$?
wait "$SIMN"; rcn=$?
t_check "the simulators finished (exit 0: $rcm $rce $rcn)" test "$rcm" -eq 0 -a "$rce" -eq 0 -a "$rcn" -eq 0

for d in m1 e1 n1; do t_gw_reported $d > "$T_DIR/rep.$d"; t_diag "$d: $(cat "$T_DIR/rep.$d")"; done
t_check "m1: outcome 1 (resultCode 1, extendedResultCode 0) with v2's hash and version" \
	jq -e ".resultCode == 1 and .extendedResultCode == 0 and .softwareSha256 == \"$(t_sha "$F/cm-2.bin")\" and .softwareVersion == \"2.0.3\"" "$T_DIR/rep.m1"
t_check "e1: outcome 1 (resultCode 1, extendedResultCode 0) with v2's hash" \
	jq -e ".resultCode == 1 and .extendedResultCode == 0 and .softwareSha256 == \"$(t_sha "$F/esp-2.bin")\"" "$T_DIR/rep.e1"
t_check "n1: outcome 2 (resultCode 2) with 0x90800008 (source not in the cache)" \
	jq -e ".resultCode == 2 and .extendedResultCode == $(( 0x90800008 )) and .softwareSha256 == \"$(t_sha "$F/cm-3.bin")\"" "$T_DIR/rep.n1"
t_check "m1 holds exactly cortex-m v2" cmp "$T_DIR/devices/m1/image.bin" "$F/cm-2.bin"
t_check "e1 holds exactly esp32c3 v2" cmp "$T_DIR/devices/e1/image.bin" "$F/esp-2.bin"
t_check "n1 holds exactly cortex-m v3" cmp "$T_DIR/devices/n1/image.bin" "$F/cm-3.bin"
via() { sqlite3 "$GW_DB" "SELECT coalesce(via, '-') FROM job WHERE device = '$1'"; }
via_m1=$(via m1); via_e1=$(via e1); via_n1=$(via n1)
t_diag "the gateway's job rows: m1 via $via_m1, e1 via $via_e1, n1 via $via_n1"
t_check "the gateway's job row: m1 via delta" test "$via_m1" = delta
t_check "the gateway's job row: e1 via delta" test "$via_e1" = delta
t_check "the gateway's job row: n1 via full" test "$via_n1" = full
t_check "the gateway's log: cortex-m v2 rebuilt from a delta" \
	grep -q "image $(t_sha "$F/cm-2.bin") ready (rebuilt from a delta" "$T_DIR/gw.log"
t_check "the gateway's log: esp32c3 v2 rebuilt from a delta" \
	grep -q "image $(t_sha "$F/esp-2.bin") ready (rebuilt from a delta" "$T_DIR/gw.log"

# what nginx served
for f in cm12.delta cm-2.bin esp12.delta esp-2.bin cm13.delta cm-3.bin; do
	t_diag "nginx /s/$f: $(t_nginx_requests "/s/$f\\?") request(s), $(t_nginx_bytes "/s/$f\\?") bytes"
done
t_check "m1: nginx served the whole delta, $(stat -c %s "$W/cm12.delta") bytes" \
	test "$(t_nginx_bytes '/s/cm12\.delta\?')" -eq "$(stat -c %s "$W/cm12.delta")"
t_check "m1: nginx never served the full image cm-2.bin" test "$(t_nginx_requests '/s/cm-2\.bin\?')" -eq 0
t_check "e1: nginx served the whole delta, $(stat -c %s "$W/esp12.delta") bytes" \
	test "$(t_nginx_bytes '/s/esp12\.delta\?')" -eq "$(stat -c %s "$W/esp12.delta")"
t_check "e1: nginx never served the full image esp-2.bin" test "$(t_nginx_requests '/s/esp-2\.bin\?')" -eq 0
t_check "n1: the delta was not downloaded" test "$(t_nginx_requests '/s/cm13\.delta\?')" -eq 0
t_check "n1: nginx served the full image cm-3.bin" \
	test "$(t_nginx_bytes '/s/cm-3\.bin\?')" -eq "$(stat -c %s "$W/cm-3.bin")"
t_check "the cache holds cortex-m v2 rebuilt from the delta" \
	sh -c "'$DELTAGATE' cache --root '$GW_CACHE' path --provider default '$F/cm-2.bin' | xargs cmp '$F/cm-2.bin'"
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
