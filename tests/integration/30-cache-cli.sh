#!/bin/sh
# deltagate cache: the command line over a real cache directory (TAP).
set -u

DG="${top_builddir:-.}/src/deltagate"
T=$(mktemp -d /tmp/dg-cache-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
R="$T/root"
n=0
fail=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; fail=1; }
check() { # check NAME CMD... : passes if CMD succeeds
	name=$1; shift
	if "$@" >"$T/out" 2>"$T/err"; then ok "$name"; else notok "$name"; sed 's/^/# /' "$T/out" "$T/err"; fi
}
status() { # status NAME EXPECTED CMD...
	name=$1 want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" -eq "$want" ]; then ok "$name"; else notok "$name (exit $got, want $want)"; sed 's/^/# /' "$T/err"; fi
}
# the layout's name, computed independently of deltagate
encname() { printf 'sha256-%s' "$(openssl dgst -sha256 -binary "$1" | base64 | sed 's/+/_2B/g; s|/|_2F|g; s/=/_3D/g')"; }
hexof() { sha256sum "$1" | cut -c1-64; }
dgc() { "$DG" cache --root "$R" "$@"; }

printf 'deltagate-8' >"$T/a.bin"          # base64 of its digest has '+', '/' and '='
head -c 200000 /dev/urandom >"$T/b.bin"
head -c 3000 /dev/urandom >"$T/c.bin"
A=$(encname "$T/a.bin"); B=$(encname "$T/b.bin"); C=$(encname "$T/c.bin")

# 1-4: import, paths
check "import prints the layout paths" dgc import --provider contoso "$T/a.bin" "$T/b.bin"
cp "$T/out" "$T/imported"
printf '%s\n%s\n' "$R/contoso/$A" "$R/contoso/$B" >"$T/want"
check "import output is <root>/<provider>/sha256-<escaped base64>" cmp "$T/imported" "$T/want"
check "the name of 'deltagate-8' escapes + / =" test "$A" = "sha256-gYlDC89V3KrYv0XaSM8L_2F_2Ba99WcapFPZ4sz9XVtd_2Fpg_3D"
check "cached bytes equal the source" cmp "$R/contoso/$B" "$T/b.bin"
dgc path --provider contoso "$T/b.bin" >"$T/p1" 2>/dev/null
dgc path --provider contoso --sha256 "$(hexof "$T/b.bin")" >"$T/p2" 2>/dev/null
echo "$R/contoso/$B" >"$T/want"
check "path FILE and path --sha256 agree with import" sh -c "cmp '$T/p1' '$T/want' && cmp '$T/p2' '$T/want'"
dgc path --provider other "$T/c.bin" >"$T/p3" 2>/dev/null
check "path of an entry not cached creates nothing" sh -c "[ \"\$(cat '$T/p3')\" = '$R/other/$C' ] && [ ! -e '$R/other' ]"

# 5-7: list, idempotent import
check "import of the same file again" dgc import --provider contoso "$T/a.bin"
dgc list >"$T/list" 2>/dev/null
check "list shows two entries" test "$(wc -l <"$T/list")" -eq 2
check "list shows provider, hex digest and size" grep -q "^contoso	$(hexof "$T/b.bin")	200000	0	$R/contoso/$B\$" "$T/list"
dgc list --json >"$T/json" 2>/dev/null
check "list --json is JSON with both entries" sh -c "python3 -c 'import json,sys; d=json.load(open(\"$T/json\")); sys.exit(0 if len(d)==2 and {e[\"size\"] for e in d}=={11,200000} else 1)'"

# 8-11: adopt a directory made by another tool of the layout
F="$T/foreign"
mkdir -p "$F/fabrikam" "$F/fabrikam2"
cp "$T/c.bin" "$F/fabrikam/$C"
cp "$T/c.bin" "$F/fabrikam/$A"            # content does not match its name
echo notes >"$F/fabrikam/README"
cp "$T/c.bin" "$F/fabrikam2/$C"
status "import --adopt with a mismatching file exits 1" 1 dgc import --adopt "$F"
check "the good file is adopted under its provider" cmp "$R/fabrikam/$C" "$T/c.bin"
check "the mismatching file is not" test ! -e "$R/fabrikam/$A"
check "the source directory is left as it was" test -e "$F/fabrikam/$A" -a -e "$F/fabrikam/$C"
check "import --adopt --provider DIR" dgc import --adopt --provider initech "$F/fabrikam2"
check "adopted under the chosen provider" cmp "$R/initech/$C" "$T/c.bin"

# 14-16: verify
check "verify of an intact cache" dgc verify
printf 'X' | dd of="$R/contoso/$B" bs=1 seek=100 conv=notrunc 2>/dev/null
status "verify finds a damaged file and exits 1" 1 dgc verify
check "the damaged file is quarantined and no longer listed" sh -c \
	"[ ! -e '$R/contoso/$B' ] && ls '$R/.quarantine' | grep -q 'contoso_$B' && ! dgc list | grep -q '$(hexof "$T/b.bin")'" 

# 17-22: pins and gc
dgc import --provider contoso "$T/b.bin" >/dev/null 2>&1
HB=$(hexof "$T/b.bin"); HA=$(hexof "$T/a.bin")
check "pin" dgc pin --provider contoso --sha256 "$HB" --holder dev:1
dgc list >"$T/l2" 2>&1
check "pin count shows in list" grep -q "	$HB	200000	1	" "$T/l2"
check "gc down to a quota keeps the pinned entry" dgc --quota 200000 gc
check "gc evicted the unpinned ones" sh -c "[ -e '$R/contoso/$B' ] && [ ! -e '$R/contoso/$A' ] && [ ! -e '$R/fabrikam/$C' ]"
status "gc below the pinned bytes exits 1" 1 dgc --quota 1K gc
check "and the pinned entry is still there" cmp "$R/contoso/$B" "$T/b.bin"
check "unpin" dgc unpin --provider contoso --sha256 "$HB" --holder dev:1
status "unpin of a pin not held exits 1" 1 dgc unpin --provider contoso --sha256 "$HB" --holder dev:1
check "unpin --holder-prefix" dgc unpin --holder-prefix dev:

# error exits
status "no --root is a usage error" 2 "$DG" cache list
status "unknown command is a usage error" 2 dgc frobnicate
status "unknown option is a usage error" 2 dgc list --bogus
status "bad --quota is a usage error" 2 dgc --quota 12X gc
status "gc without --quota is a usage error" 2 dgc gc
status "provider '..' is refused" 2 dgc import --provider .. "$T/a.bin"
status "provider with '/' is refused" 2 dgc path --provider a/b "$T/a.bin"
status "import without --provider is a usage error" 2 dgc import "$T/a.bin"
status "a bad --sha256 is a usage error" 2 dgc pin --provider contoso --sha256 abc --holder h
status "pin without --holder is a usage error" 2 dgc pin --provider contoso --sha256 "$HA"
status "pin of an entry not cached exits 1" 1 dgc pin --provider contoso --sha256 "$HA" --holder h
status "import of a missing file exits 1" 1 dgc import --provider contoso "$T/missing"
: >"$T/plainfile"
status "a root that is a file exits 1" 1 "$DG" cache --root "$T/plainfile/sub" list
status "path of a missing file exits 1" 1 dgc path --provider contoso "$T/missing"
check "no temp file was left anywhere" sh -c "! find '$R' -name '.tmp-*' | grep -q ."

echo "1..$n"
exit 0
