#!/bin/bash
# make install with DESTDIR lays out a system (issue 14): programs, man
# pages, examples under docdir, default configurations under
# sysconfdir/deltagate (never overwritten), the state directory, and with
# --with-systemd the units (systemd-analyze verify) and sysusers.d entry;
# make uninstall removes what install put there and keeps an edited config.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

root="$T_DIR/root"
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -s -C "$top_builddir" "$@" >>"$T_DIR/make.log" 2>&1; }
t_check "make install DESTDIR=..." mk install DESTDIR="$root"
for f in "$DG_SBINDIR/deltagated" "$DG_SBINDIR/deltagate-shadowd" "$DG_BINDIR/deltagate"; do
	t_check "installed program ${f##*/}" test -x "$root$f"
done
for f in man8/deltagated.8 man8/deltagate-shadowd.8 man1/deltagate.1; do
	t_check "installed man page $f" test -s "$root$DG_MANDIR/$f"
done
for f in deltagated deltagate-shadowd; do
	t_check "example $f.conf under docdir equals examples/" \
		cmp "$top_srcdir/examples/$f.conf" "$root$DG_DOCDIR/examples/$f.conf"
	conf="$root$DG_SYSCONFDIR/deltagate/$f.conf"
	t_check "default $f.conf under sysconfdir/deltagate" test -s "$conf"
	t_check "$f.conf names the installed state directory" \
		grep -q "^db $DG_LOCALSTATEDIR/lib/deltagate/" "$conf"
done
t_check "state directory localstatedir/lib/deltagate (0750)" \
	test "$(stat -c %a "$root$DG_LOCALSTATEDIR/lib/deltagate" 2>/dev/null)" = 750
"$root$DG_SBINDIR/deltagated" -c "$root$DG_SYSCONFDIR/deltagate/deltagated.conf" --test-config >"$T_DIR/tc" 2>&1
t_check "the installed deltagated accepts the installed default config" grep -q 'configuration OK' "$T_DIR/tc"
"$root$DG_SBINDIR/deltagate-shadowd" -c "$root$DG_SYSCONFDIR/deltagate/deltagate-shadowd.conf" --test-config >"$T_DIR/tc" 2>&1
t_check "the installed deltagate-shadowd accepts its default config" grep -q 'configuration OK' "$T_DIR/tc"

if [ -n "$DG_SYSTEMDUNITDIR" ]; then
	for u in deltagated deltagate-shadowd; do
		unit="$root$DG_SYSTEMDUNITDIR/$u.service"
		t_check "installed unit $u.service" test -s "$unit"
		t_check "$u.service starts the installed program with the installed config" \
			grep -qx "ExecStart=$DG_SBINDIR/$u -c $DG_SYSCONFDIR/deltagate/$u.conf" "$unit"
		# verify the unit as installed, its ExecStart pointed into DESTDIR
		mkdir -p "$T_DIR/units"
		sed "s|^ExecStart=$DG_SBINDIR|ExecStart=$root$DG_SBINDIR|" "$unit" > "$T_DIR/units/$u.service"
		systemd-analyze verify --man=no "$T_DIR/units/$u.service" >"$T_DIR/verify.$u" 2>&1; rc=$?
		t_check "systemd-analyze verify $u.service (no finding)" \
			sh -c "[ $rc -eq 0 ] && ! [ -s '$T_DIR/verify.$u' ]"
		[ -s "$T_DIR/verify.$u" ] && sed 's/^/# /' "$T_DIR/verify.$u"
		# the hardening: exposure "OK" or better, and no worse than 2.0
		# (measured: deltagated 1.5, deltagate-shadowd 1.2; docs/install.md)
		systemd-analyze security --offline=true --no-pager "$T_DIR/units/$u.service" > "$T_DIR/sec.$u" 2>&1
		t_diag "$(grep 'Overall exposure' "$T_DIR/sec.$u")"
		t_check "$u.service exposure is at most 2.0 (systemd-analyze security)" \
			systemd-analyze security --offline=true --threshold=20 "$T_DIR/units/$u.service"
	done
	# the check is not vacuous: the unit without its hardening fails it
	grep -Ev '^(NoNewPrivileges|ProtectSystem|CapabilityBoundingSet|SystemCallFilter|PrivateTmp|ProtectHome)=' \
		"$T_DIR/units/deltagated.service" > "$T_DIR/units/weak.service"
	t_check "the unit without its hardening is over the threshold" sh -c \
		"! systemd-analyze security --offline=true --threshold=20 '$T_DIR/units/weak.service' >/dev/null 2>&1"
	# the check is not vacuous: a broken unit is reported
	sed 's/^Type=notify/Type=notifyy/' "$T_DIR/units/deltagated.service" > "$T_DIR/units/broken.service"
	t_check "systemd-analyze verify reports a broken unit" sh -c \
		"systemd-analyze verify --man=no '$T_DIR/units/broken.service' 2>&1 | grep -q notifyy"
	t_check "sysusers.d entry: user deltagate, member of dialout" sh -c \
		"grep -q '^u deltagate ' '$root$DG_SYSUSERSDIR/deltagate.conf' && grep -q '^m deltagate dialout' '$root$DG_SYSUSERSDIR/deltagate.conf'"
fi

# a second install keeps the administrator's configuration
conf="$root$DG_SYSCONFDIR/deltagate/deltagated.conf"
echo 'log-level debug' >> "$conf"
cp "$conf" "$T_DIR/edited"
t_check "make install again" mk install DESTDIR="$root"
t_check "an existing config is not overwritten" cmp "$conf" "$T_DIR/edited"

t_check "make uninstall DESTDIR=..." mk uninstall DESTDIR="$root"
find "$root" -type f | sort > "$T_DIR/left"
t_check "uninstall leaves only the edited config" \
	test "$(cat "$T_DIR/left")" = "$conf"
t_check "the unchanged shadowd config is removed" test ! -e "$root$DG_SYSCONFDIR/deltagate/deltagate-shadowd.conf"
rm -f "$conf"
t_check "make uninstall again" mk uninstall DESTDIR="$root"
t_check "nothing is left but empty directories" sh -c "[ -z \"\$(find '$root' ! -type d)\" ]"
t_check "the state and config directories are gone" sh -c \
	"! [ -e '$root$DG_LOCALSTATEDIR/lib/deltagate' ] && ! [ -e '$root$DG_SYSCONFDIR/deltagate' ]"
[ "$T_FAILED" -eq 0 ] || tail -20 "$T_DIR/make.log" | sed 's/^/# /'
t_done
