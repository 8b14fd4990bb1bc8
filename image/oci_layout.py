#!/usr/bin/env python3
"""Writes an OCI image layout holding one static tollgate binary, FROM scratch.

No container daemon and no base image: the layer is a tar with one file, `/tollgate`, written
here with fixed metadata (mtime from --created, uid/gid 0, mode 0755) and gzipped with mtime 0,
so the same binary and arguments give the same digests on any machine. The config runs it as
65532:65532 (the chart's runAsUser/runAsGroup) with Entrypoint ["/tollgate"] and no Cmd: the
chart passes `serve ...` as args, and a bare `run` prints the usage rather than starting dev
mode, which would write its CA into a read-only "/".

Usage: oci_layout.py --binary PATH --out DIR --ref REPO:TAG --version V --revision SHA
                     [--created RFC3339] [--source URL] [--architecture amd64|arm64]
Prints the manifest digest. Push with `skopeo copy oci:DIR:REPO:TAG docker://REPO:TAG`.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
USER = "65532:65532"
ENTRYPOINT = "/tollgate"


def layer_tar(binary: str, mtime: int) -> bytes:
    data = open(binary, "rb").read()
    buf = io.BytesIO()
    # USTAR: no PAX headers carrying atime/ctime or the builder's user names.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(ENTRYPOINT.lstrip("/"))
        info.size = len(data)
        info.mode = 0o755
        info.mtime = mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    # mtime=0 and no file name in the gzip header: the digest depends on the content only.
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def put_blob(out: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ref", required=True, help="repository:tag, e.g. ghcr.io/tollgate/tollgate:0.1.0")
    p.add_argument("--version", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--created", default="1970-01-01T00:00:00Z")
    p.add_argument("--source", default="https://github.com/tollgate/tollgate")
    p.add_argument("--architecture", default="amd64", help="GOARCH spelling: amd64, arm64")
    a = p.parse_args()

    created = datetime.datetime.fromisoformat(a.created.replace("Z", "+00:00"))
    mtime = int(created.timestamp())

    # A stale layout would keep old blobs next to the new index: start from nothing.
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(os.path.join(a.out, "blobs", "sha256"))

    tar = layer_tar(a.binary, mtime)
    layer = {"mediaType": MT_LAYER, **put_blob(a.out, gzipped(tar))}
    labels = {
        "org.opencontainers.image.title": "tollgate",
        "org.opencontainers.image.version": a.version,
        "org.opencontainers.image.revision": a.revision,
        "org.opencontainers.image.source": a.source,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": a.created,
    }
    config = {
        "created": a.created,
        "architecture": a.architecture,
        "os": "linux",
        "config": {
            "User": USER,
            "Entrypoint": [ENTRYPOINT],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
        "history": [{"created": a.created, "created_by": "image/oci_layout.py: COPY tollgate /tollgate"}],
    }
    config_desc = {"mediaType": MT_CONFIG, **put_blob(a.out, canonical(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config_desc,
        "layers": [layer],
        "annotations": labels,
    }
    manifest_desc = {
        "mediaType": MT_MANIFEST,
        **put_blob(a.out, canonical(manifest)),
        "platform": {"architecture": a.architecture, "os": "linux"},
        # `skopeo ... oci:DIR:<ref.name>` finds the image by this; the full repository:tag, as
        # the chart's default image is named.
        "annotations": {"org.opencontainers.image.ref.name": a.ref},
    }
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [manifest_desc]}
    with open(os.path.join(a.out, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(a.out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(manifest_desc["digest"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
