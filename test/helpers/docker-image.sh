#!/bin/sh
# Creates the Docker test image tdv-fixtures/busybox without a registry: a
# root file system holding the static busybox binary and one symlink per applet
# (sh, awk, cat, sleep, true, ...), loaded with `docker import`.
#
# Idempotent: the image carries the SHA-256 of the busybox it was made from as
# a label, and is left alone while that still matches the host's busybox.
# Used by .ci/run, by developers (`sh test/helpers/docker-image.sh`) and by the
# bench. Needs a running Docker daemon and busybox-static
# (`apt-get install busybox-static`; a dynamically linked busybox cannot run
# in an image without its libraries).
#
# Usage: docker-image.sh [IMAGE]   (default tdv-fixtures/busybox)
set -eu

image=${1:-tdv-fixtures/busybox}

busybox=
for b in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
  [ -n "$b" ] && [ -x "$b" ] && { busybox=$b; break; }
done
if [ -z "$busybox" ]; then
  echo "docker-image.sh: busybox is not installed; run: apt-get install busybox-static" >&2
  exit 1
fi
# A static binary has no program interpreter (PT_INTERP); `file` may be absent, so ask ldd.
if ldd "$busybox" >/dev/null 2>&1; then
  echo "docker-image.sh: $busybox is dynamically linked; install the static one: apt-get install busybox-static" >&2
  exit 1
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker-image.sh: the Docker daemon is not reachable (docker info failed); start it with \`sudo systemctl start docker\` or \`dockerd\`" >&2
  exit 1
fi

sum=$(sha256sum "$busybox" | cut -d' ' -f1)
have=$(docker image inspect --format '{{ index .Config.Labels "tdv.busybox" }}' "$image" 2>/dev/null || true)
if [ "$have" = "$sum" ]; then
  exit 0
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/tdv-busybox-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev" "$root/usr/bin" "$root/sbin" "$root/usr/sbin"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# What `busybox --install -s /bin` does inside the image, done from outside:
# relative links, so no chroot (and no root) is needed to make them.
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

tar -C "$root" -cf - . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["sh"]' \
  --change "LABEL tdv.busybox=$sum" \
  - "$image" >/dev/null
echo "docker-image.sh: created $image from $busybox" >&2
