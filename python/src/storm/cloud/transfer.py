"""Copy folders between disk and S3 with a checksum manifest: `storm mirror` and `storm sync`.

Uploads go through boto3's managed transfer (multipart above 8 MB, retries). Each object carries
its sha256 in metadata, so a re-run skips what is already there unchanged and an interrupted
transfer resumes by running the same command again. ``manifest.json`` (sha256 and size of every
file) is written last: a prefix with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .. import io
from ..errors import InputError, StormError
from .s3 import S3Url, client

MANIFEST = "manifest.json"
RUN_MARKER = ".storm-run"
INDEX = "index.html"
SYNC_ID_FILE = ".storm-sync-id"
CHUNK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def local_files(root: Path) -> dict[str, Path]:
    """Files under ``root`` by relative POSIX path, skipping storm's own bookkeeping files."""
    skip = {MANIFEST, INDEX, SYNC_ID_FILE}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip and not p.name.startswith(".")}


def _remote_sha(s3, url: S3Url) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=url.bucket, Key=url.key)["Metadata"].get("sha256")
    except ClientError:
        return None


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=4)


@dataclass
class Transfer:
    """What a copy did: the manifest of every file, and how many were already there unchanged."""

    manifest: dict
    skipped: int

    def __str__(self) -> str:
        return f"{len(self.manifest['files'])} file(s), {self.skipped} already there unchanged and skipped"


def upload_folder(root: Path, prefix: S3Url, overlays: dict[str, Path] | None = None) -> Transfer:
    """Upload every file under ``root`` to ``prefix`` (unchanged ones skipped); write the
    manifest last. ``overlays`` (a relative path -> a file or folder elsewhere) are uploaded in
    place of what ``root`` holds there."""
    s3 = client()
    files = local_files(root)
    for rel, source in (overlays or {}).items():
        rel = rel.strip("/")
        files = {r: p for r, p in files.items() if r != rel and not r.startswith(f"{rel}/")}
        files.update({rel: source} if source.is_file() else
                     {f"{rel}/{r}": p for r, p in local_files(source).items()})
    files = dict(sorted(files.items()))
    manifest = {"files": {}}
    skipped = 0
    with tqdm(total=sum(p.stat().st_size for p in files.values()), unit="B", unit_scale=True,
              desc=f"upload {prefix}", disable=None) as bar:
        for rel, path in files.items():
            sha, size = sha256_file(path), path.stat().st_size
            manifest["files"][rel] = {"sha256": sha, "size": size}
            target = prefix.join(rel)
            if _remote_sha(s3, target) == sha:
                skipped += 1
                bar.update(size)
                continue
            s3.upload_file(str(path), target.bucket, target.key, Config=_transfer_config(),
                           ExtraArgs={"Metadata": {"sha256": sha}}, Callback=bar.update)
    s3.put_object(Bucket=prefix.bucket, Key=prefix.join(MANIFEST).key,
                  Body=json.dumps(manifest, indent=2, sort_keys=True).encode())
    return Transfer(manifest, skipped)


def download_prefix(prefix: S3Url, root: Path) -> Transfer:
    """Download everything under ``prefix`` listed in its manifest into ``root``; check sha256."""
    s3 = client()
    try:
        body = s3.get_object(Bucket=prefix.bucket, Key=prefix.join(MANIFEST).key)["Body"].read()
    except Exception as exc:  # botocore raises a ClientError subclass per service model
        raise InputError(f"{prefix} has no {MANIFEST}: it is not a complete storm mirror or sync") from exc
    manifest = json.loads(body)
    skipped = 0
    with tqdm(total=sum(f["size"] for f in manifest["files"].values()), unit="B", unit_scale=True,
              desc=f"download {prefix}", disable=None) as bar:
        for rel, meta in manifest["files"].items():
            target = root / rel
            if target.is_file() and target.stat().st_size == meta["size"] and sha256_file(target) == meta["sha256"]:
                bar.update(meta["size"])
                skipped += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with io.atomic_path(target) as tmp:
                source = prefix.join(rel)
                s3.download_file(source.bucket, source.key, str(tmp), Config=_transfer_config(), Callback=bar.update)
                if sha256_file(tmp) != meta["sha256"]:
                    raise StormError(f"checksum mismatch for {source}; the object changed during the transfer")
    return Transfer(manifest, skipped)


def mirror(source: str, destination: str) -> Transfer:
    """Copy a dataset folder to S3 or back (one side s3://, the other local)."""
    from .s3 import is_s3

    if is_s3(source) == is_s3(destination):
        raise InputError("mirror copies between a local folder and an s3:// prefix: give one of each")
    if is_s3(destination):
        root = Path(source)
        if not root.is_dir():
            raise InputError(f"not a folder: {source}")
        return upload_folder(root, S3Url.parse(destination))
    return download_prefix(S3Url.parse(source), Path(destination))


def _sync_id(results: Path) -> str:
    """This results folder's identity, kept beside it, so two folders never share a prefix."""
    marker = results / SYNC_ID_FILE
    if not marker.is_file():
        io.write_json({"id": uuid.uuid4().hex}, marker)
    return io.read_json(marker)["id"]


def index_page(manifest: dict, title: str) -> bytes:
    rows = "".join(f"<tr><td><a href='{html.escape(rel)}'>{html.escape(rel)}</a></td><td>{meta['size']:,}</td>"
                   f"<td><code>{meta['sha256'][:12]}</code></td></tr>" for rel, meta in manifest["files"].items())
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
            f"<p>Start with <a href='report/report.html'>report/report.html</a>.</p>"
            f"<table><tr><th>file</th><th>bytes</th><th>sha256</th></tr>{rows}</table>").encode()


def sync(results: str | os.PathLike, destination: str, overlays: dict[str, Path] | None = None) -> Transfer:
    """Upload a results folder to ``s3://bucket/results/<run-id>/`` for collaborators.

    The prefix is claimed for this results folder (a ``.storm-run`` object with its id); a prefix
    claimed by another folder is refused, so no run ever writes into another's. ``overlays`` stand
    for what the folder holds at their paths (the pipeline's SYNC task: the report from REPORT's
    own task, whose publishing into the folder may still be under way).
    """
    results, prefix = Path(results), S3Url.parse(destination)
    if not results.is_dir():
        raise InputError(f"not a results folder: {results}")
    if not prefix.key.strip("/"):
        raise InputError(f"sync needs a run prefix, e.g. s3://{prefix.bucket}/results/<run-id>/")
    run_id = _sync_id(results)
    s3 = client()
    marker = prefix.join(RUN_MARKER)
    try:
        owner = json.loads(s3.get_object(Bucket=marker.bucket, Key=marker.key)["Body"].read())["id"]
    except Exception:  # no marker yet: the prefix is free
        owner = None
    if owner is not None and owner != run_id:
        raise InputError(f"{prefix} already holds another run's results; choose another run id")
    if owner is None:
        listing = s3.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.key.rstrip("/") + "/", MaxKeys=1)
        if listing.get("KeyCount", 0):
            raise InputError(f"{prefix} already holds objects not written by storm sync; choose another run id")
        s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=json.dumps({"id": run_id}).encode())
    for rel, source in (overlays or {}).items():
        if not source.exists():
            raise InputError(f"--overlay {rel}={source}: no such file or folder")
    done = upload_folder(results, prefix, overlays)
    s3.put_object(Bucket=prefix.bucket, Key=prefix.join(INDEX).key, ContentType="text/html",
                  Body=index_page(done.manifest, f"storm results {prefix}"))
    return done
