#!/bin/bash
# The option tables are the single source of --help, the man pages' option
# lists and the example files (issue 14): the committed man pages and
# examples equal what the daemons print from their tables, every option is
# listed once, and both examples - as shipped and with every option
# uncommented - pass --test-config.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

for d in deltagated deltagate-shadowd; do
	case $d in
	deltagated) bin=$DELTAGATED ;;
	*) bin=$SHADOWD ;;
	esac
	man="$top_srcdir/docs/$d.8" ex="$top_srcdir/examples/$d.conf"
	t_check "$d: man page option list and example equal the table" \
		"$top_srcdir/scripts/option-docs" check "$bin" "$man" "$ex"

	"$bin" --help > "$T_DIR/$d.help"
	sed -n 's/^  --\([a-z0-9-]*\) .*/\1/p' "$T_DIR/$d.help" | \
		grep -vxE 'test-config|dump-config-example|dump-man-options|help,' | sort > "$T_DIR/$d.opts"
	t_check "$d: --help lists options" test -s "$T_DIR/$d.opts"
	t_check "$d: --help lists no option twice" sh -c "[ -z \"\$(uniq -d '$T_DIR/$d.opts')\" ]"
	# every option of --help is in the man page and the example, and back
	sed -n 's/^\.BI \\-\\-\([a-z0-9\\-]*\) .*/\1/p' "$man" | sed 's/\\-/-/g' | \
		grep -vx 'c' | sort > "$T_DIR/$d.man"
	sed -n 's/^#\{0,1\}\([a-z][a-z0-9-]*\) .*/\1/p' "$ex" | sort -u > "$T_DIR/$d.ex"
	t_check "$d: the man page lists exactly the options of --help" cmp "$T_DIR/$d.opts" "$T_DIR/$d.man"
	t_check "$d: the example shows exactly the options of --help" cmp "$T_DIR/$d.opts" "$T_DIR/$d.ex"
	n=$(grep -c '^# ---- ' "$ex")
	t_check "$d: the example is grouped ($n groups)" test "$n" -ge 4

	"$bin" -c "$ex" --test-config > "$T_DIR/$d.dump" 2>&1; rc=$?
	t_check "$d: the example passes --test-config" sh -c "[ $rc -eq 0 ] && grep -q 'configuration OK' '$T_DIR/$d.dump'"
	sed 's/^#\([a-z]\)/\1/' "$ex" > "$T_DIR/$d.all.conf"
	t_check "$d: every option is set in the uncommented example" \
		test "$(grep -cE '^[a-z]' "$T_DIR/$d.all.conf")" -eq "$(wc -l < "$T_DIR/$d.opts")"
	"$bin" -c "$T_DIR/$d.all.conf" --test-config > "$T_DIR/$d.all.dump" 2>&1; rc=$?
	t_check "$d: the example with every option uncommented passes --test-config" \
		sh -c "[ $rc -eq 0 ] && grep -q 'configuration OK' '$T_DIR/$d.all.dump'"
	# the check is not vacuous: a drifted example fails it
	sed 's/^#\(log-level\) info/#\1 debug/' "$ex" > "$T_DIR/$d.drift.conf"
	t_check "$d: a drifted example is caught" sh -c \
		"! '$top_srcdir/scripts/option-docs' check '$bin' '$man' '$T_DIR/$d.drift.conf' >/dev/null 2>&1"
done
# --- serial driver (issue 12): the serial example passes too
"$DELTAGATED" -c "$top_srcdir/examples/serial.conf" --test-config > "$T_DIR/serial.dump" 2>&1; rc=$?
t_check "examples/serial.conf passes --test-config" sh -c "[ $rc -eq 0 ] && grep -q 'configuration OK' '$T_DIR/serial.dump'"
t_check "examples/serial.conf defines the three protocols" \
	sh -c "grep -q 'protocol=ymodem' '$T_DIR/serial.dump' && grep -q 'protocol=stm32' '$T_DIR/serial.dump' && grep -q 'protocol=smp' '$T_DIR/serial.dump'"
# --- end serial driver
t_done
