#!/bin/bash
# Nothing acknowledged is lost across kill -9: a stream of updates is
# interrupted by SIGKILL; after a restart the shadow holds at least every
# update that was answered with update/accepted.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd

N=3000
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/p1/update/accepted > "$T_DIR/accepted" 2>/dev/null &
SUB=$!; T_PIDS="$T_PIDS $SUB"
sleep 0.3
seq 1 $N | sed 's/.*/{"state":{"reported":{"n":&}}}/' | \
	mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/p1/update -l &
PUB=$!; T_PIDS="$T_PIDS $PUB"

# kill -9 in the middle of the stream
t_wait_for 30 sh -c "[ \$(wc -l < '$T_DIR/accepted') -ge 300 ]"
kill -9 "$SHADOWD_PID"
wait "$SHADOWD_PID" 2>/dev/null
t_stop_pid "$PUB"
sleep 0.5
t_stop_pid "$SUB"

acc=$(wc -l < "$T_DIR/accepted")
maxv=$(jq -s 'map(.version) | max' "$T_DIR/accepted")
maxn=$(jq -s 'map(.state.reported.n) | max' "$T_DIR/accepted")
t_diag "accepted before the kill: $acc, highest version $maxv, highest n $maxn"
t_check "some but not all updates were accepted before the kill" sh -c "[ $acc -ge 300 ] && [ $acc -lt $N ]"
t_check "accepted versions are 1..$acc without gaps" sh -c "jq -s 'map(.version) == [range(1; $acc + 1)]' '$T_DIR/accepted' | grep -q true"

t_check "deltagate-shadowd restarts on the same database" t_start_shadowd
"$DELTAGATE" shadow --broker "$MQTT_URL" get p1 > "$T_DIR/get"
v=$(jq .version "$T_DIR/get"); n=$(jq .state.reported.n "$T_DIR/get")
t_diag "after restart: version $v, n $n"
t_check "every accepted update survived (version >= $maxv)" [ "$v" -ge "$maxv" ]
# the service's session outlives it: requests published while it was down
# are applied after the restart, so the state moved on past every
# accepted one
t_check "the state is at or past the last accepted update (n >= $maxn)" [ "$n" -ge "$maxn" ]

# the database is consistent
t_check "SQLite integrity check passes" sh -c "sqlite3 '$T_DIR/shadow.db' 'PRAGMA integrity_check' | grep -qx ok"
t_done
