"""`storm sync` throughput against a local S3-compatible server (moto) on 127.0.0.1 (not a test).

Usage: python tests/benchmarks/sync_throughput.py [--gigabytes 1] [--files 40]

Starts moto in server mode, writes a results folder of random files, syncs it (first upload), syncs
it again, and prints the seconds and MB/s of each. The second pass transfers nothing: every file is
unchanged, so it measures reading and hashing the folder (sha256) plus one HEAD request per file;
its MB/s is a hashing rate, not a transfer rate.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        time.sleep(2)
        boto3.client("s3").create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results"
            results.mkdir()
            size = int(args.gigabytes * 2**30 / args.files)
            for i in range(args.files):
                (results / f"part{i:03d}.bin").write_bytes(os.urandom(size))
            total_mb = size * args.files / 2**20
            for label in ("first sync (upload)", "second sync (hash + HEAD)"):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "storm", "-q", "sync", str(results), "s3://bench/results/run"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds = time.perf_counter() - started
                print(f"{label:<26} {total_mb:8.0f} MB {seconds:7.1f} s {total_mb / seconds:8.1f} MB/s")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
