#!/bin/bash
# The OpenWrt package (issue 14): shellcheck on the procd init script; its
# UCI translation run on UCI files through tests/openwrt-functions.sh
# (options, lists, named and anonymous sections, quoting), the result
# accepted by deltagated --test-config; start_service's procd calls.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

INIT="$top_srcdir/packaging/openwrt/deltagate/files/deltagated.init"
t_check "shellcheck deltagated.init" shellcheck "$INIT"
t_check "shellcheck tests/openwrt-functions.sh" shellcheck -s bash "$top_srcdir/tests/openwrt-functions.sh"

. "$top_srcdir/tests/openwrt-functions.sh"
. "$INIT"
PROG=$DELTAGATED
export UCI_CONFIG_DIR="$T_DIR/config"
mkdir -p "$UCI_CONFIG_DIR"

# the shim itself, on OpenWrt's documented semantics
cat > "$UCI_CONFIG_DIR/shim" <<'UCI'
package shim
# a comment
config a 'named'
	option plain value
	option single 'two words'
	option double "say \"hi\" \\o/"
	option mixed 'a'"b"c
	list items 'one'
	list items "two 2"
config b
	option x '1'   # trailing comment
config a
	option x 'on'
UCI
config_load shim
config_get v named plain; t_check "unquoted value" test "$v" = value
config_get v named single; t_check "single-quoted value" test "$v" = "two words"
config_get v named double; t_check "double-quoted value with escapes" test "$v" = 'say "hi" \o/'
config_get v named mixed; t_check "concatenated quoting" test "$v" = abc
config_get v named items; t_check "a list reads as its items joined by spaces" test "$v" = "one two 2"
collect() { got="$got[$1]"; }
got=; config_list_foreach named items collect
t_check "config_list_foreach gives each item" test "$got" = "[one][two 2]"
config_get v named nosuch dflt; t_check "config_get default" test "$v" = dflt
secs=; each() { secs="$secs $1"; }
config_foreach each a
t_check "config_foreach TYPE: the named and the anonymous section, in order" \
	sh -c "echo '$secs' | grep -qE '^ named cfg[0-9a-f]{6}$'"
anon=${secs##* }
config_get_bool v "$anon" x; t_check "config_get_bool of 'on' in an anonymous section" test "$v" = 1
secs=; config_foreach each; t_check "config_foreach without TYPE: all 3 sections" test "$(echo $secs | wc -w)" -eq 3

# the translation, on the shipped file and on one with every kind of value
cp "$top_srcdir/packaging/openwrt/deltagate/files/deltagate.config" "$UCI_CONFIG_DIR/deltagate"
deltagate_translate > "$T_DIR/shipped.conf" 2>"$T_DIR/err"
t_check "the shipped UCI file translates" test -s "$T_DIR/shipped.conf"
t_check "the shipped UCI file's translation passes --test-config" \
	sh -c "'$DELTAGATED' -c '$T_DIR/shipped.conf' --test-config | grep -q 'configuration OK'"

cat > "$UCI_CONFIG_DIR/deltagate" <<UCI
config deltagated 'main'
	option enabled '1'
	option gateway_id "gw-7"
	option broker 'mqtt://127.0.0.1:1883'
	option db '$T_DIR/state/gw.db'
	option cache_root $T_DIR/cache
	option cache_quota '8M'
	option exec_command '/bin/echo flash "\$DG_DEVICE"'
	option max_deliveries_per_link 2
	option log_level 'debug'
	list device 'listed-1 version=1.0'
	list device "listed-2 driver=exec link=bus0"
	list serial_model 'iap protocol=ymodem baud=115200'

config device
	option id 'sensor-1'
	option address '/dev/ttyUSB0'
	option link 'rs485'
	option version '2.1.0'

config device 'sensor2'
	option driver exec
	option sha256 '$(printf '%064d' 0)'

config device 'meter1'
	option driver serial
	option tty '/dev/ttyUSB9'
	option hotplug 'yes'
	option model 'iap'
	option rs485_delay_before '2'

config device
	option id 'off-1'
	option enabled '0'
UCI
deltagate_translate > "$T_DIR/gw.conf" 2>"$T_DIR/err"; rc=$?
t_check "translation succeeds" test $rc -eq 0
has() { grep -qxF -- "$1" "$T_DIR/gw.conf"; }
t_check "option with '_' becomes the daemon's '-' name" has 'gateway-id "gw-7"'
t_check "a value with blanks and quotes is kept whole" has "exec-command \"/bin/echo flash \"\$DG_DEVICE\"\""
t_check "a list option gives one line per item" sh -c \
	"grep -qxF 'device \"listed-1 version=1.0\"' '$T_DIR/gw.conf' && grep -qxF 'device \"listed-2 driver=exec link=bus0\"' '$T_DIR/gw.conf'"
t_check "an anonymous device section with id=" has 'device "sensor-1 address=/dev/ttyUSB0 link=rs485 version=2.1.0"'
t_check "a named device section without id= is named by its section" has "device \"sensor2 driver=exec sha256=$(printf '%064d' 0)\""
t_check "a serial device section: its attributes, '_' written '-'" \
	has 'device "meter1 driver=serial tty=/dev/ttyUSB9 model=iap rs485-delay-before=2 hotplug=yes"'
t_check "a disabled device is left out" sh -c "! grep -q off-1 '$T_DIR/gw.conf'"
t_check "'enabled' is not passed to the daemon" sh -c "! grep -q '^enabled' '$T_DIR/gw.conf'"
"$DELTAGATED" -c "$T_DIR/gw.conf" --test-config > "$T_DIR/dump" 2>&1; rc=$?
t_check "deltagated --test-config accepts the translation" sh -c "[ $rc -eq 0 ] && grep -q 'configuration OK' '$T_DIR/dump'"
t_check "the daemon reads 5 devices and the values" sh -c \
	"[ \$(grep -c '^device ' '$T_DIR/dump') -eq 5 ] && grep -qx 'max-deliveries-per-link 2' '$T_DIR/dump' && grep -qx 'cache-quota 8388608' '$T_DIR/dump'"

# start_service: procd calls recorded
procd_open_instance() { echo "open" >> "$T_DIR/procd"; }
procd_set_param() { echo "$*" >> "$T_DIR/procd"; }
procd_close_instance() { echo "close" >> "$T_DIR/procd"; }
procd_add_reload_trigger() { echo "trigger $*" >> "$T_DIR/procd"; }
CONF="$T_DIR/var/etc/deltagated.conf"
start_service; rc=$?
t_check "start_service succeeds" test $rc -eq 0
t_check "start_service writes the translated config" cmp "$CONF" "$T_DIR/gw.conf"
t_check "procd command: the daemon with the generated file" grep -qxF "command $DELTAGATED -c $CONF" "$T_DIR/procd"
t_check "procd respawn and file (restart on UCI change)" sh -c \
	"grep -q '^respawn' '$T_DIR/procd' && grep -qx 'file /etc/config/deltagate' '$T_DIR/procd'"
service_triggers
t_check "reload trigger on the deltagate UCI config" grep -qx 'trigger deltagate' "$T_DIR/procd"
# an invalid UCI value: no instance, a clear message
sed -i "s/option max_deliveries_per_link 2/option max_deliveries_per_link 0/" "$UCI_CONFIG_DIR/deltagate"
: > "$T_DIR/procd"
start_service 2> "$T_DIR/err"; rc=$?
t_check "an invalid UCI value: start_service fails, no instance" sh -c "[ $rc -ne 0 ] && ! grep -q open '$T_DIR/procd'"
t_check "... saying which option" grep -q 'max-deliveries-per-link' "$T_DIR/err"
# a device attribute with a blank cannot be written as a device line
sed -i "s/max_deliveries_per_link 0/max_deliveries_per_link 2/; s/option version '2.1.0'/option version '2.1 beta'/" "$UCI_CONFIG_DIR/deltagate"
deltagate_translate > /dev/null 2> "$T_DIR/err"; rc=$?
t_check "a device attribute with blanks is refused" sh -c "[ $rc -ne 0 ] && grep -q 'version has blanks' '$T_DIR/err'"
# the package Makefile: every configure option it passes exists, and the
# files it installs are the ones tested here
PKGMK="$top_srcdir/packaging/openwrt/deltagate/Makefile"
"$top_srcdir/configure" --help > "$T_DIR/confhelp"
opts=$(sed -n '/^CONFIGURE_ARGS/,/^$/p' "$PKGMK" | grep -o -- '--[a-z-]*' | sort -u)
t_check "the package passes configure options" test -n "$opts"
for o in $opts; do
	case $o in --disable-*) h="--enable-${o#--disable-}|$o" ;; --without-*) h="--with-${o#--without-}|$o" ;; *) h=$o ;; esac
	t_check "configure knows $o (OpenWrt package)" grep -qE -- "($h)([=[ ]|\$)" "$T_DIR/confhelp"
done
t_check "the package installs the init script and the UCI defaults tested here" sh -c \
	"grep -q 'files/deltagated.init' '$PKGMK' && grep -q 'files/deltagate.config' '$PKGMK'"
t_check "the package declares the feed's libraries it links" sh -c \
	"grep -q '+libevent2' '$PKGMK' && grep -q '+libcoap' '$PKGMK' && grep -q '+paho-mqtt-c' '$PKGMK'"
t_check "paho-mqtt-c, which the feed lacks, has its package next to it" \
	grep -q 'BuildPackage,paho-mqtt-c' "$top_srcdir/packaging/openwrt/paho-mqtt-c/Makefile"
t_done
