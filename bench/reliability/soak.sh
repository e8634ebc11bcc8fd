#!/bin/bash
# bench/reliability/soak.sh [MINUTES] [BUILD_DIR] - 20 devices updated in a
# loop for MINUTES (30), deltagated's RSS and open fds sampled every 10 s;
# prints the curve's first and last values and the samples.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
MINUTES=${1:-30}
build=$(cd "${2:-$top/build}" && pwd)
export top_srcdir=$top top_builddir=$build
. "$top/tests/lib.sh"
. "$top/tests/lib-nginx.sh"
. "$top/tests/lib-gateway.sh"
. "$top/tests/lib-coap.sh"
C_SIZE=${C_SIZE:-1048576}
C_EXTRA=${C_EXTRA:-16}
. "$top/tests/reliability/lib-campaign.sh"
echo "# machine: $(uname -srm), $(nproc) cores; $(date -u +%FT%TZ); commit $(git -C "$top" rev-parse --short HEAD)"
c_setup > "$T_DIR/setup.tap"
grep '^not ok' "$T_DIR/setup.tap" && exit 1
sample() { echo "$(( $(date +%s) - T0 )) $(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status") $(ls "/proc/$GW_PID/fd" | wc -l)"; }
T0=$(date +%s)
end=$((T0 + MINUTES * 60))
( while [ "$(date +%s)" -lt "$end" ]; do sample; sleep 10; done ) > "$T_DIR/samples" &
SAMPLER=$!
round=0 bad=0
while [ "$(date +%s)" -lt "$end" ]; do
	round=$((round + 1))
	c_round "soak$round"
	c_wait_final "soak$round" 300 || bad=$((bad + 1))
	c_check "soak$round" | grep -q '^not ok' && bad=$((bad + 1))
done
wait "$SAMPLER"
echo "# rounds: $round ($((round * (C_EXTRA + 4))) jobs), rounds with a failed check: $bad"
echo "# samples (seconds, RSS KiB, fds): first: $(head -1 "$T_DIR/samples"); last: $(tail -1 "$T_DIR/samples")"
awk 'NR > 6 { if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2; if (fmin == "" || $3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3 }
	END { print "# after the first minute: RSS " min "-" max " KiB, fds " fmin "-" fmax }' "$T_DIR/samples"
cat "$T_DIR/samples"
