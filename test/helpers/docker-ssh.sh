#!/usr/bin/env bash
# A throwaway Docker host reachable only over SSH, for the remote Docker runner's
# tests and bench rows (issue 15): the runner must move inputs and outputs by
# hash, and this host shares no directory with the client that could let a bind
# mount or a path on the client's disk pass for a transfer.
#
#   test/helpers/docker-ssh.sh start DIR N   # host number N (1..250): netns tdv-dh-N, 10.213.N.2
#   test/helpers/docker-ssh.sh stop DIR
#   test/helpers/docker-ssh.sh cut DIR [kill|down|up]   # drop the SSH connections (see cut below)
#   test/helpers/docker-ssh.sh env DIR        # the TDV_TEST_SSH_* lines again
#   test/helpers/docker-ssh.sh client DIR HOSTDIR...  # one ssh wrapper for several hosts (a pool)
#   test/helpers/docker-ssh.sh sweep          # stop hosts whose DIR was removed (a killed test run)
#
# The host is a network namespace (tdv-dh-N) joined to this one by a veth pair on
# 10.213.N.0/30 (client side .1, host side .2), in which run an sshd (port 22,
# its own host key and config, root login with a key made here) and a second
# dockerd (bridge none, no iptables: its containers get no network, which the
# stages do not need). Both run in a private mount namespace (unshare --mount,
# propagation private) in which an empty tmpfs covers /run (containerd puts shim
# sockets under /run/containerd) with the host's state on a tmpfs at /run/tdv-dh
# (the daemon's socket, data root and exec root, sshd's keys and config), one
# covers /etc/docker (dockerd's key.json), and empty ones cover where the
# client's files live (TMPDIR, /tmp, /var/tmp, /dev/shm, /home, /root, /work,
# /mnt, /media, /srv, /opt). So the client cannot see the host's socket or data,
# and the host cannot see the client's repositories: a runner that bind-mounted
# a client path would get an empty directory there. Nothing is bind-mounted, and
# the second daemon shares no directory with the first. An SSH session's
# DOCKER_HOST (sshd's SetEnv) names the second
# daemon's socket, so `docker --host=ssh://root@10.213.N.2` (which runs `docker
# system dial-stdio` over ssh) reaches it; nothing else can.
#
# ssh reads ~/.ssh from the password database, not $HOME, so the client's key,
# known_hosts and config are given by DIR/bin/ssh, a wrapper that runs
# `ssh -F DIR/client/ssh_config`: put TDV_TEST_SSH_PATH first in PATH.
#
# `start` prints, then `READY <address>`:
#   TDV_TEST_SSH_HOST=ssh://root@10.213.N.2   the DOCKER_HOST / runner hosts entry
#   TDV_TEST_SSH_PATH=DIR/bin                 prepend to PATH (the ssh wrapper)
#   TDV_TEST_SSH_CONFIG=DIR/client/ssh_config the same for tools that take -F
#   TDV_TEST_SSH_NETNS=tdv-dh-N
# and loads the test image tdv-fixtures/busybox (from the client's daemon when it
# has it, else from the static busybox as docker-image.sh makes it) through ssh.
# On failure it prints the ends of the logs, stops what it started, exits 1.
# Needs root, iproute2, openssh-server + openssh-client, docker.io (dockerd and
# the CLI), util-linux (nsenter, unshare).
set -euo pipefail

IMAGE=tdv-fixtures/busybox
# Where the host keeps its state, inside its own mount namespace (a tmpfs on a
# private /run): the client has no such directory.
STATE=/run/tdv-dh

die() {
  echo "docker-ssh.sh: $*" >&2
  exit 1
}

# Host number N is taken: exit 3, so a caller picking numbers tries another.
busy() {
  echo "docker-ssh.sh: $*" >&2
  exit 3
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

now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v t0="$1" -v now="$(now)" 'BEGIN { printf "%.1f", now - t0 }'; }

# The pid in DIR/run/NAME.pid if that process still runs program $3 (not a reused pid).
pid_of() {
  local f=$1/run/$2.pid pid comm
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "$3" ] && echo "$pid"
}

# Every process in netns $1 and all their descendants (containers live in their own
# network namespaces, below containerd's shims, which are in this one).
ns_tree() {
  local ns=$1 roots
  roots=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  [ -n "${roots// /}" ] || return 0
  ps -e -o pid=,ppid= | awk -v roots="$roots" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) inset[r[i]] = 1 }
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      do {
        grew = 0
        for (i in pids) { p = pids[i]; if (!(p in inset) && (parent[p] in inset)) { inset[p] = 1; grew = 1 } }
      } while (grew)
      for (p in inset) print p
    }'
}

# The processes among $1 (pids) whose parent is a containerd shim, and their descendants among $1.
below_shims() {
  local set p ppid
  # shellcheck disable=SC2086 # split on newlines and spaces alike
  set=" $(printf '%s ' $1)"
  for p in $1; do
    ppid=$p
    while ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$ppid/status" 2>/dev/null) && [ -n "$ppid" ] && [ "$ppid" -gt 1 ]; do
      [[ $set == *" $ppid "* ]] || break
      if [[ $(cat "/proc/$ppid/comm" 2>/dev/null) == containerd-shim* ]]; then
        echo "$p"
        break
      fi
    done
  done
}

ns_name() { echo "tdv-dh-$1"; }
veth() { echo "tdvdh$1"; }

stop() {
  local dir=$1 n ns pid pids
  [ -s "$dir/n" ] || return 0
  n=$(cat "$dir/n")
  ns=$(ns_name "$n")
  if ip netns list | grep -qw "^$ns"; then
    pids=$(ns_tree "$ns")
    # sshd first (no new sessions); then the containers' processes (whatever runs
    # below a containerd shim: the throwaway host needs no graceful stop, and
    # dockerd would give each container 10 s), so their shims clean up (cgroups
    # included); then dockerd, which stops its containerd; then anything left.
    pid=$(pid_of "$dir" sshd sshd) && kill "$pid" 2>/dev/null || true
    for p in $pids; do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sshd ] && kill -9 "$p" 2>/dev/null; done
    for p in $(below_shims "$pids"); do kill -9 "$p" 2>/dev/null || true; done
    pid=$(pid_of "$dir" dockerd dockerd) && kill "$pid" 2>/dev/null && wait_for 100 bash -c "! kill -0 $pid" || true
    for p in $pids $(ns_tree "$ns"); do kill -9 "$p" 2>/dev/null || true; done
    for p in $pids; do wait_for 50 bash -c "! kill -0 $p" || true; done
    ip netns del "$ns" 2>/dev/null || true
  fi
  ip link del "$(veth "$n")" 2>/dev/null || true
  rm -f "$dir/run/sshd.pid" "$dir/run/dockerd.pid" "$dir/env"
}

# On a failed start: the end of each log, then everything stopped.
fail() {
  local dir=$1
  shift
  echo "docker-ssh.sh: $*" >&2
  for log in "$dir"/log/*.log; do
    [ -s "$log" ] || continue
    echo "--- last lines of $log:" >&2
    tail -n 15 "$log" >&2
  done
  stop "$dir"
  exit 1
}

# Runs inside the host's network namespace and a private mount namespace (see
# start): gives the host file systems of its own, starts both daemons, and prints
# `pid sshd N`, `pid dockerd N` and `hostkey <sshd's public host key>`.
inside() {
  local dir=$1 n=$2 addr=$3 driver=$4 s=$STATE d mode pubkey
  # The logs are opened here, before the client's directories are hidden below.
  exec 3>>"$dir/log/dockerd.log" 4>>"$dir/log/sshd.log"
  pubkey=$(cat "$dir/client/id_ed25519.pub")
  # An empty /run of this host's own, with the state tmpfs in it: containerd's
  # shim sockets and runc state, sshd's privilege separation directory, the
  # daemon's socket, data root and exec root, sshd's keys. /etc/docker too (key.json).
  mount -t tmpfs -o mode=0755,size=64m "tdv-dh-$n-run" /run
  mkdir -p /run/sshd /run/containerd "$s"
  mount -t tmpfs -o mode=0700,size=4g "tdv-dh-$n" "$s"
  if [ -d /etc/docker ]; then mount -t tmpfs -o mode=0755,size=1m "tdv-dh-$n-etc" /etc/docker; fi
  # The client's files out of the daemon's sight: where repositories and temp
  # directories live. A runner that bind-mounted a client path would get an
  # empty directory on this host, so a stage that finds its inputs got them sent.
  for d in ${TMPDIR:+"$TMPDIR"} /tmp /var/tmp /dev/shm /home /root /work /mnt /media /srv /opt; do
    [ -d "$d" ] || continue
    case "$d" in /tmp | /var/tmp | /dev/shm) mode=1777 ;; *) mode=0755 ;; esac
    mount -t tmpfs -o "mode=$mode,size=256m" "tdv-dh-$n-hide" "$d"
  done
  mkdir -p "$s/ssh" "$s/docker" "$s/exec" "$s/cli"
  ssh-keygen -q -t ed25519 -N '' -C "tdv-dh-$n" -f "$s/ssh/host_ed25519"
  echo "$pubkey" >"$s/ssh/authorized_keys"
  cat >"$s/ssh/sshd_config" <<EOF
ListenAddress $addr:22
HostKey $s/ssh/host_ed25519
PidFile none
AuthorizedKeysFile $s/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
# Every session talks to this host's daemon (docker system dial-stdio reads DOCKER_HOST).
SetEnv DOCKER_HOST=unix://$s/docker.sock DOCKER_CONFIG=$s/cli
# The tests run several stages at once per host; each docker command is one session.
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
EOF
  # In the foreground (-D) under setsid: its pid is $!, it outlives this shell,
  # and it logs to the file opened above (-e).
  setsid /usr/sbin/sshd -D -e -f "$s/ssh/sshd_config" </dev/null >&4 2>&4 &
  echo "pid sshd $!"
  setsid dockerd --host "unix://$s/docker.sock" --data-root "$s/docker" --exec-root "$s/exec" --pidfile "$s/dockerd.pid" \
    --storage-driver "$driver" --bridge none --iptables=false --ip-masq=false --userland-proxy=false --shutdown-timeout 1 \
    --log-level info </dev/null >&3 2>&3 &
  echo "pid dockerd $!"
  echo "hostkey $(cat "$s/ssh/host_ed25519.pub")"
}

start() {
  local dir=$1 n=$2
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 250)) || die "bad host number $n (1..250)"
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, mounts)"
  for b in ip ssh ssh-keygen dockerd docker nsenter unshare setsid; do
    command -v "$b" >/dev/null || die "$b is missing: apt-get install iproute2 openssh-client docker.io util-linux"
  done
  [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing: apt-get install openssh-server"
  local ns veth_c addr_c addr
  ns=$(ns_name "$n") veth_c=$(veth "$n") addr_c=10.213.$n.1 addr=10.213.$n.2
  ! ip netns list | grep -qw "^$ns" || busy "network namespace $ns exists (another host $n is running; stop it or pick another N)"
  ! ip link show "$veth_c" >/dev/null 2>&1 || busy "interface $veth_c exists (another host $n is running)"
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir"/{run,log,client,bin}
  local t0 step
  t0=$(now)
  trap 'fail "$dir" "interrupted"' INT TERM

  # Two starts of the same N at once: only one `ip netns add` succeeds.
  if ! ip netns add "$ns"; then
    rm -rf "${dir:?}"/*
    busy "ip netns add $ns failed (another host $n is starting?)"
  fi
  # From here on, DIR/n tells stop (and fail) which namespace is this host's.
  echo "$n" >"$dir/n"
  ip link add "$veth_c" type veth peer name "${veth_c}p" || fail "$dir" "ip link add $veth_c failed"
  ip link set "${veth_c}p" netns "$ns" || fail "$dir" "moving ${veth_c}p into $ns failed"
  ip addr add "$addr_c/30" dev "$veth_c"
  ip link set "$veth_c" up
  ip -n "$ns" addr add "$addr/30" dev "${veth_c}p"
  ip -n "$ns" link set "${veth_c}p" up
  ip -n "$ns" link set lo up

  ssh-keygen -q -t ed25519 -N '' -C "tdv-dh-$n client" -f "$dir/client/id_ed25519"
  cat >"$dir/client/ssh_config" <<EOF
Host $addr
  User root
  IdentityFile $dir/client/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/client/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  # A link that goes down is noticed in about 3 s, not at the TCP timeout.
  ServerAliveInterval 1
  ServerAliveCountMax 3
  LogLevel ERROR
EOF
  cat >"$dir/bin/ssh" <<EOF
#!/bin/sh
# docker's ssh connection helper runs \`ssh\` from PATH: this one adds the test host's config.
exec $(command -v ssh) -F '$dir/client/ssh_config' "\$@"
EOF
  chmod 0755 "$dir/bin/ssh"

  # nsenter, not `ip netns exec`: that remounts /sys, which hides the cgroup
  # mounts dockerd needs. unshare --mount makes the mount namespace private
  # (propagation private), so the tmpfs mounts never reach the client's view.
  local out hostkey driver
  for driver in overlay2 vfs; do
    out=$(nsenter --net="/run/netns/$ns" unshare --mount --propagation private bash -c "set -e; STATE=$STATE; $(declare -f inside); inside \"\$@\"" inside "$dir" "$n" "$addr" "$driver" 2>>"$dir/log/setup.log") ||
      fail "$dir" "setting up the host's daemons failed"
    awk '$1 == "pid" && $2 == "sshd" { print $3 }' <<<"$out" >"$dir/run/sshd.pid"
    awk '$1 == "pid" && $2 == "dockerd" { print $3 }' <<<"$out" >"$dir/run/dockerd.pid"
    hostkey=$(sed -n 's/^hostkey //p' <<<"$out")
    wait_for 300 bash -c "grep -q 'API listen on' '$dir/log/dockerd.log' || ! kill -0 $(cat "$dir/run/dockerd.pid")" || true
    grep -q 'API listen on' "$dir/log/dockerd.log" && break
    [ "$driver" = vfs ] && fail "$dir" "dockerd did not start within 30 s (storage drivers overlay2 and vfs)"
    echo "docker-ssh.sh: dockerd did not start with overlay2; retrying with vfs" >>"$dir/log/setup.log"
    mv "$dir/log/dockerd.log" "$dir/log/dockerd-overlay2.log"
    stop_daemons "$dir" "$ns"
  done
  echo "$addr $hostkey" >"$dir/client/known_hosts"
  step="daemons up in $(since "$t0") s (storage driver $driver)"

  local host=ssh://root@$addr
  PATH=$dir/bin:$PATH wait_for 100 docker --host "$host" version || fail "$dir" "docker --host $host version failed: $(PATH=$dir/bin:$PATH docker --host "$host" version 2>&1 | tail -n 1)"
  step="$step; docker over ssh in $(since "$t0") s"
  load_image "$dir" "$host" || fail "$dir" "loading $IMAGE into the host failed"
  step="$step; image in $(since "$t0") s"
  printf '%s\n' "TDV_TEST_SSH_HOST=$host" "TDV_TEST_SSH_PATH=$dir/bin" "TDV_TEST_SSH_CONFIG=$dir/client/ssh_config" "TDV_TEST_SSH_NETNS=$ns" >"$dir/env"
  echo "docker-ssh.sh: host $n: $step"
  cat "$dir/env"
  echo "READY $addr"
}

# Between the two storage-driver attempts: sshd and dockerd gone, netns kept.
stop_daemons() {
  local dir=$1 ns=$2 p
  for p in $(ns_tree "$ns"); do kill -9 "$p" 2>/dev/null || true; done
  wait_for 50 bash -c "[ -z \"\$(ip netns pids $ns)\" ]" || true
  rm -f "$dir/run/sshd.pid" "$dir/run/dockerd.pid"
}

# The test image into the host, through ssh: the client daemon's copy when it has
# one (docker save | load), else built from the static busybox as docker-image.sh does.
load_image() {
  local dir=$1 host=$2 script
  script=$(dirname "${BASH_SOURCE[0]}")/docker-image.sh
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    docker save "$IMAGE" | PATH=$dir/bin:$PATH docker --host "$host" load -q >>"$dir/log/setup.log" 2>&1
  else
    PATH=$dir/bin:$PATH DOCKER_HOST=$host sh "$script" "$IMAGE" >>"$dir/log/setup.log" 2>&1
  fi
}

# Drops the host's SSH connections, as a network failure would:
#   kill  (default) kills every sshd session process in the host (not the listener):
#         the client's ssh sees the connection close at once; new connections work.
#   down  takes the host's side of the link down: packets to the host are lost
#         (the client keeps its route, so they do not leave by the default route
#         instead, as with the client side down), ssh notices after
#         ServerAliveInterval * ServerAliveCountMax (about 3 s), and new
#         connections time out; `up` restores it.
cut() {
  local dir=$1 how=${2:-kill} n ns listener p
  [ -s "$dir/n" ] || die "no host started in $dir"
  n=$(cat "$dir/n") ns=$(ns_name "$n")
  case "$how" in
  kill)
    listener=$(pid_of "$dir" sshd sshd) || die "the sshd of host $n is not running"
    for p in $(ip netns pids "$ns"); do
      [ "$p" != "$listener" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sshd ] && kill -9 "$p" 2>/dev/null || true
    done
    ;;
  down) ip -n "$ns" link set "$(veth "$n")p" down ;;
  up) ip -n "$ns" link set "$(veth "$n")p" up ;;
  *) die "cut: kill, down or up, not $how" ;;
  esac
}

# Stops hosts whose DIR is gone (a test run killed before its afterAll, whose temp
# directory was removed later): their daemons still write to DIR/log, so the log
# a daemon of the namespace has open reads "(deleted)". A host starting now, or
# one whose DIR exists, is left alone. Prints what it stopped.
sweep() {
  local ns n p log orphan
  for ns in $(ip netns list | awk '$1 ~ /^tdv-dh-[0-9]+$/ { print $1 }'); do
    n=${ns#tdv-dh-} orphan=
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      case "$(cat "/proc/$p/comm" 2>/dev/null)" in sshd | dockerd) ;; *) continue ;; esac
      log=$(readlink "/proc/$p/fd/2" 2>/dev/null) || continue
      if [[ $log == */log/*.log" (deleted)" ]]; then orphan=1; else orphan=; break; fi
    done
    [ -n "$orphan" ] || continue
    for p in $(ns_tree "$ns"); do kill -9 "$p" 2>/dev/null || true; done
    wait_for 50 bash -c "[ -z \"\$(ip netns pids $ns)\" ]" || true
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$(veth "$n")" 2>/dev/null || true
    echo "docker-ssh.sh: stopped host $n, whose directory is gone"
  done
}

# DIR/bin/ssh and DIR/ssh_config for a client of several hosts at once (a pool):
# one ssh wrapper on PATH serves them all, each host's own config included.
client() {
  local dir=$1 h
  shift
  mkdir -p "$dir/bin"
  dir=$(cd "$dir" && pwd)
  : >"$dir/ssh_config"
  for h in "$@"; do
    [ -s "$h/client/ssh_config" ] || die "no host started in $h"
    echo "Include $(cd "$h" && pwd)/client/ssh_config" >>"$dir/ssh_config"
  done
  printf '#!/bin/sh\nexec %s -F %s "$@"\n' "$(command -v ssh)" "'$dir/ssh_config'" >"$dir/bin/ssh"
  chmod 0755 "$dir/bin/ssh"
  echo "TDV_TEST_SSH_PATH=$dir/bin"
}

case "${1:-}" in
sweep)
  [ $# -eq 1 ] || die "usage: $0 sweep"
  sweep
  ;;
client)
  [ $# -ge 3 ] || die "usage: $0 client DIR HOSTDIR..."
  shift
  client "$@"
  ;;
start)
  [ $# -eq 3 ] || die "usage: $0 start DIR N"
  start "$2" "$3"
  ;;
stop)
  [ $# -eq 2 ] || die "usage: $0 stop DIR"
  stop "$2"
  ;;
cut)
  [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 cut DIR [kill|down|up]"
  cut "$2" "${3:-kill}"
  ;;
env)
  [ $# -eq 2 ] || die "usage: $0 env DIR"
  [ -s "$2/env" ] || die "no host started in $2"
  cat "$2/env"
  ;;
*) die "usage: $0 start DIR N | stop DIR | cut DIR [kill|down|up] | env DIR | client DIR HOSTDIR... | sweep" ;;
esac
