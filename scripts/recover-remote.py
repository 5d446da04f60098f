#!/usr/bin/env python3
"""Recover every object of a tdv remote without tdv (README: "Remote layout").

    recover-remote.py REMOTE OUT              # read the indexes (index/*.json.gz)
    recover-remote.py --scan-packs REMOTE OUT # no index: walk the records of every pack

REMOTE is a directory remote, or a local copy of an S3 remote
(`aws s3 sync s3://bucket/prefix REMOTE`). Every object (a file's content, or
a directory's manifest) is written as OUT/<oid>: small objects from their
packs, large files reassembled from their recipe's chunks, plain objects
(files/sha256/ab/cdef...) copied. Each one is checked against its SHA-256
before it is written; nothing unverified ends up in OUT. Needs Python 3 and,
for compressed blobs, the `zstd` command (Debian: apt-get install zstd).
Exits 1 when some object could not be recovered (each is named on stderr).
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys

MAGIC = b"TDVPACK1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
OID = re.compile(r"^[0-9a-f]{64}(\.dir)?$")
KINDS = {"o": "object", "c": "chunk", "r": "recipe"}
CODECS = {"n": "none", "z": "zstd"}


class Blob:
    """Where one blob lives: its pack, the payload's offset and length, how it is encoded."""

    def __init__(self, id, kind, pack, offset, length, raw, codec, size=None):
        self.id, self.kind, self.pack = id, kind, pack
        self.offset, self.length, self.raw, self.codec, self.size = offset, length, raw, codec, size


def from_indexes(remote):
    """Blobs named by every index, the most recently written index first."""
    found = []
    index_dir = os.path.join(remote, "index")
    for name in sorted(os.listdir(index_dir)) if os.path.isdir(index_dir) else []:
        if not name.endswith(".json.gz"):
            continue
        try:
            doc = json.loads(gzip.decompress(open(os.path.join(index_dir, name), "rb").read()))
            if doc.get("format") != "tdv-index" or doc.get("version") != 1:
                raise ValueError("not a tdv index of version 1")
            if not all(isinstance(p, str) and HEX64.match(p) for p in doc["packs"]):
                raise ValueError("a pack name is not a SHA-256")
            packs = [os.path.join(remote, "packs", p + ".pack") for p in doc["packs"]]
            blobs = [Blob(r[0], KINDS[r[1]], packs[r[2]], r[3], r[4], r[5], CODECS[r[6]], r[7] if len(r) > 7 else None) for r in doc["blobs"]]
        except Exception as e:  # one bad index must not hide the others
            print(f"index/{name}: unreadable ({e}); skipped", file=sys.stderr)
            continue
        found.append((doc.get("written", 0), blobs))
    found.sort(key=lambda x: -x[0])
    return [b for _, blobs in found for b in blobs]


def from_packs(remote):
    """Blobs found by reading every pack's records: 4-byte big-endian header length, JSON header, payload."""
    blobs = []
    pack_dir = os.path.join(remote, "packs")
    for name in sorted(os.listdir(pack_dir)) if os.path.isdir(pack_dir) else []:
        if not name.endswith(".pack"):
            continue
        path = os.path.join(pack_dir, name)
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            if f.read(8) != MAGIC:
                print(f"packs/{name}: not a tdv pack; skipped", file=sys.stderr)
                continue
            at = 8
            while at < end:
                try:
                    (n,) = struct.unpack(">I", f.read(4))
                    h = json.loads(f.read(n)) if n <= 1 << 20 else None
                    payload = at + 4 + n
                    if not h or h["kind"] not in KINDS.values() or payload + h["len"] > end:
                        raise ValueError("record cut short or damaged")
                    blobs.append(Blob(h["id"], h["kind"], path, payload, h["len"], h["raw"], h["codec"], h.get("size")))
                except Exception as e:  # a damaged header: the rest of the pack cannot be found
                    print(f"packs/{name}: stopped at byte {at} ({e})", file=sys.stderr)
                    break
                at = payload + h["len"]
                f.seek(at)
    return blobs


def read_blob(b):
    """A blob's decoded bytes, or None when they cannot be read."""
    try:
        with open(b.pack, "rb") as f:
            f.seek(b.offset)
            data = f.read(b.length)
        if len(data) != b.length:
            return None
        if b.codec == "zstd":
            if not shutil.which("zstd"):
                sys.exit("the `zstd` command is needed for compressed blobs (apt-get install zstd)")
            data = subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True, check=True).stdout
        return data if len(data) == b.raw else None
    except (OSError, subprocess.CalledProcessError):
        return None


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def verified(blobs, sha):
    """The bytes of the first of `blobs` that hashes to `sha`."""
    for b in blobs:
        data = read_blob(b)
        if data is not None and sha256(data) == sha:
            return data
    return None


def write_atomic(out, oid, parts):
    """Writes the parts to OUT/oid through a temp file, hashing them; keeps it only if the hash is oid's."""
    tmp = os.path.join(out, f".{oid}.tmp")
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for p in parts:
            if p is None:
                break
            h.update(p)
            f.write(p)
        else:
            if h.hexdigest() == oid[:64]:
                os.replace(tmp, os.path.join(out, oid))
                return True
    os.unlink(tmp)
    return False


def recover(remote, out, blobs, chunks_too):
    by_id = {}
    for b in blobs:  # in the order given: the first copy is tried first, the others if it is damaged
        by_id.setdefault(b.id, []).append(b)
    plain = {}
    files = os.path.join(remote, "files", "sha256")
    for d in sorted(os.listdir(files)) if os.path.isdir(files) else []:
        for rest in os.listdir(os.path.join(files, d)):
            if OID.match(d + rest):
                plain[d + rest] = os.path.join(files, d, rest)
    wanted = sorted({b.id for b in blobs if b.kind != "chunk" or chunks_too} | set(plain))
    done, failed = 0, []
    for oid in wanted:
        if not OID.match(oid):
            failed.append((oid, "not an object id"))
            continue
        cands = by_id.get(oid, [])
        whole = [b for b in cands if b.kind != "recipe"]
        data = verified(whole, oid[:64])
        if data is not None and write_atomic(out, oid, [data]):
            done += 1
            continue
        ok = False
        for r in [b for b in cands if b.kind == "recipe"]:
            raw = read_blob(r)
            try:
                recipe = json.loads(raw) if raw is not None else None
                chunks = recipe["chunks"] if recipe and recipe.get("format") == "tdv-recipe" else None
            except ValueError:
                chunks = None
            if chunks is None:
                continue
            # Each chunk from any blob holding its bytes (a chunk, or a small object of the same content).
            parts = (verified([b for b in by_id.get(c, []) if b.kind != "recipe"], c) for c, _size in chunks)
            if write_atomic(out, oid, parts):
                ok = True
                break
        if not ok and oid in plain:
            with open(plain[oid], "rb") as f:
                ok = write_atomic(out, oid, iter(lambda: f.read(1 << 20), b""))
        if ok:
            done += 1
        else:
            failed.append((oid, "no copy on the remote hashes to it"))
    for oid, why in failed:
        print(f"{oid}: not recovered: {why}", file=sys.stderr)
    print(f"recovered {done} objects into {out}" + (f"; {len(failed)} not recovered" if failed else ""))
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("remote", help="a directory remote, or a local copy of an S3 remote")
    p.add_argument("out", help="where to write OUT/<oid> (created if missing)")
    p.add_argument("--scan-packs", action="store_true", help="ignore the indexes: read every pack's record headers")
    p.add_argument("--chunks", action="store_true", help="also write every chunk as OUT/<sha256> (a small file identical to a chunk of a large one is stored only as that chunk)")
    a = p.parse_args()
    record = os.path.join(a.remote, "tdv-remote.json")
    if os.path.exists(record):
        try:
            layout = json.load(open(record)).get("layout")
        except (ValueError, AttributeError):
            layout = "unreadable"
        if not isinstance(layout, int) or layout > 2:
            print(f"warning: {record}: layout {layout!r}; this script reads layout 2 (and plain objects)", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    blobs = from_packs(a.remote) if a.scan_packs else from_indexes(a.remote)
    sys.exit(recover(a.remote, a.out, blobs, a.chunks))


if __name__ == "__main__":
    main()
