#!/usr/bin/env python3
"""Creates what the compose stack's job needs, then exits: the `tx` stream, the
`tx_metrics` stream, the bucket and the feature group `tx-metrics`.

Run by the compose service `init` (with boto3 from the emulator's image). Safe to run again:
what exists is left as it is. Settings come from the environment:

  AWS_ENDPOINT_URL          the AWS endpoint (the emulator)
  FEATURESTORE_ENDPOINT     the local feature store (`sluice featurestore serve`)
  SLUICE_BUCKET             the bucket for Parquet, checkpoints and the offline store
  TX_SHARDS                 shards of the `tx` stream (4)
  TX_METRICS_SHARDS         shards of the `tx_metrics` stream (1)
"""
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError

REGION = os.environ.get("AWS_REGION", "us-east-1")

# The feature group the job writes: one record per currency, its latest minute.
FEATURES = [
    ("currency", "String"),
    ("window_end", "String"),
    ("tx_count", "Integral"),
    ("total_fee", "Fractional"),
    ("avg_fee", "Fractional"),
]


def say(message):
    print(f"init: {message}", flush=True)


def error_code(error):
    return error.response.get("Error", {}).get("Code", "")


def create_stream(kinesis, name, shards):
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        say(f"stream {name} created with {shards} shards")
    except ClientError as e:
        if error_code(e) != "ResourceInUseException":
            raise
        say(f"stream {name} exists")
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})


def create_bucket(s3, bucket):
    try:
        s3.create_bucket(Bucket=bucket)
        say(f"bucket {bucket} created")
    except ClientError as e:
        if error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        say(f"bucket {bucket} exists")


def create_feature_group(sagemaker, bucket):
    try:
        sagemaker.create_feature_group(
            FeatureGroupName="tx-metrics",
            RecordIdentifierFeatureName="currency",
            EventTimeFeatureName="window_end",
            FeatureDefinitions=[{"FeatureName": n, "FeatureType": t} for n, t in FEATURES],
            OnlineStoreConfig={"EnableOnlineStore": True},
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"s3://{bucket}/featurestore"}},
            RoleArn="arn:aws:iam::000000000000:role/sluice-featurestore",
        )
        say("feature group tx-metrics created")
    except ClientError as e:
        if error_code(e) != "ResourceInUse":
            raise
        say("feature group tx-metrics exists")


def retrying(what, call, seconds=60):
    """Calls `call` until it succeeds; a service that does not answer yet gets `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except ClientError as e:
            sys.exit(f"init: {what} failed: {e}")
        except Exception as e:  # botocore's connection errors: the service is starting
            if time.monotonic() > deadline:
                sys.exit(f"init: {what} failed: {e}")
            time.sleep(1)


def main():
    bucket = os.environ.get("SLUICE_BUCKET", "sluice-demo")
    kinesis = boto3.client("kinesis", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client(
        "sagemaker", region_name=REGION, endpoint_url=os.environ["FEATURESTORE_ENDPOINT"])
    retrying("creating stream tx",
             lambda: create_stream(kinesis, "tx", int(os.environ.get("TX_SHARDS", "4"))))
    retrying("creating stream tx_metrics",
             lambda: create_stream(kinesis, "tx_metrics",
                                   int(os.environ.get("TX_METRICS_SHARDS", "1"))))
    retrying(f"creating bucket {bucket}", lambda: create_bucket(s3, bucket))
    retrying("creating feature group tx-metrics", lambda: create_feature_group(sagemaker, bucket))
    say("done")


if __name__ == "__main__":
    main()
