#!/bin/bash
# When delivery slots are scarce, waiting deliveries start round-robin
# across links (a link with many devices waiting does not starve one with
# few), and within a link in the order their commands arrived. The order
# is read from the flashing tool's log: with one slot, starts are serial.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
t_gw_flasher
devs=("blk address=hold link=bus0")
for i in 1 2 3 4 5 6; do devs+=("a$i link=bus1"); done
for i in 1 2; do devs+=("b$i link=bus2"); done
devs+=("c1" "c2")
t_gw_conf "${devs[@]}"
printf 'max-deliveries 1\nmax-deliveries-per-link 1\n' >> "$T_DIR/gw.conf"
t_check "deltagated starts" t_gw_start
head -c 20000 /dev/urandom > "$NGINX_WWW/f.bin"
stage() { sqlite3 "$GW_DB" "SELECT stage FROM job WHERE device = '$1' AND job_id = '$2'"; }
wait_stage() { t_wait_for 30 sh -c "[ \"\$(sqlite3 '$GW_DB' \"SELECT stage FROM job WHERE device = '$1' AND job_id = '$2'\")\" = $3 ]"; }

# blk holds the only slot while the others arrive: six on bus1 first,
# then two on bus2, then two devices alone on their links
touch "$T_DIR/dev/hold"
t_gw_command blk jobF "$NGINX_URL/f.bin" "$NGINX_WWW/f.bin"
t_check "blk holds the only slot" wait_stage blk jobF transferring
order=""
for d in a1 a2 a3 a4 a5 a6 b1 b2 c1 c2; do
	t_gw_command "$d" jobF "$NGINX_URL/f.bin" "$NGINX_WWW/f.bin"
	wait_stage "$d" jobF staged || t_diag "$d did not reach staged: $(stage "$d" jobF)"
done
t_check "all ten wait for the slot (staged)" test "$(sqlite3 "$GW_DB" "SELECT count(*) FROM job WHERE job_id = 'jobF' AND stage = 'staged'")" -eq 10
rm "$T_DIR/dev/hold"
for d in blk a1 a2 a3 a4 a5 a6 b1 b2 c1 c2; do
	t_check "$d succeeds" t_gw_wait_status "$d" jobF SUCCEEDED 60
done
order=$(awk '$1 == "start" { printf "%s%s", sep, $2; sep = " " }' "$T_DIR/dev/flash.log")
t_diag "start order: $order"
# links served least recently first: bus1, bus2, c1, c2 have never been
# served, so arrival order breaks the tie; then round-robin among the
# links that still wait
t_check "starts go round-robin across links, in arrival order within one" \
	test "$order" = "blk a1 b1 c1 c2 a2 b2 a3 a4 a5 a6"
t_check "one transfer at a time" test "$(t_gw_max_concurrent)" -eq 1
t_done
