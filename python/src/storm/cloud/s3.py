"""S3 addresses and clients. The endpoint comes from AWS_ENDPOINT_URL when set (a local
S3-compatible server in tests), credentials from the usual AWS chain; none is ever logged."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> "S3Url":
        if not url.startswith("s3://"):
            raise InputError(f"expected an s3://bucket/prefix address, got '{url}'")
        bucket, _, key = url[5:].partition("/")
        if not bucket:
            raise InputError(f"no bucket in '{url}'")
        return cls(bucket, key)

    def join(self, *parts: str) -> "S3Url":
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Url(self.bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_s3(path) -> bool:
    return str(path).startswith("s3://")


def client(service: str = "s3"):
    import boto3

    return boto3.session.Session().client(service)


def fetch(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download an s3:// object to a local file (kept in ``cache_dir`` or a temp folder) and
    return its path; for workers run outside Nextflow's staging."""
    from botocore.exceptions import ClientError

    address = S3Url.parse(url)
    target = Path(cache_dir or tempfile.mkdtemp(prefix="storm-s3-")) / Path(address.key).name
    try:
        client().download_file(address.bucket, address.key, str(target))
    except ClientError as exc:
        raise InputError(f"cannot read {url}: {exc.response['Error'].get('Message') or exc}") from exc
    return target
