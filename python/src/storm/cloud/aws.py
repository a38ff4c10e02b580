"""One-command AWS infrastructure for running storm on AWS Batch: `storm aws setup/teardown`.

Every resource is named ``storm-<deployment>-...`` and tagged ``storm:deployment=<deployment>``;
setup creates what is missing and reports what already exists (a second setup changes nothing),
teardown deletes only what carries that tag. The bucket holds data, so teardown keeps it unless
asked to delete it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial

from ..errors import InputError, StormError
from .s3 import client

log = logging.getLogger(__name__)

TAG = "storm:deployment"
WORK_EXPIRY_DAYS = 7
EC2_ROLE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
BATCH_ROLE_POLICY = "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole"


@dataclass
class Deployment:
    name: str
    region: str
    bucket: str
    cpu_instance_types: list[str] = field(default_factory=lambda: ["optimal"])
    gpu_instance_types: list[str] = field(default_factory=lambda: ["g5.xlarge", "g5.2xlarge"])
    max_vcpus: int = 256

    def __post_init__(self):
        if not self.name.replace("-", "").isalnum():
            raise InputError(f"deployment name '{self.name}' must be letters, digits and dashes")

    def resource(self, what: str) -> str:
        return f"storm-{self.name}-{what}"

    @property
    def tags(self) -> dict[str, str]:
        return {TAG: self.name}


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def _bucket_policy(bucket: str) -> str:
    """Least privilege for jobs: this bucket, nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": f"arn:aws:s3:::{bucket}"},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                       "s3:AbortMultipartUpload"], "Resource": f"arn:aws:s3:::{bucket}/*"}]})


class _Report:
    def __init__(self):
        self.created: list[str] = []
        self.existing: list[str] = []

    def add(self, what: str, created: bool) -> None:
        (self.created if created else self.existing).append(what)
        log.info("%s %s", "created" if created else "exists ", what)


def _role(iam, name: str, service: str, deployment: Deployment, report: _Report, managed: str | None = None,
          inline: str | None = None) -> str:
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        report.add(f"iam role {name}", False)
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(service),
                              Tags=[{"Key": k, "Value": v} for k, v in deployment.tags.items()])["Role"]["Arn"]
        if managed:
            iam.attach_role_policy(RoleName=name, PolicyArn=managed)
        if inline:
            iam.put_role_policy(RoleName=name, PolicyName=f"{name}-bucket", PolicyDocument=inline)
        report.add(f"iam role {name}", True)
    return arn


def _bucket(s3, deployment: Deployment, report: _Report) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=deployment.bucket)
        report.add(f"s3 bucket {deployment.bucket}", False)
        return
    except ClientError:
        pass
    kwargs = {} if deployment.region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": deployment.region}}
    s3.create_bucket(Bucket=deployment.bucket, **kwargs)
    s3.put_bucket_tagging(Bucket=deployment.bucket, Tagging={"TagSet": [{"Key": TAG, "Value": deployment.name}]})
    s3.put_bucket_lifecycle_configuration(Bucket=deployment.bucket, LifecycleConfiguration={"Rules": [
        {"ID": "expire-work", "Filter": {"Prefix": "work/"}, "Status": "Enabled",
         "Expiration": {"Days": WORK_EXPIRY_DAYS}}]})
    for folder in ("work/", "results/", "datasets/"):
        s3.put_object(Bucket=deployment.bucket, Key=folder, Body=b"")
    report.add(f"s3 bucket {deployment.bucket} (work/ expires after {WORK_EXPIRY_DAYS} days, results/, datasets/)",
               True)


def _network(ec2) -> tuple[list[str], list[str]]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise StormError("no default VPC in this region; create one or pass subnets (not supported yet)")
    vpc = vpcs[0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                   {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    return subnets, [g["GroupId"] for g in groups]


def _compute_environment(batch, name: str, kind: str, types: list[str], deployment: Deployment, profile_arn: str,
                         service_role: str, network: tuple[list[str], list[str]], report: _Report) -> str:
    found = batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    if found:
        report.add(f"batch compute environment {name}", False)
        return found[0]["computeEnvironmentArn"]
    resources = {"type": kind, "minvCpus": 0, "maxvCpus": deployment.max_vcpus, "instanceTypes": types,
                 "subnets": network[0], "securityGroupIds": network[1], "instanceRole": profile_arn,
                 "tags": deployment.tags}
    if kind == "SPOT":
        resources["allocationStrategy"] = "SPOT_PRICE_CAPACITY_OPTIMIZED"
    arn = batch.create_compute_environment(computeEnvironmentName=name, type="MANAGED", state="ENABLED",
                                           computeResources=resources, serviceRole=service_role,
                                           tags=deployment.tags)["computeEnvironmentArn"]
    report.add(f"batch compute environment {name} ({kind}, {', '.join(types)})", True)
    return arn


def _queue(batch, name: str, environment: str, deployment: Deployment, report: _Report) -> None:
    if batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
        report.add(f"batch job queue {name}", False)
        return
    batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1, tags=deployment.tags,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])
    report.add(f"batch job queue {name}", True)


def _repository(ecr, name: str, deployment: Deployment, report: _Report) -> str:
    try:
        uri = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]
        report.add(f"ecr repository {name}", False)
    except ecr.exceptions.RepositoryNotFoundException:
        uri = ecr.create_repository(repositoryName=name, tags=[{"Key": k, "Value": v}
                                                              for k, v in deployment.tags.items()]
                                    )["repository"]["repositoryUri"]
        report.add(f"ecr repository {name}", True)
    return uri


def setup(deployment: Deployment) -> tuple[dict, _Report]:
    """Create what is missing; return the run parameters and what was created or found."""
    report = _Report()
    s3, iam, ec2 = client("s3"), client("iam"), client("ec2")
    batch, ecr = client("batch"), client("ecr")
    _bucket(s3, deployment, report)
    instance_role = deployment.resource("instance-role")
    _role(iam, instance_role, "ec2.amazonaws.com", deployment, report, managed=EC2_ROLE_POLICY)
    profile_name = deployment.resource("instance-profile")
    try:
        profile_arn = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Arn"]
        report.add(f"iam instance profile {profile_name}", False)
    except iam.exceptions.NoSuchEntityException:
        profile_arn = iam.create_instance_profile(InstanceProfileName=profile_name, Tags=[
            {"Key": TAG, "Value": deployment.name}])["InstanceProfile"]["Arn"]
        iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=instance_role)
        report.add(f"iam instance profile {profile_name}", True)
    service_role = _role(iam, deployment.resource("batch-service-role"), "batch.amazonaws.com", deployment, report,
                         managed=BATCH_ROLE_POLICY)
    job_role = _role(iam, deployment.resource("job-role"), "ecs-tasks.amazonaws.com", deployment, report,
                     inline=_bucket_policy(deployment.bucket))
    network = _network(ec2)
    queues = {}
    for kind, (ce_type, types) in {"cpu": ("SPOT", deployment.cpu_instance_types),
                                   "gpu": ("EC2", deployment.gpu_instance_types)}.items():
        environment = _compute_environment(batch, deployment.resource(kind), ce_type, types, deployment, profile_arn,
                                           service_role, network, report)
        queues[kind] = deployment.resource(kind)
        _queue(batch, queues[kind], environment, deployment, report)
    from ..models.environments import images

    registry = ""
    for image in images():
        uri = _repository(ecr, f"storm-{deployment.name}/{image}", deployment, report)
        registry = uri.rsplit("/", 1)[0]
    params = {"aws_region": deployment.region, "aws_bucket": deployment.bucket, "aws_cpu_queue": queues["cpu"],
              "aws_gpu_queue": queues["gpu"], "aws_job_role": job_role, "container_registry": registry}
    return params, report


def config_text(params: dict) -> str:
    """A Nextflow config a run includes with -c: the params setup produced (no credentials)."""
    lines = ["// written by `storm aws setup`; use with -profile awsbatch -c <this file>", "params {"]
    lines += [f"    {key} = '{value}'" for key, value in params.items()]
    lines += ["}", f"workDir = 's3://{params['aws_bucket']}/work'"]
    if "aws_region" in params:
        lines.append(f"aws.region = '{params['aws_region']}'")
    if "aws_job_role" in params:
        lines.append(f"aws.batch.jobRole = '{params['aws_job_role']}'")
    return "\n".join(lines) + "\n"


def _tagged(tags: dict | list | None, deployment: str) -> bool:
    if isinstance(tags, list):
        tags = {t["Key"]: t["Value"] for t in tags}
    return (tags or {}).get(TAG) == deployment


def _wait(describe, ready, what: str, poll: float, timeout: float):
    """Poll ``describe()`` until ``ready`` holds for what it returns; Batch applies changes asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        found = describe()
        if ready(found):
            return
        if time.monotonic() > deadline:
            raise StormError(f"{what} did not settle within {timeout:.0f} s (last seen: {found}); "
                             "run teardown again once it has")
        time.sleep(poll)


def _delete_batch(batch, deployment: str, poll: float = 5.0, timeout: float = 900.0) -> list[str]:
    """Job queues, then compute environments, in the order and states AWS Batch requires: a queue is
    deleted only once it is DISABLED and settled, and a compute environment only once no queue refers
    to it (deleting queues is asynchronous, so that too is waited for)."""
    removed = []

    def queue(name):
        return next(iter(batch.describe_job_queues(jobQueues=[name])["jobQueues"]), None)

    def environment(name):
        return next(iter(batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]),
                    None)

    def settled_disabled(found):
        return found is None or (found["state"] == "DISABLED" and found["status"] in ("VALID", "INVALID"))

    def gone(found):
        return found is None or found["status"] == "DELETED"

    queues = [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"] if _tagged(q.get("tags"), deployment)
              and q["status"] != "DELETED"]
    for name in queues:
        batch.update_job_queue(jobQueue=name, state="DISABLED")
    for name in queues:
        _wait(partial(queue, name), settled_disabled, f"batch job queue {name} (disabling)", poll, timeout)
        batch.delete_job_queue(jobQueue=name)
        removed.append(f"batch job queue {name}")
    for name in queues:
        _wait(partial(queue, name), gone, f"batch job queue {name} (deleting)", poll, timeout)
    environments = [e["computeEnvironmentName"] for e in batch.describe_compute_environments()["computeEnvironments"]
                    if _tagged(e.get("tags"), deployment) and e["status"] != "DELETED"]
    for name in environments:
        batch.update_compute_environment(computeEnvironment=name, state="DISABLED")
    for name in environments:
        _wait(partial(environment, name), settled_disabled, f"batch compute environment {name} (disabling)", poll,
              timeout)
        batch.delete_compute_environment(computeEnvironment=name)
        removed.append(f"batch compute environment {name}")
    return removed


def teardown(deployment: Deployment, delete_bucket: bool = False) -> list[str]:
    """Delete the deployment's tagged resources (the bucket only with ``delete_bucket``)."""
    removed = []
    batch, iam, ecr, s3 = client("batch"), client("iam"), client("ecr"), client("s3")
    removed += _delete_batch(batch, deployment.name)
    tagged_roles = {role["RoleName"] for role in iam.list_roles()["Roles"]
                    if _tagged(iam.list_role_tags(RoleName=role["RoleName"])["Tags"], deployment.name)}
    for profile in iam.list_instance_profiles()["InstanceProfiles"]:
        # a profile is ours when it carries our tagged role (some IAM implementations lack profile tags)
        if {r["RoleName"] for r in profile["Roles"]} & tagged_roles:
            for role in profile["Roles"]:
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"],
                                                      RoleName=role["RoleName"])
            iam.delete_instance_profile(InstanceProfileName=profile["InstanceProfileName"])
            removed.append(f"iam instance profile {profile['InstanceProfileName']}")
    for role in sorted(tagged_roles):
        for policy in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            iam.delete_role_policy(RoleName=role, PolicyName=name)
        iam.delete_role(RoleName=role)
        removed.append(f"iam role {role}")
    for repo in ecr.describe_repositories()["repositories"]:
        if _tagged(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"], deployment.name):
            ecr.delete_repository(repositoryName=repo["repositoryName"], force=True)
            removed.append(f"ecr repository {repo['repositoryName']}")
    if delete_bucket:
        from botocore.exceptions import ClientError

        try:
            tags = s3.get_bucket_tagging(Bucket=deployment.bucket)["TagSet"]
        except ClientError:
            tags = []
        if _tagged(tags, deployment.name):
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=deployment.bucket):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=deployment.bucket, Key=item["Key"], VersionId=item["VersionId"])
            s3.delete_bucket(Bucket=deployment.bucket)
            removed.append(f"s3 bucket {deployment.bucket}")
    for item in removed:
        log.info("deleted %s", item)
    return removed
