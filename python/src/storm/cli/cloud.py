"""S3 and AWS: `storm mirror`, `storm sync`, `storm aws setup|teardown`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .base import cli, comma_list


@cli.command()
@click.argument("source")
@click.argument("destination")
def mirror(source: str, destination: str) -> None:
    """Copy a dataset folder to s3://bucket/datasets/... or back, with a sha256 manifest; unchanged
    files are skipped, so an interrupted copy resumes when run again."""
    from ..cloud.transfer import mirror as run

    click.echo(f"{destination}: {run(source, destination)}")


@cli.command()
@click.argument("results", type=click.Path(file_okay=False, path_type=Path))
@click.argument("destination")
@click.option("--overlay", "overlays", multiple=True, metavar="REL=PATH",
              help="Upload PATH (a file or folder) as REL in place of what RESULTS holds there (repeatable).")
def sync(results: Path, destination: str, overlays: tuple[str, ...]) -> None:
    """Upload a results folder to s3://bucket/results/<run-id>/ for collaborators: manifest.json
    (sha256, size), index.html, unchanged files skipped, never into another run's prefix."""
    from ..cloud.transfer import sync as run

    replaced = {}
    for item in overlays:
        rel, eq, path = item.partition("=")
        if not eq or not rel or not path:
            raise InputError(f"--overlay expects REL=PATH, got '{item}'")
        replaced[rel] = Path(path)
    click.echo(f"{destination.rstrip('/')}/: {run(results, destination, replaced)} (index.html lists them)")


@cli.group()
def aws() -> None:
    """Create or remove the AWS resources storm runs on (AWS Batch, S3, IAM, ECR)."""


def _deployment_options(func):
    for option in reversed([
        click.option("--deployment", required=True, help="Name of this deployment (tags and names its resources)."),
        click.option("--region", default="us-east-1", help="AWS region."),
        click.option("--bucket", required=True, help="S3 bucket for work/, results/ and datasets/."),
    ]):
        func = option(func)
    return func


@aws.command("setup")
@_deployment_options
@click.option("--cpu-instance-types", default="optimal", help="Comma-separated instance types (spot).")
@click.option("--gpu-instance-types", default="g5.xlarge,g5.2xlarge", help="Comma-separated GPU instance types.")
@click.option("--max-vcpus", default=256, help="Ceiling of each compute environment.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default="aws.config",
              help="Nextflow config with the run parameters (use with -c).")
def aws_setup(deployment: str, region: str, bucket: str, cpu_instance_types: str, gpu_instance_types: str,
              max_vcpus: int, out: Path) -> None:
    """Create what is missing; a second run changes nothing and says so."""
    from .. import io
    from ..cloud.aws import Deployment, config_text, setup

    params, report = setup(Deployment(deployment, region, bucket, comma_list(cpu_instance_types),
                                      comma_list(gpu_instance_types), max_vcpus))
    with io.atomic_path(out) as tmp:
        tmp.write_text(config_text(params))
    if report.created:
        click.echo(f"created {len(report.created)}: " + "; ".join(report.created))
    else:
        click.echo("no change: every resource already exists")
    registry = params["container_registry"]
    login = (f"aws ecr get-login-password --region {params['aws_region']} | "
             f"docker login --username AWS --password-stdin {registry.split('/')[0]}")
    click.echo(f"push the images: {login} && docker/build.sh --registry {registry} --push")
    click.echo(f"run with: nextflow run main.nf -profile awsbatch -c {out} ...")


@aws.command("teardown")
@_deployment_options
@click.option("--delete-bucket", is_flag=True, help="Also empty and delete the bucket (its results are lost).")
def aws_teardown(deployment: str, region: str, bucket: str, delete_bucket: bool) -> None:
    """Delete the resources tagged with this deployment, nothing else."""
    from ..cloud.aws import Deployment, teardown

    removed = teardown(Deployment(deployment, region, bucket), delete_bucket=delete_bucket)
    click.echo(f"deleted {len(removed)}: " + ("; ".join(removed) or "nothing"))
