# tests/lib-gateway.sh - deltagated with an exec driver that "flashes"
# simulated devices (sourced after lib.sh and lib-nginx.sh).
#
#   t_gw_flasher              writes $T_DIR/flash.sh: copies $DG_IMAGE to
#                             $T_DIR/dev/$DG_DEVICE.bin, checks its SHA-256,
#                             reports progress; a device whose address is
#                             "fail" fails its install (exit 3); address
#                             "slow" takes FLASH_SLOW seconds (default 3);
#                             "hold" waits while $T_DIR/dev/hold exists;
#                             $T_DIR/dev/ID.delay adds that many seconds
#   t_gw_start [OPTIONS]      start deltagated with $T_DIR/gw.conf; GW_PID
#   t_gw_cache_import FILE    put FILE in the gateway's cache (provider default)
#   t_sha FILE                hex SHA-256 of FILE
#   t_gw_command ID JOB URL FILE [RELATED_JSON]   publish the desired state
#   t_gw_wait_status ID JOB STATUS [SECONDS]      wait for reported status
#   t_gw_reported ID          the device's reported state (JSON)

GW_CACHE="$T_DIR/gwcache"
GW_DB="$T_DIR/gw.db"

t_sha() { sha256sum "$1" | cut -d' ' -f1; }

t_gw_flasher() {
	mkdir -p "$T_DIR/dev"
	cat > "$T_DIR/flash.sh" <<'SH'
#!/bin/sh
# a simulated device flashing tool, driven by deltagated's exec driver
set -e
out="$DG_TEST_DIR/dev/$DG_DEVICE.bin"
echo "progress 0 $DG_IMAGE_SIZE"
echo "start $DG_DEVICE $(date +%s%N) $$" >> "$DG_TEST_DIR/dev/flash.log"
[ "$DG_ADDRESS" = slow ] && sleep "${FLASH_SLOW:-3}"
# address "hold": wait (at most 120 s) while $DG_TEST_DIR/dev/hold exists
if [ "$DG_ADDRESS" = hold ]; then
	n=0; while [ -f "$DG_TEST_DIR/dev/hold" ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
fi
# a per-device delay the test can change while the gateway runs
[ -f "$DG_TEST_DIR/dev/$DG_DEVICE.delay" ] && sleep "$(cat "$DG_TEST_DIR/dev/$DG_DEVICE.delay")"
cp "$DG_IMAGE" "$out.tmp"
echo "progress $(( DG_IMAGE_SIZE / 2 )) $DG_IMAGE_SIZE"
echo installing
[ "$(sha256sum "$out.tmp" | cut -d' ' -f1)" = "$DG_SHA256" ] || exit 4
[ "$DG_ADDRESS" = fail ] && exit 3
mv "$out.tmp" "$out"
echo "$DG_JOB" >> "$DG_TEST_DIR/dev/$DG_DEVICE.jobs"
echo "progress $DG_IMAGE_SIZE $DG_IMAGE_SIZE"
echo "end $DG_DEVICE $(date +%s%N)" >> "$DG_TEST_DIR/dev/flash.log"
echo "version $DG_VERSION"
SH
	chmod +x "$T_DIR/flash.sh"
}

t_gw_cache_import() {
	"$DELTAGATE" cache --root "$GW_CACHE" import --provider default "$1" >/dev/null
}

# started when this process has connected: one 'mqtt: connected' line
# more than before (the log of an earlier run of the test has its own)
t_gw_connected() { [ "$(grep -c 'mqtt: connected' "$T_DIR/gw.log" 2>/dev/null)" -gt "$1" ]; }
t_gw_start() {
	_gw_n=$(grep -c 'mqtt: connected' "$T_DIR/gw.log" 2>/dev/null || true)
	DG_TEST_DIR="$T_DIR" "$DELTAGATED" -c "$T_DIR/gw.conf" "$@" >>"$T_DIR/gw.log" 2>&1 &
	GW_PID=$!
	T_PIDS="$T_PIDS $GW_PID"
	t_wait_for 30 t_gw_connected "${_gw_n:-0}"
}

# t_gw_conf DEVICE_LINES...: a configuration for the running peers
t_gw_conf() {
	{
		echo "gateway-id gw1"
		echo "broker $MQTT_URL"
		echo "db $GW_DB"
		echo "cache-root $GW_CACHE"
		echo "http-ca-file $NGINX_CA"
		echo "exec-command \"$T_DIR/flash.sh\""
		echo "report-rate 200"
		echo "progress-interval 50"
		echo "download-retries 2"
		echo "log-level debug"
		for d in "$@"; do echo "device \"$d\""; done
	} > "$T_DIR/gw.conf"
}

t_gw_command() {
	_id=$1 _job=$2 _url=$3 _file=$4 _rel=${5:-}
	_sha=$(t_sha "$_file"); _size=$(stat -c %s "$_file")
	_extra=""
	[ -n "$_rel" ] && _extra=",\"relatedFiles\":$_rel"
	"$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update "$_id" \
		"{\"state\":{\"desired\":{\"softwareURL\":\"$_url\",\"softwareVersion\":\"${GW_VERSION:-$_job}\",\"softwareSha256\":\"$_sha\",\"softwareSize\":$_size,\"jobId\":\"$_job\"$_extra}}}"
}

# a related-file entry for DELTA rebuilding from SOURCE
t_gw_related() {
	echo "[{\"url\":\"$1\",\"sha256\":\"$(t_sha "$2")\",\"size\":$(stat -c %s "$2"),\"sourceSha256\":\"$3\"}]"
}

# The most flashing tools that ran at the same time (from flash.log).
t_gw_max_concurrent() {
	sort -k3 -n "$T_DIR/dev/flash.log" | awk '$1 == "start" { n++; if (n > m) m = n } $1 == "end" { n-- } END { print m + 0 }'
}

t_gw_reported() {
	"$DELTAGATE" shadow --broker "$MQTT_URL" get "$1" 2>/dev/null | jq -c '.state.reported // {}'
}

t_gw_wait_status() {
	t_wait_for "${4:-30}" sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' --timeout 2 get '$1' 2>/dev/null | jq -e '.state.reported.jobId == \"$2\" and .state.reported.status == \"$3\"'"
}
