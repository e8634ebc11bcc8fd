# tests/openwrt-functions.sh - the part of OpenWrt's /lib/functions.sh an
# init script's UCI reading uses, for tests on a machine without uci:
# config_load, config_get, config_get_bool, config_foreach,
# config_list_foreach, following OpenWrt's documented semantics:
# - a file is "config TYPE [NAME]" sections of "option NAME VALUE" and
#   "list NAME VALUE" lines; values (and names) unquoted, 'single quoted'
#   (literal) or "double quoted" (backslash escapes), parts concatenated;
#   '#' outside quotes starts a comment;
# - an anonymous section gets a generated name (cfgXXXXXX);
# - config_get of a list gives its items joined by spaces, and
#   OPTION_LENGTH / OPTION_ITEMn hold them one by one;
# - config_foreach calls FUNC SECTION [ARGS] per section (of TYPE) in order.
# Values live in CONFIG_<section>_<option> variables, as in OpenWrt.
# The file is ${UCI_CONFIG_DIR:-/etc/config}/NAME.

# UCI text on stdin -> one shell call per line ('...'-quoted arguments)
_uci_to_sh() {
	awk '
	function q(s) { gsub(/\047/, "\047\\\047\047", s); return "\047" s "\047" }
	function err(m) { printf "uci: line %d: %s\n", NR, m > "/dev/stderr"; bad = 1; exit 1 }
	{
		line = $0; n = 0; i = 1; L = length(line)
		while (i <= L) {
			c = substr(line, i, 1)
			if (c == " " || c == "\t") { i++; continue }
			if (c == "#") break
			tok = ""
			while (i <= L) {
				c = substr(line, i, 1)
				if (c == " " || c == "\t") break
				if (c == "\047") {
					j = index(substr(line, i + 1), "\047")
					if (!j) err("unterminated \047")
					tok = tok substr(line, i + 1, j - 1); i += j + 1
				} else if (c == "\"") {
					i++
					while (1) {
						if (i > L) err("unterminated \"")
						c = substr(line, i, 1)
						if (c == "\"") { i++; break }
						if (c == "\\" && i < L) { i++; c = substr(line, i, 1) }
						tok = tok c; i++
					}
				} else if (c == "\\" && i < L) {
					tok = tok substr(line, i + 1, 1); i += 2
				} else {
					tok = tok c; i++
				}
			}
			t[++n] = tok
		}
		if (n == 0) next
		if (t[1] == "config") {
			if (n < 2 || n > 3) err("config TYPE [NAME]")
			if (n == 3 && t[3] !~ /^[A-Za-z0-9_]+$/) err("bad section name")
			if (n == 2) t[3] = sprintf("cfg%02x%04x", ++anon, (NR * 2654435761) % 65536)
			print "config " q(t[2]) " " q(t[3])
		} else if (t[1] == "option" || t[1] == "list") {
			if (n != 3) err(t[1] " NAME VALUE")
			if (t[2] !~ /^[A-Za-z0-9_]+$/) err("bad option name")
			print t[1] " " q(t[2]) " " q(t[3])
		} else if (t[1] == "package") {
			next
		} else err("unknown keyword " t[1])
	}'
}

config() {
	CONFIG_SECTION=$2
	CONFIG_SECTIONS="$CONFIG_SECTIONS $2"
	eval "CONFIG_${2}_TYPE=\$1"
}
option() {
	eval "CONFIG_${CONFIG_SECTION}_${1}=\$2"
}
list() {
	local len
	eval "len=\${CONFIG_${CONFIG_SECTION}_${1}_LENGTH:-0}"
	len=$((len + 1))
	eval "CONFIG_${CONFIG_SECTION}_${1}_ITEM${len}=\$2"
	eval "CONFIG_${CONFIG_SECTION}_${1}_LENGTH=\$len"
	eval "CONFIG_${CONFIG_SECTION}_${1}=\"\${CONFIG_${CONFIG_SECTION}_${1}:+\${CONFIG_${CONFIG_SECTION}_${1}} }\$2\""
}

config_load() {
	local sh s
	for s in $CONFIG_SECTIONS; do
		# shellcheck disable=SC2046  # one name per word
		unset $(set | sed -n "s/^\(CONFIG_${s}_[A-Za-z0-9_]*\)=.*/\1/p")
	done
	CONFIG_SECTIONS=
	CONFIG_SECTION=
	sh=$(_uci_to_sh < "${UCI_CONFIG_DIR:-/etc/config}/$1") || return 1
	eval "$sh"
}

# config_get VAR SECTION OPTION [DEFAULT] | config_get SECTION OPTION
config_get() {
	case $# in
	2) eval "echo \"\${CONFIG_${1}_${2}:-}\"" ;;
	*) eval "export ${NO_EXPORT:+-n} -- \"$1=\${CONFIG_${2}_${3}:-\${4}}\"" ;;
	esac
}

config_get_bool() {
	local _v
	config_get _v "$2" "$3" "${4:-0}"
	case $_v in
	1|on|true|yes|enabled) _v=1 ;;
	0|off|false|no|disabled) _v=0 ;;
	*) _v=${4:-0} ;;
	esac
	eval "$1=\$_v"
}

config_foreach() {
	local fn=$1 type=${2:-} s t
	[ $# -ge 1 ] && shift
	[ $# -ge 1 ] && shift
	for s in $CONFIG_SECTIONS; do
		eval "t=\$CONFIG_${s}_TYPE"
		[ -n "$type" ] && [ "$t" != "$type" ] && continue
		"$fn" "$s" "$@"
	done
}

config_list_foreach() {
	local section=$1 opt=$2 fn=$3 len c=1 val
	shift 3
	eval "len=\${CONFIG_${section}_${opt}_LENGTH:-}"
	[ -z "$len" ] && return 0
	while [ $c -le "$len" ]; do
		eval "val=\$CONFIG_${section}_${opt}_ITEM$c"
		"$fn" "$val" "$@"
		c=$((c + 1))
	done
}
