#!/bin/bash
# dg_fetch against a real nginx over HTTPS (throwaway CA): outcomes, retries,
# resume, dedup, stalls, redirects, counted from nginx's access log.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"

DRIVER="$top_builddir/tests/fetch_driver"
NGINX_SLOW_RATE=16k
SIZE=1048576
HALF=524288

t_check "nginx starts with TLS" t_start_nginx
t_www_file full.bin $SIZE
t_www_file small.bin 65536
SHA=$(sha256sum "$NGINX_WWW/full.bin" | cut -d' ' -f1)
SMALL_SHA=$(sha256sum "$NGINX_WWW/small.bin" | cut -d' ' -f1)

# fetch OUTFILE [driver options ...]: run the driver (bounded), output in $T_DIR/res
n=0
fetch() {
	n=$((n + 1))
	RES="$T_DIR/res.$n"
	# FETCH_WRAP: e.g. "valgrind -q --error-exitcode=9" to check the driver
	timeout 60 ${FETCH_WRAP:-} "$DRIVER" --ca "$NGINX_CA" --backoff-min 10 --backoff-max 50 "$@" \
		> "$RES" 2> "$RES.err"
	RC=$?
}
# has WORD...: every word appears on the first result line
has() {
	_line=$(head -n 1 "$RES")
	for _w in "$@"; do
		case " $_line " in *" $_w "*) ;; *) echo "missing $_w in: $_line" >&2; return 1 ;; esac
	done
}
same() { cmp -s "$NGINX_WWW/$1" "$2"; }

# --- full download, verified by the sink's SHA-256
t_nginx_mark
fetch --out "$T_DIR/full.1" --size $SIZE --sha256 "$SHA" --get "$NGINX_URL/full.bin"
t_check "full download: outcome 0 (exit 0)" has outcome=0
t_check "full download: one attempt, HTTP 200, all bytes" has http=200 attempts=1 bytes=$SIZE size=$SIZE
t_check "full download: file identical" same full.bin "$T_DIR/full.1"
t_check "full download: one request, $SIZE bytes sent" \
	test "$(t_nginx_requests /full.bin)" -eq 1 -a "$(t_nginx_bytes /full.bin)" -eq $SIZE

# --- pre-signed (secure_link) URLs
url=$(t_signed_url full.bin 300)
fetch --out "$T_DIR/signed.1" --sha256 "$SHA" --log-level debug --get "$url"
t_check "signed URL: downloaded and verified" has outcome=0 http=200
sig=$(echo "$url" | sed 's/.*md5=\([^&]*\).*/\1/')
t_check "signed URL: the signature never reaches the log" \
	sh -c "grep -q 'full.bin?<redacted>' '$RES.err' && ! grep -qF -- '$sig' '$RES.err'"

t_nginx_mark
fetch --out "$T_DIR/expired.1" --retries 3 --get "$(t_signed_url full.bin -10)"
t_check "expired URL: outcome 260 (403), exit 1" sh -c "[ $RC -eq 1 ] && grep -q 'outcome=260 ' '$RES'"
t_check "expired URL: not retried (1 attempt)" has http=403 attempts=1 bytes=0
t_check "expired URL: exactly one request reached nginx" test "$(t_nginx_requests /s/full.bin)" -eq 1
t_check "expired URL: nothing written" test ! -s "$T_DIR/expired.1"
bad=$(t_signed_url full.bin 300 | sed 's/md5=./md5=A/')
[ "$bad" = "$(t_signed_url full.bin 300)" ] && bad=$(t_signed_url full.bin 300 | sed 's/md5=./md5=B/')
fetch --out "$T_DIR/badsig.1" --retries 3 --get "$bad"
t_check "tampered signature: outcome 260, 1 attempt" has outcome=260 attempts=1

# --- TLS verification is always on
t_make_ca "$T_DIR/tls" other
t_nginx_mark
n=$((n + 1)); RES="$T_DIR/res.$n"
timeout 60 "$DRIVER" --ca "$T_DIR/tls/other.pem" --retries 3 --backoff-min 10 --backoff-max 50 \
	--out "$T_DIR/tls.1" --get "$NGINX_URL/full.bin" > "$RES" 2>"$RES.err"
t_check "untrusted CA: outcome 268 (TLS), not retried" has outcome=268 attempts=1 bytes=0
t_check "untrusted CA: no HTTP request was made" test "$(t_nginx_requests /full.bin)" -eq 0
n=$((n + 1)); RES="$T_DIR/res.$n"
timeout 60 "$DRIVER" --retries 0 --out "$T_DIR/tls.2" --get "$NGINX_URL/full.bin" > "$RES" 2>"$RES.err"
t_check "system CAs only (no --ca): outcome 268" has outcome=268

# --- statuses
t_nginx_mark
fetch --out "$T_DIR/404.1" --retries 3 --get "$NGINX_URL/missing.bin"
t_check "404: outcome 261, 1 attempt" has outcome=261 http=404 attempts=1
fetch --out "$T_DIR/410.1" --retries 3 --get "$NGINX_URL/status/410"
t_check "410: outcome 261, 1 attempt" has outcome=261 http=410 attempts=1
t_check "404/410: one request each" \
	test "$(t_nginx_requests /missing.bin)" -eq 1 -a "$(t_nginx_requests /status/410)" -eq 1
fetch --out "$T_DIR/503.1" --retries 2 --get "$NGINX_URL/status/503"
t_check "503: retried, then outcome 263 after 3 attempts" has outcome=263 http=503 attempts=3
t_check "503: three requests reached nginx" test "$(t_nginx_requests /status/503)" -eq 3
t_check "503: nothing of the error page reaches the sink" test ! -s "$T_DIR/503.1"
fetch --out "$T_DIR/429.1" --retries 1 --get "$NGINX_URL/status/429"
t_check "429: retried, then outcome 262" has outcome=262 http=429 attempts=2

# --- resume from what the sink holds
t_nginx_mark
head -c $HALF "$NGINX_WWW/full.bin" > "$T_DIR/resume.1"
fetch --out "$T_DIR/resume.1" --size $SIZE --sha256 "$SHA" --get "$NGINX_URL/full.bin"
t_check "resume: outcome 0, HTTP 206, resumed from $HALF" has outcome=0 http=206 resumed=$HALF bytes=$HALF size=$SIZE
t_check "resume: nginx got Range bytes=$HALF-" test "$(t_nginx_ranges /full.bin)" = "bytes=$HALF-"
t_check "resume: nginx sent only the remaining $HALF bytes" test "$(t_nginx_bytes /full.bin)" -eq $HALF
t_check "resume: the file is whole" same full.bin "$T_DIR/resume.1"

# an interrupted transfer (canceled part-way on the slow path), then resumed
t_nginx_mark
fetch --out "$T_DIR/cut.1" --cancel-at 20000 --get "$NGINX_URL/slow/small.bin"
t_check "interrupted: outcome 11 (canceled)" has outcome=11
cut_at=$(stat -c %s "$T_DIR/cut.1")
t_check "interrupted: a partial file remains" test "$cut_at" -ge 20000 -a "$cut_at" -lt 65536
fetch --out "$T_DIR/cut.1" --sha256 "$SMALL_SHA" --get "$NGINX_URL/small.bin"
t_check "interrupted then resumed: outcome 0, resumed from the cut" has outcome=0 http=206 resumed=$cut_at
t_check "interrupted then resumed: nginx sent only the rest" \
	test "$(t_nginx_bytes /small.bin)" -eq $((65536 - cut_at))
t_check "interrupted then resumed: the file is whole" same small.bin "$T_DIR/cut.1"

# the server ignores Range (200): the sink starts over
t_nginx_mark
head -c $HALF "$NGINX_WWW/full.bin" > "$T_DIR/norange.1"
fetch --out "$T_DIR/norange.1" --sha256 "$SHA" --get "$NGINX_URL/norange/full.bin"
t_check "200 to a Range: sink restarted once, whole body taken" has outcome=0 http=200 restarts=1 bytes=$SIZE
t_check "200 to a Range: the file is whole (no duplicated half)" same full.bin "$T_DIR/norange.1"

# 416: the sink already holds everything -> complete, nothing sent
t_nginx_mark
cp "$NGINX_WWW/small.bin" "$T_DIR/416.1"
fetch --out "$T_DIR/416.1" --sha256 "$SMALL_SHA" --get "$NGINX_URL/small.bin"
t_check "416 with the whole file held: outcome 0, nothing received" has outcome=0 http=416 bytes=0 size=65536
# 416: the sink holds more than the server has -> start over
{ cat "$NGINX_WWW/small.bin"; head -c 100 /dev/urandom; } > "$T_DIR/416.2"
fetch --out "$T_DIR/416.2" --sha256 "$SMALL_SHA" --get "$NGINX_URL/small.bin"
t_check "416 with too much held: restarted and refetched" has outcome=0 http=200 restarts=1 attempts=2
t_check "416 with too much held: the file is whole" same small.bin "$T_DIR/416.2"
# a corrupt partial file: the sink's hash check decides
{ head -c 1000 /dev/zero; } > "$T_DIR/corrupt.1"
fetch --out "$T_DIR/corrupt.1" --sha256 "$SMALL_SHA" --get "$NGINX_URL/small.bin"
t_check "corrupt partial: the sink's SHA-256 check fails -> outcome 269" has outcome=269 http=206

# --- sizes
fetch --out "$T_DIR/big.1" --size 1000 --get "$NGINX_URL/full.bin"
t_check "longer than expected: outcome 266" has outcome=266
t_check "longer than expected: nothing beyond the expected size written" \
	test "$(stat -c %s "$T_DIR/big.1")" -le 1000
fetch --out "$T_DIR/short.1" --size $((SIZE + 1)) --retries 2 --get "$NGINX_URL/full.bin"
t_check "shorter than expected: outcome 267, not retried" has outcome=267 attempts=1
fetch --out /dev/full --get "$NGINX_URL/small.bin"
t_check "sink write error (ENOSPC): outcome 269 with sink_err=7" has outcome=269 sink_err=7

# the rule of dg_fetch.h: from a sink callback, cancel and start refuse
fetch --out "$T_DIR/busy.1" --probe-busy 1 --sha256 "$SMALL_SHA" --get "$NGINX_URL/small.bin"
t_check "sink callback: dg_fetch_cancel/dg_fetch_start refuse with BUSY" grep -qx 'busy=ok' "$RES"
t_check "sink callback: the transfer went on untouched" grep -q 'outcome=0 .*attempts=1 ' "$RES"

# --- dedup: 20 fetches of the same content, one transfer
t_nginx_mark
fetch --out "$T_DIR/dedup.1" --key "$SHA" --sha256 "$SHA" --count 20 --get "$(t_signed_url full.bin 300)"
t_check "dedup: all 20 fetches succeed" sh -c "[ $RC -eq 0 ] && [ \$(grep -c 'outcome=0 ' '$RES') -eq 20 ]"
t_check "dedup: 19 of them attached to the first" test "$(grep -c 'shared=1' "$RES")" -eq 19
t_check "dedup: exactly one request reached nginx" test "$(t_nginx_requests /s/full.bin)" -eq 1
t_check "dedup: one body's worth of bytes sent" test "$(t_nginx_bytes /s/full.bin)" -eq $SIZE
t_check "dedup: the file is whole" same full.bin "$T_DIR/dedup.1"

# --- a stalled transfer: aborted by the low-speed limit, retried with Range
t_nginx_mark
fetch --out "$T_DIR/stall.1" --low-speed-limit 100000 --low-speed-time 1 --retries 1 \
	--get "$NGINX_URL/slow/full.bin"
t_check "stall: outcome 265 after 2 attempts" has outcome=265 attempts=2
t_wait_for 10 sh -c "[ \$(tail -n +$((NGINX_MARK + 1)) '$NGINX_ACCESS' | grep -c 'GET /slow/full.bin') -eq 2 ]"
t_check "stall: two requests reached nginx" test "$(t_nginx_requests /slow/full.bin)" -eq 2
# the second request asks for bytes=N- with N > 0: what the first one got
stall_resumed() {
	_r=$(t_nginx_ranges /slow/full.bin | sed -n 2p)
	_r=${_r#bytes=}
	_r=${_r%-}
	case "$_r" in ''|*[!0-9]*) return 1 ;; esac
	[ "$_r" -gt 0 ] && [ "$_r" -lt "$(stat -c %s "$T_DIR/stall.1")" ]
}
t_check "stall: the retry resumed where the first attempt stopped" stall_resumed
t_check "stall: what was kept is the file's true prefix" \
	cmp -s -n "$(stat -c %s "$T_DIR/stall.1")" "$T_DIR/stall.1" "$NGINX_WWW/full.bin"
# the same with a sink that cannot tell its offset: the fetcher counts
t_nginx_mark
fetch --out "$T_DIR/stall.2" --no-offset 1 --low-speed-limit 100000 --low-speed-time 1 \
	--retries 1 --get "$NGINX_URL/slow/full.bin"
t_check "stall, sink without offset(): outcome 265 after 2 attempts" has outcome=265 attempts=2
t_wait_for 10 sh -c "[ \$(tail -n +$((NGINX_MARK + 1)) '$NGINX_ACCESS' | grep -c 'GET /slow/full.bin') -eq 2 ]"
cp "$T_DIR/stall.2" "$T_DIR/stall.1"
t_check "stall, sink without offset(): resumed from the fetcher's count" stall_resumed
t_check "stall, sink without offset(): the file is the true prefix" \
	cmp -s -n "$(stat -c %s "$T_DIR/stall.2")" "$T_DIR/stall.2" "$NGINX_WWW/full.bin"

# --- network errors
down=$(t_free_port)
start=$(date +%s)
fetch --out "$T_DIR/down.1" --retries 3 --get "https://127.0.0.1:$down/full.bin"
t_check "server down: outcome 264 after 4 attempts" has outcome=264 attempts=4 http=0
t_check "server down: ended within the bound (driver not killed by timeout)" \
	test "$RC" -eq 1 -a $(( $(date +%s) - start )) -lt 60
t_nginx_mark
fetch --out "$T_DIR/drop.1" --retries 1 --get "$NGINX_URL/drop/x"
t_check "connection closed without answer: outcome 264 after 2 attempts" has outcome=264 attempts=2
t_wait_for 5 sh -c "[ \$(tail -n +$((NGINX_MARK + 1)) '$NGINX_ACCESS' | grep -c 'GET /drop/x') -eq 2 ]"
t_check "connection closed: two requests reached nginx" test "$(t_nginx_requests /drop/x)" -eq 2

# --- redirects
fetch --out "$T_DIR/redir.1" --sha256 "$SMALL_SHA" --get "$NGINX_URL/redirect/small.bin"
t_check "redirect followed" has outcome=0 http=200
t_check "redirect: the file is whole" same small.bin "$T_DIR/redir.1"
fetch --out "$T_DIR/loop.1" --max-redirects 3 --get "$NGINX_URL/loop"
t_check "redirect loop: outcome 270" has outcome=270 attempts=1

# --- max concurrent transfers: several distinct files through 2 slots
for i in 1 2 3 4 5; do cp "$NGINX_WWW/small.bin" "$NGINX_WWW/c$i.bin"; done
args=""
for i in 1 2 3 4 5; do args="$args --out $T_DIR/c$i.out --get $NGINX_URL/c$i.bin"; done
# shellcheck disable=SC2086
fetch --max-transfers 2 --sha256 "$SMALL_SHA" $args
t_check "5 transfers through 2 slots: all succeed" sh -c "[ $RC -eq 0 ] && [ \$(grep -c 'outcome=0 ' '$RES') -eq 5 ]"

t_check "bad option value is a usage error (exit 2)" \
	sh -c "'$DRIVER' --max-transfers 0 --out '$T_DIR/x' --get '$NGINX_URL/small.bin' 2>/dev/null; [ \$? -eq 2 ]"

t_stop_nginx
t_done
