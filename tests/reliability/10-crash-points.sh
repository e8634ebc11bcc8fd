#!/bin/bash
# Crash at every fault point of the update path, one update per point: the
# process is killed on the spot (SIGKILL at that line), started again, and
# the update must end as if nothing had happened - every device on its
# target (or on its old image with a failure reported), exactly one final
# report per device and job, nothing downloaded twice that had completed,
# and a cache and databases that check out.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"
C_SIZE=${C_SIZE:-2097152}
. "$top_srcdir/tests/reliability/lib-campaign.sh"

GW_POINTS="fetch/after-chunk fetch/before-rename cache/insert/before-fsync
cache/insert/before-rename cache/insert/before-index store/commit store/batch-commit
outbox/before-publish outbox/after-puback job/after-stage-fetching
job/after-stage-rebuilding job/after-stage-staged job/after-stage-transferring
job/after-stage-installing job/after-stage-succeeded job/after-stage-failed
rebuild/mid-apply rebuild/before-insert driver/coap/mid-transfer
driver/exec/after-exit"
SD_POINTS="shadowd/after-commit shadowd/before-accepted"
POINTS=${CRASH_POINTS:-$GW_POINTS $SD_POINTS}

c_setup
crashed_or_final() { t_is_gone "$1" || c_all_reported "$2"; }
n=0 survived=0
for p in $POINTS; do
	n=$((n + 1))
	job=crash$n
	case $p in shadowd/*) pid=$SHADOWD_PID who=shadowd ;; *) pid=$GW_PID who=gateway ;; esac
	t_fault_on "$pid" "$p" crash onetime || t_fail "$p: cannot switch the point on"
	c_round "$job"
	t0=$(date +%s%N)
	if ! t_wait_for 120 crashed_or_final "$pid" "$job"; then
		t_fail "$p: neither a crash nor the end of $job in 120 s"
	elif ! t_is_gone "$pid"; then
		t_fail "$p: the update ended without reaching the point"
	else
		wait "$pid" 2>/dev/null; st=$?
		[ "$st" -eq 137 ] || t_diag "$p: exit status $st"
		if [ "$who" = shadowd ]; then t_start_shadowd && c_resend "$job"; else c_gw_restart; fi
		if c_wait_final "$job" 120; then
			survived=$((survived + 1))
			t_ok "$p: $who crashed there and the update completed after the restart ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
		else
			t_fail "$p: $job did not complete after the restart"
		fi
	fi
	c_check "$job"
done
t_diag "crash points: $n, crashes survived: $survived; final reports carried again (same clientToken, applied once): ${C_RESENT:-0}; commands sent again by the client: ${C_CMD_RESENT:-0}"
c_check_end
t_done
