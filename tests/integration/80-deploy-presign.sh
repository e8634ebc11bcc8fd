#!/bin/bash
# deltagate presign and keygen: AWS's published pre-signed GET link, nginx
# secure_link links accepted by a real nginx (tampered or expired: 403),
# key pairs that openssl reads.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"

DG="$top_builddir/src/deltagate"

# --- S3: AWS's worked example, bit for bit
out=$(env -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
	AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
	"$DG" presign s3://examplebucket/test.txt --expires 86400 --region us-east-1 --at 20130524T000000Z)
t_check "presign s3://examplebucket/test.txt: AWS's published URL" test "$out" = \
"https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

# credentials from the shared credentials file, profile AWS_PROFILE
cat > "$T_DIR/credentials" <<CRED
[default]
aws_access_key_id = WRONG
aws_secret_access_key = WRONG
[ops]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
CRED
out2=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
	AWS_SHARED_CREDENTIALS_FILE="$T_DIR/credentials" AWS_PROFILE=ops \
	"$DG" presign s3://examplebucket/test.txt --expires 86400 --at 20130524T000000Z)
t_check "presign: credentials from the shared file's profile give the same link" test "$out2" = "$out"
out3=$(AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=x AWS_SESSION_TOKEN=tok/en+1 \
	"$DG" presign s3://b/k --expires 60 --endpoint http://127.0.0.1:9000 --at 20260101T000000Z)
t_check "presign --endpoint: path-style link with the session token signed" \
	sh -c "case '$out3' in 'http://127.0.0.1:9000/b/k?'*'X-Amz-Security-Token=tok%2Fen%2B1&'*) exit 0;; esac; exit 1"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE=/nonexistent HOME="$T_DIR" \
	"$DG" presign s3://b/k --expires 60 >/dev/null 2>"$T_DIR/err"; rc=$?
t_check "presign without credentials: exit 1 with a message" sh -c "[ $rc -eq 1 ] && grep -q 'no AWS credentials' '$T_DIR/err'"
"$DG" presign s3://b/k >/dev/null 2>&1; rc=$?
t_check "presign without --expires: exit 2" test $rc -eq 2
"$DG" presign s3://b/k --expires 604801 >/dev/null 2>&1; rc=$?
t_check "presign --expires past 7 days: exit 2" test $rc -eq 2
AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b "$DG" presign s3://bucket-only --expires 5 >/dev/null 2>&1; rc=$?
t_check "presign s3://bucket without a key: exit 2" test $rc -eq 2

# --- nginx secure_link
t_check "nginx starts with TLS" t_start_nginx
t_www_file "fw 2.bin" 4096
printf '%s\n' "$NGINX_SECRET" > "$T_DIR/secret"
get() { curl -s -o "$T_DIR/got" -w '%{http_code}' --cacert "$NGINX_CA" "$1"; }
now=$(date +%s)
link=$("$DG" presign "$NGINX_URL/s/fw 2.bin" --expires 300 --secret-file "$T_DIR/secret" \
	--at "$(date -u -d "@$now" +%Y%m%dT%H%M%SZ)")
t_check "secure_link: link printed" test -n "$link"
t_check "secure_link: nginx serves it (200, same bytes)" \
	sh -c "[ \"\$(curl -s -o '$T_DIR/got' -w '%{http_code}' --cacert '$NGINX_CA' '$link')\" = 200 ] && cmp -s '$T_DIR/got' '$NGINX_WWW/fw 2.bin'"
md5=$(printf '%s' "$((now + 300))/s/fw 2.bin $NGINX_SECRET" | openssl md5 -binary |
	openssl base64 | tr '+/' '-_' | tr -d '=')
t_check "secure_link: same link as the shell recipe of nginx's docs" \
	test "$link" = "$NGINX_URL/s/fw%202.bin?md5=$md5&expires=$((now + 300))"
tampered=$(echo "$link" | sed 's/md5=\(.\)/md5=\1x/')
t_check "secure_link: tampered hash gets 403" test "$(get "$tampered")" = 403
moved=$(echo "$link" | sed 's/expires=\([0-9]*\)/expires=\19/')
t_check "secure_link: extended expiry gets 403" test "$(get "$moved")" = 403
old=$("$DG" presign "$NGINX_URL/s/fw 2.bin" --expires 60 --secret-file "$T_DIR/secret" --at 20200101T000000Z)
t_check "secure_link: a link signed in 2020 for 60 s has expired (403)" test "$(get "$old")" = 403
printf 'other\n' > "$T_DIR/other"
wrong=$("$DG" presign "$NGINX_URL/s/fw 2.bin" --expires 300 --secret-file "$T_DIR/other")
t_check "secure_link: another secret gets 403" test "$(get "$wrong")" = 403
# bound to an address (nginx: $remote_addr in secure_link_md5): served to
# that address, refused to any other; curl connects from 127.0.0.1
bound=$("$DG" presign "$NGINX_URL/b/fw 2.bin" --expires 300 --secret-file "$T_DIR/secret" --client-ip 127.0.0.1)
t_check "secure_link bound to 127.0.0.1: served to 127.0.0.1 (200)" test "$(get "$bound")" = 200
elsewhere=$("$DG" presign "$NGINX_URL/b/fw 2.bin" --expires 300 --secret-file "$T_DIR/secret" --client-ip 192.0.2.7)
t_check "secure_link bound to 192.0.2.7: refused to 127.0.0.1 (403)" test "$(get "$elsewhere")" = 403
unbound=$("$DG" presign "$NGINX_URL/b/fw 2.bin" --expires 300 --secret-file "$T_DIR/secret")
t_check "an unbound link where nginx wants the address: 403" test "$(get "$unbound")" = 403

# --- keygen
t_check "keygen writes a pair" "$DG" keygen "$T_DIR/op.pem"
t_check "keygen: private key mode 0600" test "$(stat -c %a "$T_DIR/op.pem")" = 600
t_check "keygen: openssl reads an ED25519 private key" \
	sh -c "openssl pkey -in '$T_DIR/op.pem' -noout -text | grep -q ED25519"
t_check "keygen: openssl reads the public key" \
	sh -c "openssl pkey -pubin -in '$T_DIR/op.pub.pem' -noout -text | grep -q ED25519"
cp "$T_DIR/op.pem" "$T_DIR/op.pem.orig"
"$DG" keygen "$T_DIR/op.pem" >/dev/null 2>&1; rc=$?
t_check "keygen never overwrites (exit 1, file unchanged)" \
	sh -c "[ $rc -eq 1 ] && cmp -s '$T_DIR/op.pem' '$T_DIR/op.pem.orig'"

t_done
