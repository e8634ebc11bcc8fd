# tests/reliability/lib-campaign.sh - a real update path to break, and the
# invariants that must hold afterwards (sourced after lib.sh, lib-nginx.sh,
# lib-gateway.sh and lib-coap.sh).
#
# The fleet: d1 takes every image as a delta from the one it runs, d2 the
# full image, d3 fails its install every time (its image must stay), c1 is
# a simulated CoAP device pulling block-wise. Each round makes a new target
# from the last, its delta, and sends the four commands.
#
#   c_setup                 peers, the fleet, the trace of every report
#   c_round JOB             make the round's images and send its commands
#   c_wait_final JOB [S]    every device of the round has its final report
#   c_check JOB             the invariants of the round (TAP lines)
#   c_check_end             stop everything; cache, databases, temp files
#   c_gw_restart            start deltagated again (same config)

# C_EXTRA: that many more devices e1..eN that take the delta as d1 does
C_EXTRA=${C_EXTRA:-0}
C_DEVICES="d1 d2 d3 c1"
C_DELTA_DEVS="d1"
_i=1
while [ "$_i" -le "$C_EXTRA" ]; do
	C_DEVICES="$C_DEVICES e$_i"; C_DELTA_DEVS="$C_DELTA_DEVS e$_i"; _i=$((_i + 1))
done
C_SIZE=${C_SIZE:-4194304}

c_setup() {
	t_check "mosquitto starts" t_start_mosquitto
	t_check "deltagate-shadowd starts" t_start_shadowd
	t_check "nginx starts" t_start_nginx
	t_gw_flasher
	W=$NGINX_WWW
	mkdir -p "$T_DIR/img"
	head -c "$C_SIZE" /dev/urandom > "$T_DIR/img/r0.bin"
	C_PREV=r0
	R0SHA=$(t_sha "$T_DIR/img/r0.bin")
	# every device starts on r0, the gateway has it cached
	_lines=""
	for _d in $C_DELTA_DEVS; do _lines="$_lines|$_d sha256=$R0SHA version=r0"; done
	IFS='|' read -r -a _arr <<< "${_lines#|}"
	t_coap_conf "${_arr[@]}" "d2 sha256=$R0SHA version=r0" \
		"d3 address=fail sha256=$R0SHA version=r0" "c1 driver=coap sha256=$R0SHA version=r0"
	echo "stage-timeout 120" >> "$T_DIR/gw.conf"
	if [ -n "${C_CONF_EXTRA:-}" ]; then printf '%s\n' "$C_CONF_EXTRA" >> "$T_DIR/gw.conf"; fi
	t_gw_cache_import "$T_DIR/img/r0.bin"
	for d in $C_DEVICES; do [ "$d" = c1 ] || cp "$T_DIR/img/r0.bin" "$T_DIR/dev/$d.bin"; done
	mkdir -p "$T_DIR/devices/c1"
	cp "$T_DIR/img/r0.bin" "$T_DIR/devices/c1/image.bin"
	# every report upstream, in order, with the time it was seen
	mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -v -t 'state/+/update' \
		-t 'state/+/update/documents' > "$T_DIR/trace" 2>&1 &
	C_SUB=$!
	T_PIDS="$T_PIDS $C_SUB"
	t_check "deltagated starts" t_gw_start
	t_coap_sim --count 1 --id-prefix c --timeout 3600 --version r0
	C_SIM=$SIM_PID
	t_check "c1 registers" t_wait_for 20 grep -q 'c1: coap: registered' "$T_DIR/gw.log"
	# the subscriber is in place once it has seen a report sent after it
	"$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update probe '{"state":{"reported":{"probe":1}}}'
	t_check "the report trace runs" t_wait_for 20 grep -q '^state/probe/update ' "$T_DIR/trace"
}

c_gw_restart() { t_gw_start; }

# c_cmd ID JOB URL FILE [RELATED]: the desired state, published as the
# application does (QoS 1, not waiting for the shadow service's answer:
# it may be the process that is down)
c_cmd() {
	# kept for c_resend: the round's commands, one line each
	[ -n "${C_RESENDING:-}" ] || printf '%s\n' "$*" >> "$T_DIR/commands.$2"
	_sha=$(t_sha "$4"); _size=$(stat -c %s "$4")
	_extra=""
	[ -n "${5:-}" ] && _extra=",\"relatedFiles\":$5"
	mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t "state/$1/update" -m \
		"{\"state\":{\"desired\":{\"softwareURL\":\"$3\",\"softwareVersion\":\"$2\",\"softwareSha256\":\"$_sha\",\"softwareSize\":$_size,\"jobId\":\"$2\"$_extra}}}"
}

# c_resend JOB: what a client of the shadow pattern does after the shadow
# service restarted: send again each command of the round that the service
# never applied (no update/documents with its jobId). deltagate-shadowd's
# MQTT library acknowledges a request on receipt, before it is committed:
# one that arrived just before a crash is gone (docs/reliability.md), and
# AWS IoT's contract is the same (no accepted: send again). A command that
# was applied is not sent again.
c_resend() {
	[ -f "$T_DIR/commands.$1" ] || return 0
	C_RESENDING=1
	while read -r _d _j _url _file _rel; do
		grep "^state/$_d/update/documents " "$T_DIR/trace" | grep -qF "\"jobId\":\"$_j\"" && continue
		t_diag "$_d: the command of $_j was never applied: sent again"
		C_CMD_RESENT=$(( ${C_CMD_RESENT:-0} + 1 ))
		c_cmd "$_d" "$_j" "$_url" "$_file" ${_rel:+"$_rel"}
	done < "$T_DIR/commands.$1"
	C_RESENDING=
}

# A new target: the last one with two 4 KiB stretches changed
c_round() {
	_job=$1
	cp "$T_DIR/img/$C_PREV.bin" "$T_DIR/img/$_job.bin"
	for _off in 65536 $((C_SIZE / 2 + 12345)); do
		head -c 4096 /dev/urandom | dd of="$T_DIR/img/$_job.bin" bs=1 seek=$_off conv=notrunc 2>/dev/null
	done
	cp "$T_DIR/img/$_job.bin" "$W/$_job.bin"
	# d2's image differs, so that it is a download of its own
	cp "$T_DIR/img/$_job.bin" "$T_DIR/img/$_job-full.bin"
	head -c 4096 /dev/urandom | dd of="$T_DIR/img/$_job-full.bin" bs=1 seek=1000000 conv=notrunc 2>/dev/null
	cp "$T_DIR/img/$_job-full.bin" "$W/$_job-full.bin"
	"$DELTAGATE" diff "$T_DIR/img/$C_PREV.bin" "$W/$_job.bin" "$W/$_job.delta" >/dev/null
	C_OLD=$C_PREV
	C_PREV=$_job
	_rel=$(t_gw_related "$NGINX_URL/$_job.delta" "$W/$_job.delta" "$(t_sha "$T_DIR/img/$C_OLD.bin")")
	for _d in $C_DELTA_DEVS; do c_cmd "$_d" "$_job" "$NGINX_URL/$_job.bin" "$W/$_job.bin" "$_rel"; done
	c_cmd d2 "$_job" "$NGINX_URL/$_job-full.bin" "$W/$_job-full.bin"
	c_cmd d3 "$_job" "$NGINX_URL/$_job.bin" "$W/$_job.bin" "$_rel"
	c_cmd c1 "$_job" "$NGINX_URL/$_job.bin" "$W/$_job.bin" "$_rel"
}

# The final status of a device's job, from the trace of the reports
c_final_of() {
	grep "^state/$1/update " "$T_DIR/trace" | grep -F "\"jobId\":\"$2\"" |
		sed -n 's/.*"status":"\(SUCCEEDED\|FAILED\)".*/\1/p' | tail -1
}
# the same from the shadow service (what the application reads)
c_shadow_final_of() {
	"$DELTAGATE" shadow --broker "$MQTT_URL" --timeout 5 get "$1" 2>/dev/null |
		jq -r "select(.state.reported.jobId == \"$2\") | .state.reported.status | select(. == \"SUCCEEDED\" or . == \"FAILED\")"
}
# every device has sent its final report, and the shadow service has
# applied it (an update/documents with that report's clientToken)
c_all_reported() {
	for _d in $C_DEVICES; do
		grep "^state/$_d/update " "$T_DIR/trace" | grep -F "\"jobId\":\"$1\"" |
			grep -qE '"status":"(SUCCEEDED|FAILED)"' || return 1
	done
}
c_all_final() {
	c_all_reported "$1" || return 1
	for _d in $C_DEVICES; do
		_t=$(grep "^state/$_d/update " "$T_DIR/trace" | grep -F "\"jobId\":\"$1\"" |
			grep -E '"status":"(SUCCEEDED|FAILED)"' | sed -n 's/.*"clientToken":"\([^"]*\)".*/\1/p' | tail -1)
		[ -n "$_t" ] && grep "^state/$_d/update/documents " "$T_DIR/trace" | grep -qF "\"clientToken\":\"$_t\"" || return 1
	done
}
c_wait_final() { t_wait_for "${2:-120}" c_all_reported "$1" && t_wait_for 30 c_all_final "$1"; }

# the device's image file
c_image() { if [ "$1" = c1 ]; then echo "$T_DIR/devices/c1/image.bin"; else echo "$T_DIR/dev/$1.bin"; fi; }

# c_check JOB: per device, the image is the target after SUCCEEDED and the
# old one after FAILED; exactly one final report per device reached the
# broker for the job; d1 and c1 succeed, d3 fails
c_check() {
	_job=$1 _bad=""
	for _d in $C_DEVICES; do
		_st=$(c_final_of "$_d" "$_job")
		_img=$(c_image "$_d")
		case $_st in
		SUCCEEDED)
			_want="$T_DIR/img/$_job.bin"
			[ "$_d" = d2 ] && _want="$T_DIR/img/$_job-full.bin"
			cmp -s "$_img" "$_want" || _bad="$_bad $_d:image-not-target" ;;
		FAILED) cmp -s "$_img" "$T_DIR/img/r0.bin" || _bad="$_bad $_d:image-changed" ;;
		*) _bad="$_bad $_d:no-final($_st)" ;;
		esac
		# the final report: one report (one clientToken), however often
		# MQTT's at-least-once carried it, and applied once by the shadow
		# service (one update/documents for that token)
		_finals=$(grep "^state/$_d/update " "$T_DIR/trace" | grep -F "\"jobId\":\"$_job\"" |
			grep -E '"status":"(SUCCEEDED|FAILED)"')
		_toks=$(sed -n 's/.*"clientToken":"\([^"]*\)".*/\1/p' <<< "$_finals" | sort -u)
		_n=$(grep -c . <<< "$_toks")
		_sent=$(grep -c . <<< "$_finals")
		if [ "$_n" -ne 1 ]; then
			_bad="$_bad $_d:$_n-final-reports"
		else
			_app=$(grep "^state/$_d/update/documents " "$T_DIR/trace" | grep -cF "\"clientToken\":\"$_toks\"")
			[ "$_app" -eq 1 ] || _bad="$_bad $_d:final-applied-$_app-times"
			[ "$_sent" -gt 1 ] && C_RESENT=$(( ${C_RESENT:-0} + _sent - 1 ))
		fi
	done
	[ "$(c_final_of d3 "$_job")" = FAILED ] || _bad="$_bad d3:not-failed"
	# the application's view agrees (a shadow get of the first devices)
	for _d in d1 d2 d3 c1; do
		[ "$(c_shadow_final_of "$_d" "$_job")" = "$(c_final_of "$_d" "$_job")" ] || _bad="$_bad $_d:shadow-disagrees"
	done
	for _d in $C_DELTA_DEVS d2 c1; do [ "$(c_final_of "$_d" "$_job")" = SUCCEEDED ] || _bad="$_bad $_d:not-succeeded"; done
	if [ -z "$_bad" ]; then t_ok "$_job: images right, one final report each"; else t_fail "$_job:$_bad"; fi
	# nothing that had completed was downloaded again: once the gateway
	# logged a file's download as done, it never requested it again (nginx's
	# byte counts include what sat in socket buffers when a crash came). A
	# file never logged as done was either never needed or completed in the
	# cache just before a crash (cache/insert/before-index, store/commit) and
	# adopted by the cache's reconciliation at the restart: then it must not
	# have been requested after that restart either.
	for _f in "$_job.delta" "$_job-full.bin"; do
		_done=$(grep -n "fetch [^ ]*/$_f: done," "$T_DIR/gw.log" | head -1 | cut -d: -f1)
		if [ -z "$_done" ]; then
			_done=$(grep -n "^.*deltagated [^ ]*: gateway " "$T_DIR/gw.log" | tail -1 | cut -d: -f1)
			[ -n "$_done" ] || { _bad2="${_bad2:-} $_f:no-start-line"; continue; }
		fi
		tail -n +"$((_done + 1))" "$T_DIR/gw.log" | grep -q "fetch [^ ]*/$_f: attempt" &&
			_bad2="${_bad2:-} $_f:requested-after-done"
	done
	if [ -z "${_bad2:-}" ]; then t_ok "$_job: nothing downloaded twice"; else t_fail "$_job: sent again:$_bad2"; fi
	_bad2=""
}

# Every cached file hashes to its name (checked here with sha256sum and
# python, not with our code); no temp file left; databases intact.
c_check_end() {
	t_stop_pid "$GW_PID"
	t_check "every cache entry matches its name's SHA-256" python3 - "$GW_CACHE" <<'PY'
import base64, hashlib, os, sys
root = sys.argv[1]; bad = []; n = 0
for prov in os.listdir(root):
    d = os.path.join(root, prov)
    if prov.startswith('.') or not os.path.isdir(d):
        continue
    for f in os.listdir(d):
        if not f.startswith('sha256-'):
            continue
        enc = f[7:].replace('_2B', '+').replace('_2F', '/').replace('_3D', '=')
        want = base64.b64decode(enc)
        h = hashlib.sha256(open(os.path.join(d, f), 'rb').read()).digest()
        n += 1
        if h != want:
            bad.append(f)
print("# %d entries checked, %d bad %s" % (n, len(bad), bad))
sys.exit(1 if bad or n == 0 else 0)
PY
	t_check "no temp files in the cache" sh -c "! ls -a '$GW_CACHE' | grep -E '^\\.rebuild-|\\.tmp'"
	t_check "the gateway's database is intact" sh -c "sqlite3 '$GW_DB' 'PRAGMA integrity_check' | grep -qx ok"
	t_check "the cache index is intact" sh -c "sqlite3 '$GW_CACHE/.index.db' 'PRAGMA integrity_check' | grep -qx ok"
	t_check "the shadow database is intact" sh -c "sqlite3 '$T_DIR/shadow.db' 'PRAGMA integrity_check' | grep -qx ok"
	t_check "deltagate cache verify finds no damage" "$DELTAGATE" cache --root "$GW_CACHE" verify
}
