#!/bin/bash
# Privileges (issue 14): deltagated started as root with --user drops to
# an unprivileged user (uid, gid and no root groups) and keeps the user's
# supplementary group dialout: its flashing tool writes an image to a serial
# line (a pty owned root:dialout 0660) and the daemon keeps writing its
# state (owned by the user, as StateDirectory= or the init script make it).
# Needs root to start as root and to add a throw-away user: without root
# the test fails saying so.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

if [ "$(id -u)" -ne 0 ]; then
	t_fail "not root: cannot show a drop from root"
	t_done
fi
user="dgt$$$RANDOM"
useradd -r -M -N -g nogroup -G dialout -d /nonexistent -s /usr/sbin/nologin "$user" || {
	t_fail "useradd $user"; t_done; }
trap 't_cleanup; userdel "$user" 2>/dev/null' EXIT
uid=$(id -u "$user")
chmod 755 "$T_DIR"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
chmod -R a+rX "$T_DIR/tls"

# the state directory as the service manager hands it over
state="$T_DIR/state"
mkdir -m 750 "$state" && chown "$user:nogroup" "$state"
# the serial line: a pty the daemon's user may open only through dialout
socat -u PTY,link="$T_DIR/ttyS9",raw,echo=0,group=dialout,mode=660 CREATE:"$T_DIR/received" 2>"$T_DIR/socat.err" &
T_PIDS="$T_PIDS $!"
t_wait_for 10 test -e "$T_DIR/ttyS9"
tty=$(readlink -f "$T_DIR/ttyS9")
t_check "the serial line is root:dialout 0660" test "$(stat -c '%U:%G %a' "$tty")" = "root:dialout 660"
t_check "the user could not open it without dialout (others have no access)" \
	test "$(stat -c %a "$tty" | cut -c3)" = 0

cat > "$T_DIR/flash-tty.sh" <<'SH'
#!/bin/sh
# write the image to the device's serial line, as a flashing tool would
set -e
id > "$DG_STATE/flash.id"
cat "$DG_IMAGE" > "$DG_ADDRESS"
echo "version $DG_VERSION"
SH
chmod 755 "$T_DIR/flash-tty.sh"
cat > "$T_DIR/gw.conf" <<CONF
gateway-id gw1
broker $MQTT_URL
db $state/gw.db
cache-root $state/cache
http-ca-file $NGINX_CA
exec-command "$T_DIR/flash-tty.sh"
user $user
log-level debug
device "s1 address=$tty"
CONF
DG_STATE=$state "$DELTAGATED" -c "$T_DIR/gw.conf" >>"$T_DIR/gw.log" 2>&1 &
GW_PID=$!; T_PIDS="$T_PIDS $GW_PID"
t_check "deltagated starts as root and connects" t_wait_for 20 grep -q 'mqtt: connected' "$T_DIR/gw.log"
t_check "it says it runs as the user" grep -q "running as user $user" "$T_DIR/gw.log"
st=/proc/$GW_PID/status
t_check "all its uids are the user's" sh -c "grep '^Uid:' $st | awk '{ exit !(\$2 == $uid && \$3 == $uid && \$4 == $uid && \$5 == $uid) }'"
t_check "its gids are nogroup's" sh -c "grep '^Gid:' $st | awk -v g=$(getent group nogroup | cut -d: -f3) '{ exit !(\$2 == g && \$3 == g && \$4 == g && \$5 == g) }'"
t_check "its groups are dialout and no root group" sh -c "grep '^Groups:' $st | awk '{ for (i = 2; i <= NF; i++) { if (\$i == 0) exit 1; if (\$i == 20) d = 1 } exit !d }'"
t_check "no capabilities left" sh -c "grep -q '^CapEff:[[:space:]]*0000000000000000' $st"

head -c 20000 /dev/urandom > "$NGINX_WWW/fw.bin"
chmod 644 "$NGINX_WWW/fw.bin"
t_gw_command s1 jobT1 "$NGINX_URL/fw.bin" "$NGINX_WWW/fw.bin"
t_check "the job succeeds" t_gw_wait_status s1 jobT1 SUCCEEDED 60
t_check "the image arrived whole on the serial line" t_wait_for 20 cmp "$NGINX_WWW/fw.bin" "$T_DIR/received"
t_check "the flashing tool ran as the user, in dialout" sh -c \
	"grep -q 'uid=$uid($user)' '$state/flash.id' && grep -q '20(dialout)' '$state/flash.id'"
t_check "the image cache it wrote belongs to the user" sh -c \
	"[ -n \"\$(find '$state/cache' -type f -user '$user' | head -1)\" ] && [ -z \"\$(find '$state/cache' -type f ! -user '$user')\" ]"
t_check "the database files it created belong to the user" sh -c \
	"[ \"\$(stat -c %U '$state/gw.db')\" = '$user' ] && [ -z \"\$(find '$state' -maxdepth 1 -name 'gw.db*' ! -user '$user')\" ]"
t_check "the state database is still written (job row present)" \
	sh -c "[ \"\$(sqlite3 '$state/gw.db' \"SELECT count(*) FROM job WHERE device = 's1'\")\" -ge 1 ]"
kill -TERM "$GW_PID"
t_check "it stops cleanly" t_wait_for 20 grep -q 'stopping; unfinished jobs resume' "$T_DIR/gw.log"
[ "$T_FAILED" -eq 0 ] || tail -20 "$T_DIR/gw.log" | sed 's/^/# /'
t_done
