#!/bin/bash
# The systemd watchdog (issue 14): under a NOTIFY_SOCKET the test listens
# on, with WATCHDOG_USEC set, each daemon says READY=1 and then WATCHDOG=1
# from its event loop; frozen (SIGSTOP) it sends none, continued (SIGCONT)
# it pings again; SIGTERM says STOPPING=1. Without --with-systemd there is
# nothing to test: the test says so and fails.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

if ! grep -q '^#define HAVE_SYSTEMD 1' "$top_builddir/config.h"; then
	t_fail "built without --with-systemd: the watchdog cannot be tested"
	t_done
fi
LISTEN="$top_srcdir/tests/notify-listen.py"
t_check "mosquitto starts" t_start_mosquitto

# count WATCHDOG=1 lines after the line FROM (exact) in LOG
pings_after() { awk -v from="$2" 'f && $0 == "WATCHDOG=1" { n++ } $0 == from { f = 1 } END { print n + 0 }' "$1"; }
frozen() { [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" = T ]; }

for d in deltagated deltagate-shadowd; do
	sock="$T_DIR/$d.notify" log="$T_DIR/$d.notify.log"
	python3 "$LISTEN" "$sock" "$log" &
	T_PIDS="$T_PIDS $!"
	t_wait_for 10 grep -qx LISTENING "$log"
	case $d in
	deltagated)
		NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 "$DELTAGATED" --broker "$MQTT_URL" \
			--db "$T_DIR/gw.db" --cache-root "$T_DIR/cache" >"$T_DIR/$d.log" 2>&1 & ;;
	*)
		NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 "$SHADOWD" --broker "$MQTT_URL" \
			--db "$T_DIR/shadow.db" >"$T_DIR/$d.log" 2>&1 & ;;
	esac
	pid=$!; T_PIDS="$T_PIDS $pid"
	t_check "$d: READY=1 on the NOTIFY_SOCKET" t_wait_for 20 grep -qx READY=1 "$log"
	t_check "$d: WATCHDOG=1 keeps arriving" t_wait_for 20 sh -c "[ \$(awk '\$0 == \"WATCHDOG=1\"' '$log' | wc -l) -ge 3 ]"
	t_check "$d: it logs the ping interval (half of WATCHDOG_USEC)" grep -q 'watchdog: pinging every 200 ms' "$T_DIR/$d.log"

	kill -STOP "$pid"
	t_check "$d: SIGSTOP freezes it (state T)" t_wait_for 10 frozen "$pid"
	# datagrams queue in order: once MARK1 is logged, every ping sent
	# before the stop is logged too
	python3 "$LISTEN" --send "$sock" MARK1
	t_check "$d: the pings sent before the stop are drained" t_wait_for 10 grep -qx MARK1 "$log"
	# an observation window of 5 intervals, not a synchronisation: a
	# stopped process sends nothing however loaded the machine is
	sleep 1
	python3 "$LISTEN" --send "$sock" MARK2
	t_wait_for 10 grep -qx MARK2 "$log"
	t_check "$d: frozen, no WATCHDOG=1 arrives" test "$(pings_after "$log" MARK1)" -eq 0
	kill -CONT "$pid"
	t_check "$d: continued, WATCHDOG=1 arrives again" t_wait_for 20 sh -c "[ \$(awk -v from=MARK2 'f && \$0 == \"WATCHDOG=1\" { n++ } \$0 == from { f = 1 } END { print n + 0 }' '$log') -ge 2 ]"
	kill -TERM "$pid"
	t_check "$d: SIGTERM says STOPPING=1" t_wait_for 20 grep -qx STOPPING=1 "$log"
	t_wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
done

# without WATCHDOG_USEC: READY=1, no pings (the timer is not armed)
sock="$T_DIR/plain.notify" log="$T_DIR/plain.notify.log"
python3 "$LISTEN" "$sock" "$log" &
T_PIDS="$T_PIDS $!"
t_wait_for 10 grep -qx LISTENING "$log"
NOTIFY_SOCKET=$sock "$SHADOWD" --broker "$MQTT_URL" --db "$T_DIR/shadow2.db" >"$T_DIR/plain.log" 2>&1 &
pid=$!; T_PIDS="$T_PIDS $pid"
t_check "no watchdog asked: READY=1" t_wait_for 20 grep -qx READY=1 "$log"
kill -TERM "$pid"
t_wait_for 20 grep -qx STOPPING=1 "$log"
t_check "no watchdog asked: no WATCHDOG=1 before STOPPING=1" sh -c "! grep -qx WATCHDOG=1 '$log'"
t_done
