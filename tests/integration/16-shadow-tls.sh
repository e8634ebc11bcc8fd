#!/bin/bash
# MQTT over TLS: the broker's certificate is verified against the given CA
# (a wrong CA never connects), and a client certificate is presented when
# the broker requires one.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"   # for t_make_ca / t_make_server_cert

mkdir -p "$T_DIR/tls" "$T_DIR/other"
t_make_ca "$T_DIR/tls" ca && t_make_server_cert "$T_DIR/tls" ca
t_make_ca "$T_DIR/other" ca
# a client certificate signed by the test CA
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T_DIR/tls/client.key" \
	-out "$T_DIR/tls/client.csr" -subj "/CN=deltagate-client" >/dev/null 2>&1
openssl x509 -req -in "$T_DIR/tls/client.csr" -CA "$T_DIR/tls/ca.pem" -CAkey "$T_DIR/tls/ca.key" \
	-CAcreateserial -days 2 -out "$T_DIR/tls/client.pem" >/dev/null 2>&1
t_check "client certificate made" test -s "$T_DIR/tls/client.pem"

P1=$(t_free_port); P2=$(t_free_port)
cat > "$T_DIR/mosquitto.conf" <<CONF
$(t_mosquitto_user)
per_listener_settings false
allow_anonymous true
persistence false
log_dest file $T_DIR/mosquitto.log
listener $P1 127.0.0.1
cafile $T_DIR/tls/ca.pem
certfile $T_DIR/tls/server.pem
keyfile $T_DIR/tls/server.key
listener $P2 127.0.0.1
cafile $T_DIR/tls/ca.pem
certfile $T_DIR/tls/server.pem
keyfile $T_DIR/tls/server.key
require_certificate true
CONF
mosquitto -c "$T_DIR/mosquitto.conf" >/dev/null 2>&1 &
T_PIDS="$T_PIDS $!"
t_check "mosquitto listens on two TLS ports" t_wait_for 10 sh -c "ss -Hltn | grep -q ':$P2 '"

"$SHADOWD" --broker "mqtts://127.0.0.1:$P1" --ca-file "$T_DIR/tls/ca.pem" --db "$T_DIR/s.db" \
	>>"$T_DIR/shadowd.log" 2>&1 &
T_PIDS="$T_PIDS $!"
SH="$DELTAGATE shadow --broker mqtts://127.0.0.1:$P1 --timeout 3"
t_check "shadowd and the CLI talk over TLS with the right CA" \
	t_wait_for 15 sh -c "$SH --ca-file '$T_DIR/tls/ca.pem' --quiet update t1 '{\"state\":{\"reported\":{\"a\":1}}}'"
$SH --ca-file "$T_DIR/other/ca.pem" get t1 >/dev/null 2>&1; rc=$?
t_check "a client trusting another CA never gets an answer (exit 3)" test $rc -eq 3
# the broker that requires a client certificate
SH2="$DELTAGATE shadow --broker mqtts://127.0.0.1:$P2 --timeout 3 --ca-file $T_DIR/tls/ca.pem"
"$SHADOWD" --broker "mqtts://127.0.0.1:$P2" --ca-file "$T_DIR/tls/ca.pem" \
	--cert-file "$T_DIR/tls/client.pem" --key-file "$T_DIR/tls/client.key" --db "$T_DIR/s2.db" \
	--client-id shadowd2 >>"$T_DIR/shadowd2.log" 2>&1 &
T_PIDS="$T_PIDS $!"
t_check "with a client certificate the service answers on the mutual-TLS port" \
	t_wait_for 15 sh -c "$SH2 --cert-file '$T_DIR/tls/client.pem' --key-file '$T_DIR/tls/client.key' --quiet update t2 '{\"state\":{\"reported\":{\"b\":2}}}'"
$SH2 get t2 >/dev/null 2>&1; rc=$?
t_check "without a client certificate: no answer (exit 3)" test $rc -eq 3
t_done
