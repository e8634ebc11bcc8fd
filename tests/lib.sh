# tests/lib.sh - helpers for integration tests (sourced; POSIX sh + bash).
#
# Every test prints TAP: plan, "ok N - name" / "not ok N - name".
# Servers listen on 127.0.0.1 on free ports and are stopped by their PID.

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
DELTAGATE=${DG_DELTAGATE:-$top_builddir/src/deltagate}
SHADOWD=${DG_SHADOWD:-$top_builddir/src/deltagate-shadowd}
DELTAGATED=${DG_DELTAGATED:-$top_builddir/proxy/deltagated}

T_N=0
T_FAILED=0
T_PIDS=""
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dgtest.XXXXXX")

t_ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
t_fail() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $*"; }
# t_check NAME CMD...: ok if CMD succeeds
t_check() {
	_name=$1; shift
	if "$@" >/dev/null; then t_ok "$_name"; else t_fail "$_name"; fi
}
t_diag() { echo "# $*"; }

# Stop every process we started, by PID; remove the scratch directory.
t_cleanup() {
	for _p in $T_PIDS; do
		kill "$_p" 2>/dev/null || true
	done
	for _p in $T_PIDS; do
		_i=0
		while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
			sleep 0.1; _i=$((_i + 1))
		done
		kill -9 "$_p" 2>/dev/null || true
	done
	# a failed test leaves what its programs logged in its TAP log (the
	# tail of each), so that a failure on CI can be read after the fact
	if [ "$T_FAILED" -gt 0 ] && [ -d "$T_DIR" ]; then
		for _l in "$T_DIR"/*.log; do
			[ -f "$_l" ] || continue
			echo "# ---- the last lines of ${_l##*/}"
			tail -n "${T_LOG_TAIL:-40}" "$_l" | sed 's/^/# /'
		done
	fi
	if [ -n "${T_KEEP:-}" ]; then
		echo "# kept $T_DIR" >&2
	else
		rm -rf "$T_DIR"
	fi
	return 0
}
trap t_cleanup EXIT

t_done() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
	exit $?
}

# A TCP or UDP port no socket uses (tcp|udp), below the kernel's ephemeral
# range (32768-60999) so that client sockets of other programs on the
# machine cannot take it between this check and the bind.
t_free_port() {
	_proto=${1:-tcp}
	while :; do
		_port=$(( (RANDOM << 15 | RANDOM) % 12000 + 20000 ))
		if [ "$_proto" = udp ]; then
			ss -Haun "sport = :$_port" 2>/dev/null | grep -q . || break
		else
			ss -Hatn "sport = :$_port" 2>/dev/null | grep -q . || break
		fi
	done
	echo "$_port"
}

# t_wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds.
t_wait_for() {
	_deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 )); shift
	while ! "$@" >/dev/null 2>&1; do
		[ $(( $(date +%s%N) / 1000000 )) -ge $_deadline ] && return 1
		sleep 0.05
	done
	return 0
}

# --- fault points (libfiu; built with --enable-fault-injection, which
# scripts/check uses; docs/reliability.md lists them). Daemons started by
# these libraries open their control fifos at $T_FIU-<pid>.
T_FIU="$T_DIR/fiu"
export FIU_CTRL_FIFO="$T_FIU"
# t_fault_cmd POINT ACTION [onetime]: a libfiu command; ACTION is crash,
# pause, EIO, ENOSPC or an errno number
t_fault_cmd() {
	case $2 in
	crash) _n=1000 ;; pause) _n=1001 ;; EIO) _n=5 ;; ENOSPC) _n=28 ;; *) _n=$2 ;;
	esac
	echo "enable name=$1,failnum=$_n${3:+,onetime}"
}
# t_fault_on PID POINT ACTION [onetime]: switch a point on in a running daemon
t_fault_on() {
	_pid=$1; shift
	fiu-ctrl -f "$T_FIU" -c "$(t_fault_cmd "$@")" "$_pid"
}
# t_fault_off PID POINT
t_fault_off() { fiu-ctrl -f "$T_FIU" -c "disable name=$2" "$1"; }
# the state letter of a process (R, S, T, Z...), empty when it is gone
t_proc_state() { sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null; }
t_is_stopped() { [ "$(t_proc_state "$1")" = T ] || [ "$(t_proc_state "$1")" = t ]; }
t_is_gone() { _s=$(t_proc_state "$1"); [ -z "$_s" ] || [ "$_s" = Z ] || [ "$_s" = X ]; }
# t_wait_stopped SECONDS PID: a pause point stopped it (it stays stopped
# until SIGCONT or SIGKILL: a state that cannot come and go unseen)
t_wait_stopped() { t_wait_for "$1" t_is_stopped "$2"; }
# t_wait_gone SECONDS PID: it exited (a crash point, or its own end)
t_wait_gone() { t_wait_for "$1" t_is_gone "$2"; }

t_port_open() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }

# Run as root, mosquitto switches to its own user and could then read
# nothing in the test's private directory: keep the test's user.
t_mosquitto_user() {
	[ "$(id -u)" -eq 0 ] && echo "user root"
	return 0
}

# Start mosquitto on a free port; sets MQTT_PORT, MQTT_URL, MQTT_PID.
t_start_mosquitto() {
	MQTT_PORT=${MQTT_PORT:-$(t_free_port)}
	cat > "$T_DIR/mosquitto.conf" <<CONF
$(t_mosquitto_user)
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
$( [ -n "${MQTT_PERSIST:-}" ] && printf 'persistence true\npersistence_location %s/\n' "$T_DIR" || echo 'persistence false' )
max_queued_messages 0
max_inflight_messages 0
log_dest file $T_DIR/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
CONF
	mosquitto -c "$T_DIR/mosquitto.conf" >>"$T_DIR/mosquitto.out" 2>&1 &
	MQTT_PID=$!
	T_PIDS="$T_PIDS $MQTT_PID"
	MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT"
	if ! t_wait_for 30 t_port_open "$MQTT_PORT"; then
		# say why in the test's log
		echo "# mosquitto did not listen on $MQTT_PORT: $(tail -3 "$T_DIR/mosquitto.out" "$T_DIR/mosquitto.log" 2>/dev/null | tr '\n' ' ')"
		return 1
	fi
}

# Stop a server by PID: SIGTERM, and SIGKILL only after 20 s (a broker
# saving its persistent sessions must not be cut short on a loaded machine).
t_stop_pid() {
	kill "$1" 2>/dev/null || true
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 400 ]; do sleep 0.05; _i=$((_i + 1)); done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	return 0
}

# Start deltagate-shadowd on MQTT_URL with db $T_DIR/shadow.db; SHADOWD_PID.
t_start_shadowd() {
	"$SHADOWD" --broker "$MQTT_URL" --db "$T_DIR/shadow.db" --log-level "${SHADOWD_LOG:-info}" \
		"$@" >>"$T_DIR/shadowd.log" 2>&1 &
	SHADOWD_PID=$!
	T_PIDS="$T_PIDS $SHADOWD_PID"
	# ready when it answers a get (404 for an unknown shadow is an answer)
	t_wait_for 60 sh -c "\"$DELTAGATE\" shadow --broker $MQTT_URL --timeout 1 get __probe__ 2>&1 | grep -q 404"
}

# t_wait_subscribed SECONDS CLIENT_ID FILTER: the broker has CLIENT_ID's
# subscription to FILTER in place. mosquitto (log_type subscribe, above)
# logs "<client> <qos> <filter>" after it has added the subscription and
# before its SUBACK: a line that stays, unlike a guess at how long a
# subscription takes.
t_subscribed() {
	awk -v c="$1" -v f="$2" '$2 == c && $4 == f { ok = 1 } END { exit !ok }' "$T_DIR/mosquitto.log"
}
t_wait_subscribed() { t_wait_for "$1" t_subscribed "$2" "$3"; }

# A client id for a mosquitto_sub of the test (unique on the broker, also
# when taken in a subshell)
T_SUB_N=0
t_sub_id() { T_SUB_N=$((T_SUB_N + 1)); echo "t-sub-$$-$T_SUB_N-$(date +%N)"; }

# mosquitto_sub collecting N messages of TOPIC into FILE, in the
# background; returns once the broker has the subscription in place
# (status 1 if it never had it in 10 s). Prints the PID.
t_sub() {
	_topic=$1 _file=$2 _count=$3 _id=$(t_sub_id)
	mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "$_id" -q 1 -v -t "$_topic" -C "$_count" -W 30 > "$_file" 2>&1 &
	T_PIDS="$T_PIDS $!"
	echo $!
	t_wait_subscribed 10 "$_id" "$_topic"
}

# JSON field check with jq-free means: use the deltagate CLI's parser
# through grep on compact JSON (our tools print compact JSON).
t_has() { grep -q -- "$2" "$1"; }
