#!/usr/bin/env bash
# A soak of the daemon: the demo clip looped as fast as it is inferred,
# against a real Mosquitto that is restarted every few minutes, with the
# camera's labels file edited (a new label to embed each time) in between.
# Every 30 s it samples the daemon's resident memory, open files and
# threads; at the end it stops the daemon and checks that every event the
# daemon printed reached a subscriber (a persistent QoS 1 session, so an
# event published while the subscriber was away still arrives).
#
#   tools/soak/soak.sh [MINUTES]     default 30; uses target/release/edgeclip
#
# Prints the samples as a table and a summary line; exits 1 if an event
# went missing or memory, files or threads grew past the thresholds below.
set -euo pipefail
cd "$(dirname "$0")/../.."

minutes=${1:-30}
binary=${EDGECLIP_BIN:-target/release/edgeclip}
[ -x "$binary" ] || { echo "tools/soak/soak.sh: build it first: cargo build --release" >&2; exit 2; }
for program in mosquitto mosquitto_sub jq; do
    command -v "$program" >/dev/null ||
        { echo "tools/soak/soak.sh: needs $program (apt-get install mosquitto mosquitto-clients jq)" >&2; exit 2; }
done

# A broker restart every 3 minutes (down for 5 s), a labels edit every 2.
RESTART_EVERY_S=180
EDIT_EVERY_S=120
SAMPLE_EVERY_S=30
# Policy: what counts as flat, from the first sample after WARMUP_S, when the
# first labels edit has loaded the text encoder (about 12 MB the allocator
# keeps) and the first broker restart has filled the offline queue once: RSS
# may grow by 10 MB at most (a few label sets and allocator slack), open
# files and threads not at all beyond 2 (a label worker or a reconnect
# caught mid-way).
WARMUP_S=200
RSS_GROWTH_KB=10240
SLACK=2

work=$(mktemp -d)
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    for pid in "${daemon_pid:-}" "${broker_pid:-}" "${sub_pid:-}"; do
        if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# 'user root': Mosquitto started by root would otherwise become the user
# 'mosquitto', who cannot write the work folder (as anyone else it stays
# who it is).
cat > "$work/mosquitto.conf" <<EOF
user root
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/
autosave_interval 1
log_dest file $work/mosquitto.log
EOF
start_broker() {
    mosquitto -c "$work/mosquitto.conf" & broker_pid=$!
    sleep 0.5
}
start_broker

cp models/tiny-shapes/labels.txt "$work/labels.txt"
cat > "$work/edgeclip.toml" <<EOF
node = "soak"
[model]
path = "$PWD/models/tiny-shapes"
threads = 1
cache_dir = "$work/cache"
[mqtt]
broker = "mqtt://127.0.0.1:$port"
stats_interval_s = 10
[logging]
print_events = true
[cameras.demo]
source = "file:$PWD/models/tiny-shapes/demo.mjpeg?loop"
labels = "$work/labels.txt"
max_fps = 0
EOF

# The subscriber: a persistent session at QoS 1, every event with its topic.
mosquitto_sub -h 127.0.0.1 -p "$port" -i soak-sub -c -q 1 -t 'edgeclip/soak/+/events' >"$work/received.jsonl" 2>/dev/null &
sub_pid=$!
sleep 0.5

"$binary" run --config "$work/edgeclip.toml" >"$work/printed.txt" 2>"$work/edgeclip.log" &
daemon_pid=$!

sample() {
    local rss fds threads
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status")
    threads=$(awk '/^Threads/ { print $2 }' "/proc/$daemon_pid/status")
    fds=$(find "/proc/$daemon_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    printf '%6d %9d %5d %8d %8d\n' "$((SECONDS - start))" "$rss" "$fds" "$threads" "$(wc -l <"$work/printed.txt")"
}

echo "== soak: $minutes min, broker restarted every $RESTART_EVERY_S s, labels edited every $EDIT_EVERY_S s"
echo "     s   rss(kB)   fds  threads   events"
start=$SECONDS
end=$((start + minutes * 60))
next_sample=$((start + 20)) next_restart=$((start + RESTART_EVERY_S)) next_edit=$((start + EDIT_EVERY_S))
edits=0 restarts=0
samples=()
while [ "$SECONDS" -lt "$end" ]; do
    kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon exited; its log:" >&2; tail -20 "$work/edgeclip.log" >&2; exit 1; }
    if [ "$SECONDS" -ge "$next_sample" ]; then
        line=$(sample)
        echo "$line"
        if [ $((SECONDS - start)) -ge "$WARMUP_S" ]; then samples+=("$line"); fi
        next_sample=$((next_sample + SAMPLE_EVERY_S))
    fi
    if [ "$SECONDS" -ge "$next_restart" ]; then
        kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
        sleep 5
        start_broker
        restarts=$((restarts + 1))
        next_restart=$((next_restart + RESTART_EVERY_S))
    fi
    if [ "$SECONDS" -ge "$next_edit" ]; then
        edits=$((edits + 1))
        # Every other edit adds a new label (embedded by the text encoder
        # and cached); the others go back to the demo labels.
        if [ $((edits % 2)) -eq 1 ]; then
            { cat models/tiny-shapes/labels.txt; echo "probe-$edits: a grey blob number $edits"; } >"$work/labels.txt.new"
        else
            cp models/tiny-shapes/labels.txt "$work/labels.txt.new"
        fi
        mv "$work/labels.txt.new" "$work/labels.txt"
        next_edit=$((next_edit + EDIT_EVERY_S))
    fi
    sleep 1
done

[ "${#samples[@]}" -gt 0 ] || { echo "tools/soak/soak.sh: too short to judge: run at least 5 minutes" >&2; exit 2; }
kill -TERM "$daemon_pid"
wait "$daemon_pid" || { echo "the daemon exited with $?" >&2; exit 1; }
daemon_pid=
# The subscriber may still be taking the last ones.
sleep 3

printed=$(wc -l <"$work/printed.txt")
# An event is identified by its camera, label, type and frame (frame numbers
# keep counting across the clip's loops); QoS 1 may deliver one twice. The
# printed lines are "TIME CAMERA start LABEL score S frame N" and
# "TIME CAMERA end LABEL after D s (frames A-N, peak P, REASON)".
printed_keys() {
    awk '$3 == "start" { print $2, $4, "start", $NF }
         $3 == "end" { match($0, /frames [0-9]+-[0-9]+/); split(substr($0, RSTART + 7, RLENGTH - 7), f, "-"); print $2, $4, "end", f[2] }' \
        "$work/printed.txt" | sort -u
}
received_keys() {
    jq -r '"\(.camera) \(.label) \(.type) \(.frame)"' "$work/received.jsonl" | sort -u
}
[ "$(printed_keys | wc -l)" -eq "$printed" ] || { echo "FAIL: cannot read the printed events" >&2; exit 1; }
missing=$(comm -23 <(printed_keys) <(received_keys) | wc -l)
read -r -a first <<<"${samples[0]}"
read -r -a last <<<"${samples[-1]}"
max_rss=$(printf '%s\n' "${samples[@]}" | awk '{ if ($2 > m) m = $2 } END { print m }')
echo "== $printed events printed, $missing of them not received; $restarts broker restarts, $edits label edits"
echo "== after the warm-up ($WARMUP_S s): rss ${first[1]} -> ${last[1]} kB (max $max_rss), fds ${first[2]} -> ${last[2]}, threads ${first[3]} -> ${last[3]}"
echo "== label cache: $(find "$work/cache" -type f | wc -l) files, $(du -sk "$work/cache" | cut -f1) kB"
status=0
[ "$missing" -eq 0 ] || { echo "FAIL: events missing" >&2; status=1; }
[ $((max_rss - first[1])) -le "$RSS_GROWTH_KB" ] || { echo "FAIL: memory grew by $((max_rss - first[1])) kB" >&2; status=1; }
[ $((last[2] - first[2])) -le "$SLACK" ] || { echo "FAIL: open files grew" >&2; status=1; }
[ $((last[3] - first[3])) -le "$SLACK" ] || { echo "FAIL: threads grew" >&2; status=1; }
exit $status
