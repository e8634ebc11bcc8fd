#!/bin/bash
# bench/install/sizes.sh - the stripped size of deltagated (and deltagate)
# for each small-flash configuration, and the shared libraries each needs.
# Builds out of tree in a scratch directory; prints a Markdown table for
# docs/install.md.
#
#   bench/install/sizes.sh [CC]        (CC defaults to gcc)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cc=${1:-gcc}
strip=${STRIP:-strip}
work=${BENCH_WORK:-$(mktemp -d /tmp/dgsizes.XXXXXX)}
[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)

variants="default|
apply-only|--disable-delta-generation
no-dtls|--with-coap-tls=notls
apply-only-no-dtls-no-systemd|--disable-delta-generation --with-coap-tls=notls --without-systemd"

echo "command: $0 $*"
echo "machine: $(uname -m), $($cc --version | head -1), $(date -u +%Y-%m-%d)"
echo
echo "| configuration | configure flags | deltagated stripped (bytes) | deltagate stripped (bytes) | shared libraries deltagated needs |"
echo "|---|---|---:|---:|---|"
while IFS='|' read -r name flags; do
	d=$work/$name
	mkdir -p "$d"
	# shellcheck disable=SC2086
	(cd "$d" && "$top/configure" CC="$cc" CFLAGS="-O2" $flags >configure.out 2>&1 &&
		make -j"$(nproc)" proxy/deltagated src/deltagate >make.out 2>&1) ||
		{ echo "| $name | \`$flags\` | build failed (see $d) | | |"; keep=1; continue; }
	$strip -o "$d/deltagated.s" "$d/proxy/deltagated"
	$strip -o "$d/deltagate.s" "$d/src/deltagate"
	libs=$(objdump -p "$d/proxy/deltagated" | sed -n 's/^ *NEEDED *//p' | sed 's/\.so.*//' | tr '\n' ' ')
	echo "| $name | \`${flags:-(none)}\` | $(stat -c %s "$d/deltagated.s") | $(stat -c %s "$d/deltagate.s") | $libs|"
done <<EOF
$variants
EOF
[ -n "${BENCH_WORK:-}" ] || [ -n "${keep:-}" ] || rm -rf "$work"
