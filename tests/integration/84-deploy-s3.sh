#!/bin/bash
# deploy with s3:// storage against s3rver (npm): uploads through libcurl's
# SigV4, pre-signed GET links the gateway downloads, a re-run uploads
# nothing, an expired pre-signed link is refused (s3rver: 403; through the
# gateway: FAILED, 0x90100104). s3rver does not check signatures strictly:
# test_sigv4 proves the signer.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-s3.sh"

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN
t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts (the gateway's CA file)" t_start_nginx
t_check "s3rver starts (bucket fw)" t_start_s3rver fw
t_gw_flasher
head -c 150000 /dev/urandom > "$T_DIR/v1.bin"
cp "$T_DIR/v1.bin" "$T_DIR/v2.bin"
head -c 700 /dev/urandom | dd of="$T_DIR/v2.bin" bs=1 seek=3000 conv=notrunc 2>/dev/null
V1=$(t_sha "$T_DIR/v1.bin")
t_gw_cache_import "$T_DIR/v1.bin"
t_gw_conf "q1 sha256=$V1" "q2 sha256=$V1" "q3 sha256=$V1"
t_check "deltagated starts" t_gw_start

deploy() {
	timeout 300 "$DELTAGATE" deploy --broker "$MQTT_URL" --state-dir "$T_DIR/state" \
		--storage s3://fw/releases --endpoint "$S3_URL" "$@"
}
deploy --image "$T_DIR/v2.bin" --from "$T_DIR/v1.bin" --version 2.0 --job-id s3a --devices q1,q2 \
	--manifest-provider contoso --manifest-name pump-fw \
	--wave-timeout 120 > "$T_DIR/a.out" 2> "$T_DIR/a.err"; rc=$?
t_diag "$(grep staged "$T_DIR/a.err")"
t_check "deploy to s3://: exit 0" test $rc -eq 0
t_check "both devices succeeded, through the delta (resultCode 1)" test "$(grep -c ' succeeded ' "$T_DIR/a.out")" -eq 2
t_check "the devices hold v2" sh -c "cmp -s '$T_DIR/dev/q1.bin' '$T_DIR/v2.bin' && cmp -s '$T_DIR/dev/q2.bin' '$T_DIR/v2.bin'"
t_check "the image and the delta are objects in the bucket" \
	sh -c "find '$T_DIR/s3/fw' -name '*.img*' | grep -q . && find '$T_DIR/s3/fw' -name '*.delta*' | grep -q ."
V2SHA=$(t_sha "$T_DIR/v2.bin")
t_check "the import manifest is an object in the bucket too" \
	sh -c "find '$T_DIR/s3/fw' -name '$V2SHA.importmanifest.json*' | grep -q ."
# s3rver keeps an object as KEY._S3rver_object next to KEY._S3rver_metadata.json
# and KEY._S3rver_object.md5; a plain store keeps KEY itself
mf=$(find "$T_DIR/s3/fw" -type f \( -name "$V2SHA.importmanifest.json" -o \
	-name "$V2SHA.importmanifest.json._S3rver_object" \) | head -1)
t_check "... naming the image as staged, with its SHA-256 and the delta" sh -c \
	"jq -e '.updateId.provider == \"contoso\" and (.files[0].filename == \"$V2SHA.img\") and (.files[0].relatedFiles | length) == 1' '$mf' >/dev/null"
staged=$(sed -n 's/.*staged \([0-9]*\) bytes.*/\1/p' "$T_DIR/a.err")
t_check "staged: the image's bytes and the delta's" test "$staged" -gt 150000
url=$("$DELTAGATE" shadow --broker "$MQTT_URL" get q1 | jq -r .state.desired.softwareURL)
t_check "the published link is a SigV4 pre-signed GET" \
	sh -c "case '$url' in '$S3_URL/fw/releases/'*'.img?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=S3RVER%2F'*'X-Amz-Signature='*) exit 0;; esac; exit 1"
t_check "the link downloads the image" sh -c "curl -sf -o '$T_DIR/got' '$url' && cmp -s '$T_DIR/got' '$T_DIR/v2.bin'"

deploy --image "$T_DIR/v2.bin" --from "$T_DIR/v1.bin" --version 2 --job-id s3b --devices q1 \
	> /dev/null 2> "$T_DIR/b.err"; rc=$?
t_check "re-run: exit 0, nothing uploaded (staged 0 bytes)" sh -c "[ $rc -eq 0 ] && grep -q 'staged 0 bytes' '$T_DIR/b.err'"

# an expired pre-signed link, of an image the gateway does not have yet
# (uploaded with curl's own SigV4)
head -c 50000 /dev/urandom > "$T_DIR/v3.bin"
t_check "curl --aws-sigv4 uploads v3" curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
	-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -T "$T_DIR/v3.bin" "$S3_URL/fw/releases/v3.bin"
fresh=$("$DELTAGATE" presign s3://fw/releases/v3.bin --endpoint "$S3_URL" --expires 60)
t_check "a fresh pre-signed link of v3 downloads it" sh -c "curl -sf -o '$T_DIR/got3' '$fresh' && cmp -s '$T_DIR/got3' '$T_DIR/v3.bin'"
expired=$("$DELTAGATE" presign s3://fw/releases/v3.bin --endpoint "$S3_URL" --expires 60 --at 20200101T000000Z)
t_check "expired pre-signed link: s3rver answers 403" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "$expired")" = 403
"$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update q3 \
	"{\"state\":{\"desired\":{\"softwareURL\":\"$expired\",\"softwareVersion\":\"2\",\"softwareSha256\":\"$(t_sha "$T_DIR/v3.bin")\",\"softwareSize\":$(stat -c %s "$T_DIR/v3.bin"),\"jobId\":\"s3x\"}}}"
t_check "expired link through the gateway: FAILED" t_gw_wait_status q3 s3x FAILED 60
t_check "expired link: extendedResultCode 0x90100104 (HTTP 403)" \
	sh -c "$(declare -f t_gw_reported); DELTAGATE='$DELTAGATE' MQTT_URL='$MQTT_URL'; t_gw_reported q3 | jq -e '.extendedResultCode == $((0x90100104))'"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE=/nonexistent HOME="$T_DIR" \
	"$DELTAGATE" deploy --state-dir "$T_DIR/state" --storage s3://fw --image "$T_DIR/v2.bin" --version 2 \
	--devices q1 >/dev/null 2>&1; rc=$?
t_check "s3:// without credentials: exit 1" test $rc -eq 1

t_done
