# tests/lib-nginx.sh - an HTTPS file server for tests (sourced after lib.sh).
#
# t_start_nginx runs the system's nginx binary as the test user from a
# generated configuration in $T_DIR (nothing touches /var or /etc), serving
# $T_DIR/www over HTTPS with a certificate from a throwaway CA. Functions:
#   t_make_ca DIR NAME         CA key + self-signed cert: DIR/NAME.key, DIR/NAME.pem
#   t_start_nginx              start; sets NGINX_PORT, NGINX_URL, NGINX_PID,
#                              NGINX_CA (the CA to trust), NGINX_WWW,
#                              NGINX_ACCESS (access log), NGINX_SECRET
#   t_stop_nginx               stop it by PID
#   t_signed_url PATH SECONDS  secure_link URL for $NGINX_WWW/PATH valid for
#                              SECONDS from now (negative: already expired)
#   t_www_file PATH SIZE       random file of SIZE bytes at $NGINX_WWW/PATH
#   t_nginx_mark               remember the access log's length ...
#   t_nginx_requests REGEX     ... and count requests since the mark whose
#                              request line matches REGEX (grep -E)
#   t_nginx_bytes REGEX        sum of body bytes sent for those requests
#   t_nginx_ranges REGEX       the Range headers of those requests, one a line
#   t_nginx_log_since REGEX    those requests' access log lines
#
# Locations:
#   /            static files, Range supported
#   /b/          secure_link bound to the client's address as well
#   /s/          the same behind secure_link (?md5=..&expires=..): 403 when
#                the signature is wrong or the link expired
#   /slow/       static files at $NGINX_SLOW_RATE bytes/s (default 2k)
#   /norange/    static files, Range ignored (answers 200 with the whole file)
#   /status/NNN  answers that status (500, 502, 503, 404, 410, 403, 429)
#   /drop/       closes the connection without an answer (nginx's 444)
#   /redirect/P  302 to /P;  /loop  redirects to itself
#
# Access log line: "$request" status body_bytes_sent "range" request_time.
# The request line holds query strings: it is a test log, never a product one.

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
NGINX_SECRET=${NGINX_SECRET:-dg-test-secret}
NGINX_MARK=0

t_make_ca() {
	_tn_dir=$1 _tn_ca=$2
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$_tn_dir/$_tn_ca.key" -out "$_tn_dir/$_tn_ca.pem" -days 2 \
		-subj "/CN=deltagate test $_tn_ca" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
}

# Server key and certificate for 127.0.0.1 signed by DIR/CA.
t_make_server_cert() {
	_tn_dir=$1 _tn_ca=$2
	cat > "$_tn_dir/server.ext" <<EXT
subjectAltName=IP:127.0.0.1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
EXT
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$_tn_dir/server.key" -out "$_tn_dir/server.csr" \
		-subj "/CN=127.0.0.1" >/dev/null 2>&1 &&
	openssl x509 -req -in "$_tn_dir/server.csr" -CA "$_tn_dir/$_tn_ca.pem" \
		-CAkey "$_tn_dir/$_tn_ca.key" -CAcreateserial -days 2 \
		-extfile "$_tn_dir/server.ext" -out "$_tn_dir/server.pem" >/dev/null 2>&1
}

t_start_nginx() {
	NGINX_PORT=${NGINX_PORT:-$(t_free_port)}
	NGINX_URL="https://127.0.0.1:$NGINX_PORT"
	NGINX_WWW="$T_DIR/www"
	NGINX_ACCESS="$T_DIR/nginx-access.log"
	NGINX_CA="$T_DIR/tls/ca.pem"
	mkdir -p "$NGINX_WWW" "$T_DIR/tls" "$T_DIR/nginx-tmp" || return 1
	t_make_ca "$T_DIR/tls" ca || return 1
	t_make_server_cert "$T_DIR/tls" ca || return 1
	cat > "$T_DIR/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $T_DIR/nginx.pid;
error_log $T_DIR/nginx-error.log info;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    client_body_temp_path $T_DIR/nginx-tmp/body;
    proxy_temp_path $T_DIR/nginx-tmp/proxy;
    fastcgi_temp_path $T_DIR/nginx-tmp/fastcgi;
    uwsgi_temp_path $T_DIR/nginx-tmp/uwsgi;
    scgi_temp_path $T_DIR/nginx-tmp/scgi;
    log_format dg '"\$request" \$status \$body_bytes_sent "\$http_range" \$request_time';
    access_log $NGINX_ACCESS dg;
    sendfile off;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $T_DIR/tls/server.pem;
        ssl_certificate_key $T_DIR/tls/server.key;
        root $NGINX_WWW;
        location / { }
        location /s/ {
            secure_link \$arg_md5,\$arg_expires;
            secure_link_md5 "\$secure_link_expires\$uri $NGINX_SECRET";
            if (\$secure_link = "") { return 403; }
            if (\$secure_link = "0") { return 403; }
            alias $NGINX_WWW/;
        }
        location /b/ {
            secure_link \$arg_md5,\$arg_expires;
            secure_link_md5 "\$secure_link_expires\$uri\$remote_addr $NGINX_SECRET";
            if (\$secure_link = "") { return 403; }
            if (\$secure_link = "0") { return 403; }
            alias $NGINX_WWW/;
        }
        location /slow/ {
            limit_rate ${NGINX_SLOW_RATE:-2k};
            alias $NGINX_WWW/;
        }
        location /norange/ {
            max_ranges 0;
            alias $NGINX_WWW/;
        }
CONF
	for _tn_s in 403 404 410 429 500 502 503; do
		echo "        location = /status/$_tn_s { return $_tn_s; }" >> "$T_DIR/nginx.conf"
	done
	cat >> "$T_DIR/nginx.conf" <<CONF
        location /drop/ { return 444; }
        location /redirect/ { rewrite ^/redirect/(.*)\$ /\$1 redirect; }
        location = /loop { return 302 /loop; }
    }
}
CONF
	"$NGINX_BIN" -p "$T_DIR" -c "$T_DIR/nginx.conf" -e "$T_DIR/nginx-error.log" \
		>>"$T_DIR/nginx-stderr.log" 2>&1 &
	NGINX_PID=$!
	T_PIDS="$T_PIDS $NGINX_PID"
	t_wait_for 30 t_port_open "$NGINX_PORT" && kill -0 "$NGINX_PID" 2>/dev/null
}

t_stop_nginx() {
	[ -n "${NGINX_PID:-}" ] && t_stop_pid "$NGINX_PID"
	NGINX_PID=
}

# t_signed_url PATH SECONDS
t_signed_url() {
	_tn_uri="/s/$1"
	_tn_expires=$(( $(date +%s) + $2 ))
	_tn_md5=$(printf '%s' "$_tn_expires$_tn_uri $NGINX_SECRET" | openssl md5 -binary |
		openssl base64 | tr '+/' '-_' | tr -d '=')
	echo "$NGINX_URL$_tn_uri?md5=$_tn_md5&expires=$_tn_expires"
}

# t_www_file PATH SIZE
t_www_file() {
	mkdir -p "$(dirname "$NGINX_WWW/$1")" &&
	head -c "$2" /dev/urandom > "$NGINX_WWW/$1"
}

t_nginx_mark() {
	NGINX_MARK=$(wc -l < "$NGINX_ACCESS" 2>/dev/null || echo 0)
}

_t_nginx_since() {
	tail -n +"$((NGINX_MARK + 1))" "$NGINX_ACCESS" 2>/dev/null | grep -E "^\"[A-Z]+ $1"
}

# the access log lines since the mark whose request line matches REGEX
t_nginx_log_since() { _t_nginx_since "$1"; }

t_nginx_requests() {
	_t_nginx_since "$1" | wc -l
}

t_nginx_bytes() {
	_t_nginx_since "$1" | awk '{ n += $(NF - 2) } END { print n + 0 }'
}

t_nginx_ranges() {
	_t_nginx_since "$1" | sed -n 's/.*" [0-9]* [0-9]* "\([^"]*\)" [0-9.]*$/\1/p'
}
