#!/bin/sh
# deltagate manifest: import manifest v5 from the command line (TAP).
# Checks sizes and hashes against openssl, --output, and that bad options
# give a clear message and exit 2 (file errors exit 1).
set -u

DG="${top_builddir:-.}/src/deltagate"
T=$(mktemp -d /tmp/dg_manifest_cli.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
n=0
fails=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { # check NAME COMMAND...: ok if the command succeeds
	name=$1; shift
	if "$@"; then ok "$name"; else notok "$name"; fi
}
# expect_exit NAME CODE PATTERN ARGS...: run manifest, want CODE and PATTERN on stderr
expect_exit() {
	name=$1; code=$2; pat=$3; shift 3
	"$DG" manifest "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -eq "$code" ] && grep -q -- "$pat" "$T/err"; then
		ok "$name"
	else
		notok "$name (exit $rc, stderr: $(head -c 300 "$T/err"))"
	fi
}

head -c 300000 /dev/urandom >"$T/target.swu"
head -c 12345 /dev/urandom >"$T/update.delta"
head -c 280000 /dev/urandom >"$T/source.swu"
b64sha() { openssl dgst -sha256 -binary "$1" | base64; }

BASE="--update-provider Contoso --update-name Gateway-1 --update-version 1.2.3"
export SOURCE_DATE_EPOCH=1700000000

# 1: a full manifest on stdout
if "$DG" manifest $BASE --compat manufacturer=Contoso model=GW1 --compat manufacturer=Contoso model=GW2 \
	--step handler=microsoft/swupdate:2 'properties={"installedCriteria":"1.2.3"}' \
	--file "path=$T/target.swu" downloadHandler=microsoft/delta:1 \
	--related-file "path=$T/update.delta" "source=$T/source.swu" >"$T/m.json" 2>"$T/err"; then
	ok "manifest written to stdout"
else
	notok "manifest written to stdout ($(cat "$T/err"))"
fi

# 2: the document holds what the files say (python3 reads the JSON)
cat >"$T/check.py" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
tsize, tsha, dsize, dsha, ssha = sys.argv[2:7]
f = m["files"][0]
r = f["relatedFiles"][0]
assert m["manifestVersion"] == "5.0"
assert m["createdDateTime"] == "2023-11-14T22:13:20Z"
assert m["updateId"] == {"provider": "Contoso", "name": "Gateway-1", "version": "1.2.3"}
assert m["compatibility"] == [{"manufacturer": "Contoso", "model": "GW1"},
                              {"manufacturer": "Contoso", "model": "GW2"}]
s = m["instructions"]["steps"][0]
assert s["handler"] == "microsoft/swupdate:2" and s["files"] == ["target.swu"]
assert s["handlerProperties"] == {"installedCriteria": "1.2.3"}
assert f["filename"] == "target.swu" and f["sizeInBytes"] == int(tsize)
assert f["hashes"] == {"sha256": tsha}
assert f["downloadHandler"] == {"id": "microsoft/delta:1"}
assert r["filename"] == "update.delta" and r["sizeInBytes"] == int(dsize)
assert r["hashes"] == {"sha256": dsha}
assert r["properties"] == {"microsoft.sourceFileHashAlgorithm": "sha256",
                           "microsoft.sourceFileHash": ssha}
assert set(m) <= {"updateId", "description", "compatibility", "instructions", "files",
                  "manifestVersion", "createdDateTime"}
PY
check "sizes, hashes, related file and source hash match openssl" \
	python3 "$T/check.py" "$T/m.json" "$(stat -c %s "$T/target.swu")" "$(b64sha "$T/target.swu")" \
	"$(stat -c %s "$T/update.delta")" "$(b64sha "$T/update.delta")" "$(b64sha "$T/source.swu")"

# 3: --output writes the same document
"$DG" manifest $BASE --compat manufacturer=Contoso model=GW1 --compat manufacturer=Contoso model=GW2 \
	--step handler=microsoft/swupdate:2 'properties={"installedCriteria":"1.2.3"}' \
	--file "path=$T/target.swu" downloadHandler=microsoft/delta:1 \
	--related-file "path=$T/update.delta" "source=$T/source.swu" --output "$T/o.json" >"$T/stdout" 2>&1
check "--output writes the same document, nothing on stdout" \
	sh -c "cmp -s '$T/m.json' '$T/o.json' && ! [ -s '$T/stdout' ]"

# 4..: bad options: clear message, exit 2
MIN="--compat manufacturer=C model=M --step handler=microsoft/swupdate:2 --file path=$T/target.swu"
expect_exit "bad provider refused" 2 "provider" --update-provider "Con toso" --update-name N --update-version 1.0 $MIN
expect_exit "bad name refused" 2 "name" --update-provider P --update-name "a/b" --update-version 1.0 $MIN
expect_exit "one-part version refused" 2 "version" --update-provider P --update-name N --update-version 1 $MIN
expect_exit "five-part version refused" 2 "version" --update-provider P --update-name N --update-version 1.2.3.4.5 $MIN
expect_exit "missing update id" 2 "required" --update-name N --update-version 1.0 $MIN
expect_exit "missing --compat" 2 "compat" $BASE --step handler=a/b:1 --file "path=$T/target.swu"
expect_exit "compat without key=value" 2 "key=value" $BASE --compat Contoso --step handler=a/b:1 --file "path=$T/target.swu"
expect_exit "missing --step" 2 "step" $BASE --compat manufacturer=C --file "path=$T/target.swu"
expect_exit "bad handler" 2 "handler" $BASE --compat manufacturer=C --step handler=swupdate --file "path=$T/target.swu"
expect_exit "step properties not JSON" 2 "not valid JSON" $BASE --compat manufacturer=C \
	--step handler=a/b:1 'properties={"x":' --file "path=$T/target.swu"
expect_exit "bad downloadHandler" 2 "downloadHandler" $BASE --compat manufacturer=C --step handler=a/b:1 \
	--file "path=$T/target.swu" downloadHandler=delta
expect_exit "--related-file before --file" 2 "must follow" $BASE --compat manufacturer=C --step handler=a/b:1 \
	--related-file "path=$T/update.delta" --file "path=$T/target.swu"
expect_exit "step naming an unknown file" 2 "not in files" $BASE --compat manufacturer=C \
	--step handler=a/b:1 files=other.bin --file "path=$T/target.swu"
expect_exit "unknown option" 2 "unknown option" $BASE --colour red
expect_exit "option without its value" 2 "needs a value" $BASE --output

# file errors: exit 1, no output file left behind
expect_exit "missing payload file" 1 "nonexistent" $BASE --compat manufacturer=C --step handler=a/b:1 \
	--file path=/nonexistent/x.swu --output "$T/none.json"
check "no output written on failure" test ! -e "$T/none.json"
expect_exit "output directory missing" 1 "no-such-dir" $BASE --compat manufacturer=C --step handler=a/b:1 \
	--file "path=$T/target.swu" --output "$T/no-such-dir/m.json"

"$DG" manifest --help >"$T/help" 2>&1
check "--help exits 0 and documents the options" grep -q -- "--related-file" "$T/help"

echo "1..$n"
[ "$fails" -eq 0 ]
