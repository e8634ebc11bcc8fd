#!/bin/bash
# deltagate-shadowd killed at its fault points in the middle of a stream of
# updates (each with its own key and clientToken): stopped after a batch is
# committed and before it is answered (shadowd/after-commit), and before an
# update/accepted goes out (shadowd/before-accepted). After the restart the
# client sends again, with the same token, what was never answered. No
# accepted update is lost (the ones never answered are sent again by the
# client, as the pattern's clients do); a retry whose token is among the shadow's last
# 16 accepted ones is answered without being applied again (the gateway's
# one-report-in-flight-per-device case), an older one is applied again as
# AWS would (same content: idempotent), so version <= updates + retries.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

N=${N:-300}
t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -v -t 'state/s1/update/accepted' \
	-t 'state/s1/update/documents' -t 'state/probe/update/accepted' > "$T_DIR/trace" 2>&1 &
T_PIDS="$T_PIDS $!"
"$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update probe '{"state":{"reported":{"p":1}}}'
t_check "the trace runs" t_wait_for 20 grep -q '^state/probe/update/accepted' "$T_DIR/trace"

req() { echo "{\"state\":{\"reported\":{\"k$1\":$1}},\"clientToken\":\"t$1\"}"; }
accepted_tokens() { sed -n 's/^state\/s1\/update\/accepted .*"clientToken":"\(t[0-9]*\)".*/\1/p' "$T_DIR/trace" | sort -u; }
committed() { sqlite3 "$T_DIR/shadow.db" "SELECT doc FROM shadow WHERE id = 's1'" 2>/dev/null | jq '.version // 0' 2>/dev/null || echo 0; }

# the client: FROM..TO, then again whatever has no accepted
stream() { seq "$1" "$2" | while read -r i; do req "$i"; done |
	mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/s1/update -l; }
resend_unanswered() {
	seq 1 "$1" | sed 's/^/t/' | sort > "$T_DIR/all"
	accepted_tokens > "$T_DIR/acc"
	comm -23 "$T_DIR/all" "$T_DIR/acc" | sed 's/^t//' | while read -r i; do req "$i"; done > "$T_DIR/again"
	RESENT=$(wc -l < "$T_DIR/again")
	t_diag "sent again (never answered): $RESENT"
	[ -s "$T_DIR/again" ] && mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/s1/update -l < "$T_DIR/again"
	return 0
}
all_accepted() { [ "$(accepted_tokens | wc -l)" -ge "$1" ]; }

# 1. after-commit: pause after every committed batch until a third of the
# stream is in, then kill it there
t_check "pause after each commit" t_fault_on "$SHADOWD_PID" shadowd/after-commit pause
stream 1 "$N" &
PUB=$!
v=0 pauses=0
while t_wait_stopped 60 "$SHADOWD_PID"; do
	pauses=$((pauses + 1)); v=$(committed)
	[ "$v" -ge $((N / 3)) ] || [ "$pauses" -ge "$N" ] && break
	kill -CONT "$SHADOWD_PID"
done
t_check "stopped after a commit, before its answers (version $v)" test "$v" -ge 1
kill -9 "$SHADOWD_PID"; wait "$SHADOWD_PID" 2>/dev/null
t_check "deltagate-shadowd restarts" t_start_shadowd
wait "$PUB"
resend_unanswered "$N"
R1=$RESENT
t_check "every update answered in the end" t_wait_for 60 all_accepted "$N"

# 2. before-accepted: crash as an answer is about to go out
t_check "crash before the next update/accepted" t_fault_on "$SHADOWD_PID" shadowd/before-accepted crash onetime
M=$((2 * N))
stream $((N + 1)) "$M" &
PUB=$!
t_check "deltagate-shadowd crashed there" t_wait_gone 60 "$SHADOWD_PID"
wait "$SHADOWD_PID" 2>/dev/null
t_check "deltagate-shadowd restarts" t_start_shadowd
wait "$PUB"
resend_unanswered "$M"
R2=$RESENT
t_check "every update answered in the end" t_wait_for 60 all_accepted "$M"
"$DELTAGATE" shadow --broker "$MQTT_URL" get s1 > "$T_DIR/get"
keys=$(jq '.state.reported | length' "$T_DIR/get"); ver=$(jq .version "$T_DIR/get")
t_diag "final: $keys keys, version $ver, $(grep -c 'not applied twice' "$T_DIR/shadowd.log") retries answered without applying"
t_check "no accepted update lost: all $M keys in the shadow" test "$keys" -eq "$M"
t_check "each update applied at most once more than it was retried: $M <= version $ver <= $((M + R1 + R2))" \
	test "$ver" -ge "$M" -a "$ver" -le $((M + R1 + R2))
# the update applied last once more, as a client whose answer was lost
# would: answered, not applied (its token is the shadow's latest). That is
# the last one the shadow published a document for, not necessarily t$M:
# the retries of unanswered ones came after it.
before=$("$DELTAGATE" shadow --broker "$MQTT_URL" get s1 | jq .version)
last=$(sed -n 's/^state\/s1\/update\/documents .*"clientToken":"t\([0-9]*\)".*/\1/p' "$T_DIR/trace" | tail -1)
t_diag "retrying t$last, the last update applied"
r0=$(grep -c 'not applied twice' "$T_DIR/shadowd.log")
req "${last:-$M}" | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/s1/update -l
t_check "a retry of the last update is answered without being applied" \
	t_wait_for 30 sh -c "[ \$(grep -c 'not applied twice' '$T_DIR/shadowd.log') -gt $r0 ]"
t_check "the version did not move ($before)" \
	test "$("$DELTAGATE" shadow --broker "$MQTT_URL" get s1 | jq .version)" -eq "$before"
# an update is applied at most once more than it was sent again (once)
most=$(sed -n 's/^state\/s1\/update\/documents .*"clientToken":"\(t[0-9]*\)".*/\1/p' "$T_DIR/trace" | sort | uniq -c | sort -n | tail -1 | awk '{ print $1 }')
t_check "no update applied more than twice (most: ${most:-0})" test "${most:-0}" -le 2
t_check "the shadow database is intact" sh -c "sqlite3 '$T_DIR/shadow.db' 'PRAGMA integrity_check' | grep -qx ok"
t_done
