#!/bin/bash
# Nothing acknowledged is lost across kill -9: a stream of updates is
# interrupted by SIGKILL; after a restart the shadow holds at least every
# update that was answered with update/accepted.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd

N=3000
SUB_ID=$(t_sub_id)
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "$SUB_ID" -q 1 -t state/p1/update/accepted > "$T_DIR/accepted" 2>/dev/null &
SUB=$!; T_PIDS="$T_PIDS $SUB"
t_check "a client subscribes to update/accepted" t_wait_subscribed 10 "$SUB_ID" state/p1/update/accepted
# stream(FROM, TO): updates n = FROM..TO, in order, from one publisher
stream() {
	seq "$1" "$2" | sed 's/.*/{"state":{"reported":{"n":&}}}/' | \
		mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/p1/update -l &
	PUB=$!; T_PIDS="$T_PIDS $PUB"
}

# kill -9 in the middle of the stream: the first half streams until 300
# are accepted; then the service is made to stop right after its next
# commit (fault point shadowd/after-commit: the batch is durable, none of
# its answers published) and the second half is streamed, so that a
# commit comes whatever the first half has reached (a fast service could
# otherwise answer all of them before a kill by the clock)
stream 1 $((N / 2))
t_wait_for 30 sh -c "[ \$(wc -l < '$T_DIR/accepted') -ge 300 ]"
t_check "stop deltagate-shadowd after its next commit" t_fault_on "$SHADOWD_PID" shadowd/after-commit pause onetime
t_wait_gone 60 "$PUB"; wait "$PUB"
stream $((N / 2 + 1)) $N
t_check "deltagate-shadowd stopped after a commit" t_wait_stopped 60 "$SHADOWD_PID"
kill -9 "$SHADOWD_PID"
wait "$SHADOWD_PID" 2>/dev/null
t_check "the rest of the stream reaches the broker while the service is down" t_wait_gone 60 "$PUB"
wait "$PUB"
# answers published before the stop may still be on their way to the
# subscriber: stopping it keeps a prefix of them, checked as the whole is
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
