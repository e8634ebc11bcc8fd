#!/bin/bash
# The software-update pattern, steps 1 and 3-9, against a real mosquitto
# and deltagate-shadowd, with mosquitto_sub/pub as the device and
# `deltagate shadow` as the application.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts and answers" t_start_shadowd

# step 1: the device subscribes to its delta topic
# (t_sub returns once the broker has the subscription in place)
t_check "step 1: the device subscribes to update/delta" t_sub 'state/dev1/update/delta' "$T_DIR/delta" 1
t_check "... to update/accepted" t_sub 'state/dev1/update/accepted' "$T_DIR/accepted" 3
t_check "... and to update/documents" t_sub 'state/dev1/update/documents' "$T_DIR/documents" 1

# step 3: the application publishes a desired state with a new URL and job
"$DELTAGATE" shadow --broker "$MQTT_URL" update dev1 \
	'{"state":{"desired":{"softwareURL":"https://storage/fw-2.0.bin","softwareVersion":"2.0","jobId":"job-7"}}}' \
	> "$T_DIR/app-update" 2>&1
t_check "step 3-4: update is accepted with version 1" \
	sh -c "jq -e '.version == 1 and .state.desired.jobId == \"job-7\"' '$T_DIR/app-update'"
t_check "accepted echoes the clientToken" jq -e '.clientToken | length == 24' "$T_DIR/app-update"
t_check "accepted carries per-leaf metadata" jq -e '.metadata.desired.softwareURL.timestamp > 0' "$T_DIR/app-update"

# steps 4-6: the device receives the delta: the command
t_wait_for 10 test -s "$T_DIR/delta"
t_check "step 5: delta published on state/dev1/update/delta" grep -q '^state/dev1/update/delta ' "$T_DIR/delta"
sed 's/^[^ ]* //' "$T_DIR/delta" > "$T_DIR/delta.json"
t_check "step 6: delta carries softwareURL and jobId" \
	jq -e '.state.softwareURL == "https://storage/fw-2.0.bin" and .state.jobId == "job-7" and .version == 1' "$T_DIR/delta.json"
t_wait_for 10 test -s "$T_DIR/documents"
t_check "update/documents has previous null and current" \
	sh -c "sed 's/^[^ ]* //' '$T_DIR/documents' | jq -e '.previous == null and .current.version == 1'"

# step 8: the device acknowledges in the pattern's text form ...
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/dev1/update -m 'jobID:job-7 SUCCESS'
# ... and reports the software it now runs
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/dev1/update \
	-m '{"state":{"reported":{"softwareURL":"https://storage/fw-2.0.bin","softwareVersion":"2.0","jobId":"job-7"}}}'

# step 9: accepted confirms the update
t_wait_for 10 sh -c "[ \$(wc -l < '$T_DIR/accepted') -ge 3 ]"
t_check "step 9: three accepted messages (desired, ack, report)" sh -c "[ \$(grep -c '^state/dev1/update/accepted ' '$T_DIR/accepted') -eq 3 ]"
t_check "step 8: the text ack became reported.job" \
	sh -c "sed -n 2p '$T_DIR/accepted' | sed 's/^[^ ]* //' | jq -e '.state.reported.job.id == \"job-7\" and .state.reported.job.status == \"SUCCESS\"'"

"$DELTAGATE" shadow --broker "$MQTT_URL" get dev1 > "$T_DIR/get" 2>&1
t_check "get: version 3, reported equals desired, no delta left" \
	jq -e '.version == 3 and .state.reported.softwareVersion == "2.0" and (.state | has("delta") | not)' "$T_DIR/get"
t_check "get: the job's status persists" jq -e '.state.reported.job.status == "SUCCESS"' "$T_DIR/get"

# a FAILURE acknowledgement is recorded as such
"$DELTAGATE" shadow --broker "$MQTT_URL" update dev1 'jobID:job-8 FAILURE' > "$T_DIR/fail" 2>&1
t_check "FAILURE ack accepted" jq -e '.state.reported.job.status == "FAILURE"' "$T_DIR/fail"

# a new desired version produces a new delta with only what differs
"$DELTAGATE" shadow --broker "$MQTT_URL" update dev1 \
	'{"state":{"desired":{"softwareURL":"https://storage/fw-3.0.bin","softwareVersion":"3.0","jobId":"job-9"}}}' >/dev/null
"$DELTAGATE" shadow --broker "$MQTT_URL" get dev1 > "$T_DIR/get2"
t_check "get shows the delta of the new command" \
	jq -e '.state.delta.softwareVersion == "3.0" and .state.delta.jobId == "job-9"' "$T_DIR/get2"

# delete
t_check "delete is accepted" "$DELTAGATE" shadow --broker "$MQTT_URL" --quiet delete dev1
"$DELTAGATE" shadow --broker "$MQTT_URL" get dev1 > "$T_DIR/get3" 2>&1
rc=$?
t_check "get after delete is rejected with 404 (exit 1)" sh -c "[ $rc -eq 1 ] && grep -q '\"code\":404' '$T_DIR/get3'"
"$DELTAGATE" shadow --broker "$MQTT_URL" update dev1 '{"state":{"reported":{"x":1}}}' > "$T_DIR/again"
t_check "an update after delete continues the version (AWS: not reset)" jq -e '.version == 6' "$T_DIR/again"

t_done
