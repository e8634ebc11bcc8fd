#!/bin/bash
# Security of the coap driver: DTLS with per-device PSK (a wrong key gets no
# byte; identity must match the id it acts for), /fw tokens bound to one
# device and job (another device's 4.03, expired 4.01, forged or unknown
# 4.04), unknown registrations 4.03, malformed and oversized requests 4.xx,
# garbage datagrams - and the daemon keeps serving.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher

W=$NGINX_WWW
head -c 50000 /dev/urandom > "$W/v2.bin"
t_coap_conf "s1 driver=coap psk=text:key-one" "s2 driver=coap psk=hex:6b65792d74776f" \
	"s3 driver=coap psk=text:key-three dtls=optional" "o1 driver=coap"
t_check "--test-config never prints a PSK" sh -c \
	"'$DELTAGATED' -c '$T_DIR/gw.conf' --test-config > '$T_DIR/test-config.out' && grep -q 'psk=<redacted>' '$T_DIR/test-config.out' && ! grep -Eq 'key-one|key-three|6b65792d74776f|$COAP_SECRET' '$T_DIR/test-config.out'"
t_check "deltagated starts with CoAP and DTLS endpoints" t_gw_start
t_check "the gateway listens for CoAP and DTLS" t_coap_wait_log 5 "DTLS 127.0.0.1:$COAPS_PORT"

URL=$(t_signed_url v2.bin 600)
for d in s1 o1; do t_gw_command $d job$d "$URL" "$W/v2.bin"; done
t_check "both deliveries start" t_wait_for 30 sh -c "grep -q 's1: coap: delivering' '$T_DIR/gw.log' && grep -q 'o1: coap: delivering' '$T_DIR/gw.log'"

# s1 over DTLS with its key: state and image
"$COAP_CLIENT" -u s1 -k key-one -o "$T_DIR/s1.json" "$COAPS_URL/state/s1" 2>/dev/null
t_check "s1 reads its state over DTLS; the URL is coaps" \
	jq -e ".jobId == \"jobs1\" and (.softwareURL | startswith(\"coaps://127.0.0.1:$COAPS_PORT/fw/\"))" "$T_DIR/s1.json"
S1URL=$(jq -r .softwareURL "$T_DIR/s1.json")
"$COAP_CLIENT" -u s1 -k key-one -o "$T_DIR/s1.bin" "$S1URL" 2>/dev/null
t_check "s1 pulls its image over DTLS (same bytes)" cmp "$T_DIR/s1.bin" "$W/v2.bin"

# a wrong key gets nothing
rm -f "$T_DIR/wrong.bin" "$T_DIR/wrong.json"
"$COAP_CLIENT" -B 3 -u s1 -k key-wrong -o "$T_DIR/wrong.bin" "$S1URL" >/dev/null 2>&1
"$COAP_CLIENT" -B 3 -u s1 -k key-wrong -o "$T_DIR/wrong.json" "$COAPS_URL/state/s1" >/dev/null 2>&1
t_check "a wrong PSK gets no byte of the image" sh -c "[ ! -s '$T_DIR/wrong.bin' ]"
t_check "a wrong PSK gets no state either" sh -c "[ ! -s '$T_DIR/wrong.json' ]"
"$COAP_CLIENT" -B 3 -u nobody -k key-one -o "$T_DIR/nobody.bin" "$S1URL" >/dev/null 2>&1
t_check "an unknown identity gets nothing" sh -c "[ ! -s '$T_DIR/nobody.bin' ]"
t_check "the gateway logged the refused identity" t_coap_wait_log 5 "unknown identity refused"

# identities and ids
S1PATH=${S1URL#coaps://*/}
t_check "s1 over plain UDP: 4.01 (DTLS required)" sh -c "'$COAP_CLIENT' -o - '$COAP_URL/state/s1' 2>&1 | grep -q '4.01'"
t_check "s1's token over plain UDP: 4.01, no bytes" sh -c "'$COAP_CLIENT' -o - '$COAP_URL/$S1PATH' 2>&1 | grep -q '^4.01'"
t_check "s2 (its own key) with s1's token: 4.03" sh -c "'$COAP_CLIENT' -u s2 -k key-two -o - '$S1URL' 2>&1 | grep -q '^4.03'"
t_check "s2 reading s1's state: 4.03" sh -c "'$COAP_CLIENT' -u s2 -k key-two -o - '$COAPS_URL/state/s1' 2>&1 | grep -q '^4.03'"
t_check "s2 registering as s1 over DTLS: 4.03" sh -c "'$COAP_CLIENT' -u s2 -k key-two -m post -e '{}' -o - '$COAPS_URL/rd?ep=s1' 2>&1 | grep -q '^4.03'"
t_check "s2 reporting for s1: 4.03, and s1's job goes on" sh -c "'$COAP_CLIENT' -u s2 -k key-two -m post -e 'jobID:jobs1 FAILURE' -o - '$COAPS_URL/state/s1' 2>&1 | grep -q '^4.03'"
t_check "s3 (dtls=optional) may register over plain UDP" sh -c "! '$COAP_CLIENT' -m post -e '{}' -o - '$COAP_URL/rd?ep=s3' 2>&1 | grep -q '^4\.'"
t_check "an unconfigured id cannot register: 4.03" sh -c "'$COAP_CLIENT' -m post -e '{}' -o - '$COAP_URL/rd?ep=stranger' 2>&1 | grep -q '^4.03'"

# tokens: o1 over plain UDP
"$COAP_CLIENT" -o "$T_DIR/o1.json" "$COAP_URL/state/o1" 2>/dev/null
O1URL=$(jq -r .softwareURL "$T_DIR/o1.json")
O1PATH=${O1URL#coap://*/}
"$COAP_CLIENT" -o "$T_DIR/o1.bin" "$O1URL" 2>/dev/null
t_check "o1 pulls its image with its token" cmp "$T_DIR/o1.bin" "$W/v2.bin"
t_check "s1 (DTLS) with o1's token: 4.03" sh -c "'$COAP_CLIENT' -u s1 -k key-one -o - '$COAPS_URL/$O1PATH' 2>&1 | grep -q '^4.03'"
mac_of() { printf '%s' "$1" | openssl dgst -sha256 -mac HMAC -macopt "key:$2" -binary | base64 | tr '+/' '-_' | tr -d '=\n'; }
PAST=$(( $(date +%s) - 60 ))
t_check "an expired token of o1 (right HMAC): 4.01" sh -c \
	"'$COAP_CLIENT' -o - '$COAP_URL/fw/$(mac_of "o1|jobo1|$PAST" "$COAP_SECRET").$PAST' 2>&1 | grep -q '^4.01'"
FUT=$(( $(date +%s) + 600 ))
t_check "a token made with another secret: 4.04" sh -c \
	"'$COAP_CLIENT' -o - '$COAP_URL/fw/$(mac_of "o1|jobo1|$FUT" "not-the-secret").$FUT' 2>&1 | grep -q '^4.04'"
t_check "a token for another job of o1: 4.04" sh -c \
	"'$COAP_CLIENT' -o - '$COAP_URL/fw/$(mac_of "o1|jobX|$FUT" "$COAP_SECRET").$FUT' 2>&1 | grep -q '^4.04'"

# malformed and oversized requests
head -c 3000 /dev/urandom | base64 -w0 > "$T_DIR/big.txt"
t_check "/rd without ep: 4.00" sh -c "'$COAP_CLIENT' -m post -e '{}' -o - '$COAP_URL/rd' 2>&1 | grep -q '^4.00'"
t_check "/rd with a bad id: 4.00" sh -c "'$COAP_CLIENT' -m post -e '{}' -o - '$COAP_URL/rd?ep=a/b' 2>&1 | grep -q '^4.00'"
t_check "/rd with broken JSON: 4.00" sh -c "'$COAP_CLIENT' -m post -e '{\"version\":' -o - '$COAP_URL/rd?ep=o1' 2>&1 | grep -q '^4.00'"
t_check "/rd with szx 9: 4.00" sh -c "'$COAP_CLIENT' -m post -e '{\"szx\":9}' -o - '$COAP_URL/rd?ep=o1' 2>&1 | grep -q '^4.00'"
t_check "/rd with a 4 KB body: 4.xx" sh -c "'$COAP_CLIENT' -m post -f '$T_DIR/big.txt' -o - '$COAP_URL/rd?ep=o1' 2>&1 | grep -q '^4\.'"
t_check "a report that is neither JSON nor jobID: 4.00" sh -c "'$COAP_CLIENT' -m post -e 'hello' -o - '$COAP_URL/state/o1' 2>&1 | grep -q '^4.00'"
t_check "an oversized report: 4.xx" sh -c "'$COAP_CLIENT' -m post -f '$T_DIR/big.txt' -o - '$COAP_URL/state/o1' 2>&1 | grep -q '^4\.'"
t_check "/fw/garbage: 4.04" sh -c "'$COAP_CLIENT' -o - '$COAP_URL/fw/garbage' 2>&1 | grep -q '^4.04'"
t_check "/fw/<mac>.<huge expiry>: 4.04" sh -c "'$COAP_CLIENT' -o - '$COAP_URL/fw/abc.99999999999999999999999' 2>&1 | grep -q '^4.04'"
t_check "a block beyond the image: 4.02" sh -c "'$COAP_CLIENT' -b 500,1024 -o - '$O1URL' 2>&1 | grep -q '^4.02'"
t_check "an unknown path: 4.04" sh -c "'$COAP_CLIENT' -o - '$COAP_URL/nothing/here' 2>&1 | grep -q '^4.04'"
for i in 1 2 3 4 5 6 7 8; do head -c $((i * 97)) /dev/urandom > /dev/udp/127.0.0.1/$COAP_PORT; done
printf '\x40\x01\x00\x01\xff' > /dev/udp/127.0.0.1/$COAP_PORT
head -c 1400 /dev/urandom > /dev/udp/127.0.0.1/$COAPS_PORT
t_check "after garbage datagrams the gateway still serves o1's image" sh -c \
	"'$COAP_CLIENT' -o '$T_DIR/o1b.bin' '$O1URL' 2>/dev/null; cmp '$T_DIR/o1b.bin' '$W/v2.bin'"
"$COAP_CLIENT" -u s1 -k key-one -m post -e 'jobID:jobs1 SUCCESS' "$COAPS_URL/state/s1" >/dev/null 2>&1
t_check "s1's own report over DTLS completes its job" t_gw_wait_status s1 jobs1 SUCCEEDED 30
t_check "no PSK or token in the gateway's log" sh -c "! grep -Eq 'key-one|key-two|6b65792d74776f|/fw/' '$T_DIR/gw.log'"
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
