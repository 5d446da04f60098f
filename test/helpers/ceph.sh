#!/usr/bin/env bash
# A throwaway single-node Ceph cluster with radosgw, a real S3 implementation for
# the S3 remote tests (beside s3rver, which is lenient where S3 is not).
#
#   test/helpers/ceph.sh start DIR PORT   # radosgw on 127.0.0.1:PORT, the monitor on PORT+1
#   test/helpers/ceph.sh stop DIR
#   test/helpers/ceph.sh env DIR          # the TDV_TEST_CEPH_* lines again
#
# Needs Debian's ceph-mon, ceph-osd, radosgw and ceph-common; no cephadm, no
# systemd. One monitor, one OSD on memstore (in RAM, bounded), pools of size 1, and
# radosgw with the user and bucket the tests use. Everything (config, monitor
# store, logs, sockets, pid files) lives in DIR, which must be empty or absent;
# every command gets `-c DIR/ceph.conf`, so /etc/ceph and /var/lib/ceph are never
# read or written. On success `start` prints the environment the tests read and
# then `READY <port>`; on failure it prints the last log lines, stops what it
# started and exits 1. `stop` kills each daemon by its pid file and waits for it.
set -euo pipefail

# The S3 user and bucket; .ci/run exports these as TDV_TEST_CEPH_*.
ACCESS_KEY=TDVCEPHTESTKEY000001
SECRET_KEY=tdv-ceph-test-secret-0000000000000000000
BUCKET=tdv-test
DAEMONS=(client.rgw osd.0 mon.a)

die() {
  echo "ceph.sh: $*" >&2
  exit 1
}

# Waits up to $1 tenths of a second for `$2...` to succeed.
wait_for() {
  local tenths=$1
  shift
  for _ in $(seq "$tenths"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# Notes in setup.out how long each step took since the start.
step() {
  awk -v t0="$T0" -v now="${EPOCHREALTIME/,/.}" -v what="$*" 'BEGIN { printf "%6.1f s  %s\n", now - t0, what }' >>"$LOGDIR/setup.out"
}

# The pid in DIR/run/NAME.pid, if that process is still a Ceph daemon (not a reused pid).
pid_of() {
  local f=$1/run/$2.pid pid comm
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == radosgw || $comm == ceph-* ]] && echo "$pid"
}

stop() {
  local dir=$1 d pid pids=()
  [ -d "$dir" ] || return 0
  for d in "${DAEMONS[@]}"; do
    pid=$(pid_of "$dir" "$d") || continue
    # radosgw's graceful stop waits about 10 s for its background threads, and it
    # keeps nothing worth saving (the objects are in the OSD): it is killed outright.
    # The OSD and the monitor stop cleanly in about 2 s, all at once.
    if [ "$d" = client.rgw ]; then kill -9 "$pid" 2>/dev/null || continue; else kill "$pid" 2>/dev/null || continue; fi
    pids+=("$pid")
  done
  # The daemons are not our children (they fork away): poll until each pid is gone.
  for pid in "${pids[@]}"; do
    if ! wait_for 100 bash -c "! kill -0 $pid"; then
      kill -9 "$pid" 2>/dev/null || true
      wait_for 20 bash -c "! kill -0 $pid" || true
    fi
  done
  for d in "${DAEMONS[@]}"; do rm -f "$dir/run/$d.pid" "$dir/run/$d.asok"; done
}

# On a failed start: the end of each log, then everything stopped.
fail() {
  local dir=$1
  shift
  echo "ceph.sh: $*" >&2
  for log in "$dir"/log/{mon.a,osd.0,client.rgw}.log "$dir"/log/setup.out; do
    [ -s "$log" ] || continue
    echo "--- last lines of $log:" >&2
    tail -n 15 "$log" >&2
  done
  stop "$dir"
  exit 1
}

start() {
  local dir=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65535)) || die "bad port $port"
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl; do
    command -v "$b" >/dev/null || die "$b is missing: apt-get install ceph-mon ceph-osd radosgw ceph-common curl"
  done
  # radosgw would fail to bind, but a port taken by something that accepts
  # connections would make the readiness checks below talk to the wrong server.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port $port is in use"
  ! (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null || die "port $((port + 1)) (for the monitor) is in use"
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir"/{mon,osd/0,run,log,rgw}
  local mon_port=$((port + 1)) fsid conf=$dir/ceph.conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
# No cephx: a throwaway cluster on loopback. radosgw still signs its messages with
# crc; without these two modes it loops on "get_initial_auth_request returned -13".
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
# Everything under DIR, nothing in /etc/ceph, /var/lib/ceph or /var/run/ceph.
keyring = /dev/null
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon data = $dir/mon/\$id
osd data = $dir/osd/\$id
rgw data = $dir/rgw
mon cluster log file = $dir/log/cluster.log
osd journal = $dir/osd/\$id/journal
# Every pool radosgw creates and every OSD boot step is a new osdmap; the monitor
# batches proposals for 1 s by default, which made the start take 16 s instead of a few.
paxos propose interval = 0.01
paxos min wait = 0.001
# A full CI disk should fail the tests on their own, not stop the monitor first.
mon data avail warn = 1
mon data avail crit = 0
# One OSD: pools of one replica, placement across OSDs (not hosts), few PGs.
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# The OSD keeps objects in RAM. memstore reports this size as the device's, so the
# OSD's full ratios refuse writes before it holds much more than 1 GiB.
osd objectstore = memstore
memstore device bytes = 1073741824
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw dns name = 127.0.0.1
# 32 request threads instead of 512: less memory, enough for the tests' concurrency.
rgw thread pool size = 32
EOF
  T0=${EPOCHREALTIME/,/.} LOGDIR=$dir/log
  trap 'fail "$dir" "interrupted"' INT TERM
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >"$dir/log/setup.out" 2>&1 ||
    fail "$dir" "monmaptool failed"
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >>"$dir/log/setup.out" 2>&1 || fail "$dir" "ceph-mon --mkfs failed"
  ceph-mon -c "$conf" -i a >>"$dir/log/setup.out" 2>&1 || fail "$dir" "ceph-mon did not start"
  # Waits read the daemons' logs: polling with the ceph CLI (Python) costs a second a call on a busy machine.
  wait_for 300 grep -q 'is new leader, mons a in quorum' "$dir/log/mon.a.log" || fail "$dir" "the monitor formed no quorum within 30 s"
  step "monitor up"

  local uuid
  uuid=$(cat /proc/sys/kernel/random/uuid)
  [ "$(ceph -c "$conf" --connect-timeout 30 osd new "$uuid" 2>>"$dir/log/setup.out")" = 0 ] || fail "$dir" "ceph osd new did not give osd.0"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/setup.out" 2>&1 || fail "$dir" "ceph-osd --mkfs failed"
  ceph-osd -c "$conf" -i 0 >>"$dir/log/setup.out" 2>&1 || fail "$dir" "ceph-osd did not start"
  wait_for 300 grep -q 'state: booting -> active' "$dir/log/osd.0.log" || fail "$dir" "osd.0 was not up within 30 s"
  step "osd.0 up"

  radosgw -c "$conf" -n client.rgw >>"$dir/log/setup.out" 2>&1 || fail "$dir" "radosgw did not start"
  local rgw_pid
  wait_for 50 pid_of "$dir" client.rgw || fail "$dir" "radosgw wrote no pid file"
  rgw_pid=$(pid_of "$dir" client.rgw)
  # Until it listens or exits (it does when it cannot bind).
  wait_for 300 bash -c "! kill -0 $rgw_pid 2>/dev/null || exec 3<>/dev/tcp/127.0.0.1/$port" || true
  kill -0 "$rgw_pid" 2>/dev/null || fail "$dir" "radosgw exited"
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "$dir" "radosgw did not listen on port $port within 30 s"
  ! grep -q 'failed to bind' "$dir/log/client.rgw.log" || fail "$dir" "radosgw could not bind port $port"
  step "radosgw listening"
  radosgw-admin -c "$conf" user create --uid tdv --display-name "tdv tests" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
    >>"$dir/log/setup.out" 2>&1 || fail "$dir" "radosgw-admin user create failed"
  step "user created"
  make_bucket "$port" >>"$dir/log/setup.out" 2>&1 || fail "$dir" "creating bucket $BUCKET failed"
  step "bucket created: ready"
  awk -v t0="$T0" -v now="${EPOCHREALTIME/,/.}" -v port="$port" 'BEGIN { printf "Ceph started in %.1f s: radosgw on http://127.0.0.1:%s\n", now - t0, port }'
  printf '%s\n' "TDV_TEST_CEPH_ENDPOINT=http://127.0.0.1:$port" "TDV_TEST_CEPH_KEY=$ACCESS_KEY" "TDV_TEST_CEPH_SECRET=$SECRET_KEY" >"$dir/env"
  cat "$dir/env"
  echo "READY $port"
}

# The bucket, through S3 itself (radosgw-admin cannot create one): curl signs the
# request (SigV4, with the SHA-256 of the empty body, which S3 wants in a header).
make_bucket() {
  curl -sS -f --max-time 30 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    -X PUT "http://127.0.0.1:$1/$BUCKET"
}

case "${1:-}" in
start)
  [ $# -eq 3 ] || die "usage: $0 start DIR PORT"
  start "$2" "$3"
  ;;
stop)
  [ $# -eq 2 ] || die "usage: $0 stop DIR"
  stop "$2"
  ;;
env)
  [ $# -eq 2 ] || die "usage: $0 env DIR"
  [ -s "$2/env" ] || die "no cluster started in $2"
  cat "$2/env"
  ;;
*) die "usage: $0 start DIR PORT | stop DIR | env DIR" ;;
esac
