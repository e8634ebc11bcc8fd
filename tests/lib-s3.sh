# tests/lib-s3.sh - an S3-compatible server for tests: s3rver (npm),
# installed once into a cache directory (sourced after lib.sh).
#   t_s3_install      npm install s3rver@3.7.1 into $DG_NPM_CACHE
#                     (default ~/.cache/deltagate/npm) unless it is there
#   t_start_s3rver B  start it on a free 127.0.0.1 port with bucket B;
#                     S3_PORT, S3_URL, S3_PID; credentials S3RVER/S3RVER
# s3rver checks the object flows only: it refuses an expired pre-signed
# link, but serves a tampered or unsigned one. The signatures themselves are
# proven by tests/unit/test_sigv4 against AWS's published examples.
DG_NPM_CACHE=${DG_NPM_CACHE:-$HOME/.cache/deltagate/npm}
S3RVER="$DG_NPM_CACHE/node_modules/.bin/s3rver"

t_s3_install() {
	[ -x "$S3RVER" ] && return 0
	mkdir -p "$DG_NPM_CACHE" &&
	npm install --prefix "$DG_NPM_CACHE" --no-audit --no-fund s3rver@3.7.1 >"$T_DIR/npm.log" 2>&1
}

t_start_s3rver() {
	t_s3_install || return 1
	S3_PORT=$(t_free_port)
	S3_URL="http://127.0.0.1:$S3_PORT"
	mkdir -p "$T_DIR/s3"
	"$S3RVER" -d "$T_DIR/s3" -a 127.0.0.1 -p "$S3_PORT" --configure-bucket "$1" >>"$T_DIR/s3rver.log" 2>&1 &
	S3_PID=$!
	T_PIDS="$T_PIDS $S3_PID"
	t_wait_for 30 t_port_open "$S3_PORT"
}
