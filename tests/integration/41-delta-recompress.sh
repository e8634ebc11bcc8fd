#!/bin/sh
# deltagate diff/diffgen: recompressed targets - gzip members zlib cannot
# rebuild (GNU gzip -9), and sw-description signed by --sign-command.
set -u
DL_NAME=dg41
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib-delta.sh"
listing() { cpio -t --quiet <"$1" | tr '\n' ' '; }

# binary data GNU gzip -9 compresses differently from every zlib setting
mkdata() {
	LC_ALL=C awk -v s="$1" 'BEGIN { srand(s); for (i = 0; i < 300000; i++) { r = int(rand() * 4);
		if (r == 0) printf "%c", int(rand() * 256); else if (r == 1) printf "\001\002\003\004%c", int(rand() * 8);
		else printf "%c", 65 + int(rand() * 3) } }'
}
mkdata 1 >"$W/app.1"
cp "$W/app.1" "$W/app.2"
printf 'version two' | dd of="$W/app.2" bs=1 seek=5000 conv=notrunc 2>/dev/null
for v in 1 2; do
	d="$W/v$v"; mkdir "$d"
	printf 'software = { version = "%s"; };\n' "$v" >"$d/sw-description"
	echo "old signature $v" >"$d/sw-description.sig"
	gzip -9n <"$W/app.$v" >"$d/app.gz"
	echo "plain $v" >"$d/readme"
	(cd "$d" && printf 'sw-description\nsw-description.sig\napp.gz\nreadme\n' | cpio -o -H newc --quiet >"$W/t$v.swu")
	(cd "$d" && printf 'sw-description\napp.gz\nreadme\n' | cpio -o -H newc --quiet >"$W/u$v.swu")
done
order="sw-description sw-description.sig app.gz readme "

# 1. a GNU gzip member: the option is required and named
check "GNU gzip member without --recompressed-target exits 1" 1 "$DG" diff "$W/t1.swu" "$W/t2.swu" "$W/d0"
if grep -q -- "--recompressed-target" "$W/err" && grep -q "gzip member" "$W/err"; then
	ok "the error names --recompressed-target"; else nok "the error names --recompressed-target"; fi
if [ ! -e "$W/d0" ]; then ok "no delta written"; else nok "no delta written"; fi

# 2. with it: the delta rebuilds the recompressed target bit for bit
check "diff --recompressed-target exits 0" 0 "$DG" diff "$W/t1.swu" "$W/t2.swu" "$W/d1" --recompressed-target "$W/r1.swu"
check "apply exits 0" 0 "$DG" apply "$W/t1.swu" "$W/d1" "$W/o1"
same "apply rebuilds the recompressed target" "$W/o1" "$W/r1.swu"
if [ "$(listing "$W/r1.swu")" = "$order" ]; then ok "cpio -t order kept"; else nok "cpio -t order: $(listing "$W/r1.swu")"; fi
if ! cmp -s "$W/r1.swu" "$W/t2.swu"; then ok "the recompressed target differs from the target"; else nok "recompressed target differs"; fi
mkdir "$W/x1" && (cd "$W/x1" && cpio -id --quiet <"$W/r1.swu")
if zcat "$W/x1/app.gz" | cmp -s - "$W/app.2"; then ok "recompressed member has the target's content"; else nok "recompressed member content"; fi
same "other members unchanged" "$W/x1/readme" "$W/v2/readme"
dsz=$(wc -c <"$W/d1"); tsz=$(wc -c <"$W/t2.swu")
if [ "$dsz" -lt $((tsz / 20)) ]; then ok "delta is small ($dsz of $tsz bytes)"; else nok "delta is small ($dsz of $tsz)"; fi
# zlib rebuilds the recompressed target: it needs no recompressed target
check "the recompressed target needs no recompression" 0 "$DG" diff "$W/t1.swu" "$W/r1.swu" "$W/d2"

# 3. a whole gzip file
gzip -9n <"$W/app.1" >"$W/a1.gz"; gzip -9n <"$W/app.2" >"$W/a2.gz"
check ".gz without --recompressed-target exits 1" 1 "$DG" diff "$W/a1.gz" "$W/a2.gz" "$W/d3"
check ".gz with --recompressed-target exits 0" 0 "$DG" diff "$W/a1.gz" "$W/a2.gz" "$W/d3" --recompressed-target "$W/r3.gz"
check ".gz apply exits 0" 0 "$DG" apply "$W/a1.gz" "$W/d3" "$W/o3"
same ".gz apply rebuilds the recompressed target" "$W/o3" "$W/r3.gz"
if zcat "$W/r3.gz" | cmp -s - "$W/app.2"; then ok ".gz recompressed content"; else nok ".gz recompressed content"; fi

# 4. --sign-command: openssl with a test key, run in a private directory
openssl genrsa -out "$W/key.pem" 2048 2>/dev/null
openssl rsa -in "$W/key.pem" -pubout -out "$W/pub.pem" 2>/dev/null
cat >"$W/sign.sh" <<EOS
#!/bin/sh
pwd >"$W/sign.cwd"
exec openssl dgst -sha256 -sign "$W/key.pem" -out "\$1.sig" "\$1"
EOS
chmod +x "$W/sign.sh"
check "diff --sign-command exits 0" 0 "$DG" diff "$W/t1.swu" "$W/t2.swu" "$W/d4" --recompressed-target "$W/r4.swu" --sign-command "$W/sign.sh"
check "signed: apply exits 0" 0 "$DG" apply "$W/t1.swu" "$W/d4" "$W/o4"
same "signed: apply rebuilds the signed recompressed target" "$W/o4" "$W/r4.swu"
if [ "$(listing "$W/r4.swu")" = "$order" ]; then ok "signed: .sig right after sw-description, replaced in place"; else nok "signed order: $(listing "$W/r4.swu")"; fi
mkdir "$W/x4" && (cd "$W/x4" && cpio -id --quiet <"$W/r4.swu")
if openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/x4/sw-description.sig" "$W/x4/sw-description" >/dev/null 2>&1; then
	ok "signature verifies"; else nok "signature verifies"; fi
if zcat "$W/x4/app.gz" | cmp -s - "$W/app.2"; then ok "signed: member recompressed too"; else nok "signed: member content"; fi
cwd=$(cat "$W/sign.cwd" 2>/dev/null)
case $cwd in
"$W"|"") nok "the command ran in a private directory ($cwd)" ;;
*) if [ ! -e "$cwd" ]; then ok "the command ran in a private directory, removed after"; else nok "private directory left: $cwd"; fi ;;
esac
check "signed: no .sig in the target: inserted" 0 "$DG" diff "$W/u1.swu" "$W/u2.swu" "$W/d5" --recompressed-target "$W/r5.swu" --sign-command "$W/sign.sh"
if [ "$(listing "$W/r5.swu")" = "$order" ]; then ok "inserted .sig right after sw-description"; else nok "inserted order: $(listing "$W/r5.swu")"; fi
check "signed, inserted: apply" 0 "$DG" apply "$W/u1.swu" "$W/d5" "$W/o5"
same "signed, inserted: rebuilds the recompressed target" "$W/o5" "$W/r5.swu"
check "--sign-command needs --recompressed-target" 1 "$DG" diff "$W/u1.swu" "$W/u2.swu" "$W/d6" --sign-command "$W/sign.sh"
if grep -q -- "--recompressed-target" "$W/err"; then ok "... and says so"; else nok "... and says so"; fi

# 5. signing failures: clear errors, nothing written
rm -f "$W/d6" "$W/r6.swu"
check "a failing signing command exits 1" 1 "$DG" diff "$W/t1.swu" "$W/t2.swu" "$W/d6" --recompressed-target "$W/r6.swu" --sign-command false
if grep -q "signing command failed" "$W/err"; then ok "... with a clear error"; else nok "signing failure message"; fi
if [ ! -e "$W/d6" ] && [ ! -e "$W/r6.swu" ]; then ok "nothing written after a signing failure"; else nok "files left after a signing failure"; fi
check "a command making no .sig exits 1" 1 "$DG" diff "$W/t1.swu" "$W/t2.swu" "$W/d6" --recompressed-target "$W/r6.swu" --sign-command true
check "--sign-command on a plain file exits 1" 1 "$DG" diff "$W/a1.gz" "$W/a2.gz" "$W/d6" --recompressed-target "$W/r6.gz" --sign-command "$W/sign.sh"
if grep -q "not a .swu" "$W/err"; then ok "... saying it is not a .swu"; else nok "not a .swu message"; fi

# 6. diffgen: SIGNING_COMMAND as the 7th argument, signing in WORK_DIR
check "diffgen with SIGNING_COMMAND exits 0" 0 "$DG" diffgen "$W/t1.swu" "$W/t2.swu" "$W/d7" "$W/logs" "$W/work" "$W/r7.swu" "$W/sign.sh"
check "diffgen: apply" 0 "$DG" apply "$W/t1.swu" "$W/d7" "$W/o7"
same "diffgen: rebuilds the signed recompressed target" "$W/o7" "$W/r7.swu"
if [ "$(listing "$W/r7.swu")" = "$order" ]; then ok "diffgen: cpio -t order"; else nok "diffgen order: $(listing "$W/r7.swu")"; fi
case $(cat "$W/sign.cwd") in "$W/work/deltagate-sign."*) ok "diffgen signs in WORK_DIR" ;; *) nok "diffgen signs in WORK_DIR" ;; esac
mkdir "$W/x7" && (cd "$W/x7" && cpio -id --quiet <"$W/r7.swu")
if openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/x7/sw-description.sig" "$W/x7/sw-description" >/dev/null 2>&1; then
	ok "diffgen: signature verifies"; else nok "diffgen: signature verifies"; fi
check "diffgen with a failing SIGNING_COMMAND exits 1" 1 "$DG" diffgen "$W/t1.swu" "$W/t2.swu" "$W/d8" "$W/logs" "$W/work" "$W/r8.swu" false
if grep -q "failed" "$W/logs/deltagate-diffgen.log"; then ok "diffgen logs the signing failure"; else nok "diffgen log"; fi

echo "1..$n"
[ "$fails" -eq 0 ]
