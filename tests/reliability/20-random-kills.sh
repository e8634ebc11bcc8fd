#!/bin/bash
# kill -9 of deltagated at random moments across a fleet's delta update
# (KILLS kills, 20 by default; the seed is printed so that a failure can be
# replayed with SEED=...). After each kill the gateway is started again at
# once; when a round's update has ended everywhere its invariants are
# checked and the next round begins. Random delays choose the moments: they
# are the experiment, not synchronisation - nothing waits on them.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"
C_SIZE=${C_SIZE:-2097152}
C_EXTRA=${C_EXTRA:-8}
. "$top_srcdir/tests/reliability/lib-campaign.sh"

KILLS=${KILLS:-20}
SEED=${SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
t_diag "seed $SEED (replay: SEED=$SEED KILLS=$KILLS $0)"

c_setup
kills=0 round=0 t_recover=0 n_recover=0
while [ "$kills" -lt "$KILLS" ]; do
	round=$((round + 1))
	job=kill$round
	c_round "$job"
	# kill while this round runs: at most 4 kills per round
	k=0
	while [ "$k" -lt 4 ] && [ "$kills" -lt "$KILLS" ] && ! c_all_reported "$job"; do
		sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
		kill -9 "$GW_PID" 2>/dev/null
		wait "$GW_PID" 2>/dev/null
		kills=$((kills + 1)) k=$((k + 1))
		t0=$(date +%s%N)
		c_gw_restart
	done
	if c_wait_final "$job" 180; then
		if [ "$k" -gt 0 ]; then
			t_recover=$((t_recover + ($(date +%s%N) - t0) / 1000000)); n_recover=$((n_recover + 1))
		fi
		t_ok "round $round: the update ended after $k kill(s)"
	else
		t_fail "round $round: the update did not end after $k kill(s) (seed $SEED)"
	fi
	c_check "$job"
done
t_diag "final reports carried again by MQTT (same clientToken, applied once): ${C_RESENT:-0}"
t_diag "kills: $kills in $round rounds, $(( C_EXTRA + 4 )) devices; mean time from the last kill to the round's end: $(( n_recover ? t_recover / n_recover : 0 )) ms"
c_check_end
t_done
