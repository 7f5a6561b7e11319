#!/usr/bin/env python3
"""S3 from the tests' side, with boto3 (an independent client): make buckets, list and fetch
what Sluice wrote, list unfinished multipart uploads.

  s3_tool.py --endpoint URL create-bucket --bucket B
  s3_tool.py --endpoint URL list --bucket B [--prefix P]          # one key per line
  s3_tool.py --endpoint URL fetch --bucket B --prefix P --out DIR  # keys below P into DIR
  s3_tool.py --endpoint URL put --bucket B --key K --file F        # F as object K
  s3_tool.py --endpoint URL uploads --bucket B                     # unfinished uploads, JSON
  s3_tool.py --endpoint URL glue-table --database D --table T      # Glue table + partitions, JSON

Credentials and region come from the environment (the tests set dummy ones).
"""
import argparse
import json
import os

import boto3
from botocore.config import Config


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def keys(s3, bucket, prefix):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-bucket")
    c.add_argument("--bucket", required=True)
    ls = sub.add_parser("list")
    ls.add_argument("--bucket", required=True)
    ls.add_argument("--prefix", default="")
    f = sub.add_parser("fetch")
    f.add_argument("--bucket", required=True)
    f.add_argument("--prefix", default="")
    f.add_argument("--out", required=True)
    put = sub.add_parser("put")
    put.add_argument("--bucket", required=True)
    put.add_argument("--key", required=True)
    put.add_argument("--file", required=True)
    u = sub.add_parser("uploads")
    u.add_argument("--bucket", required=True)
    g = sub.add_parser("glue-table")
    g.add_argument("--database", required=True)
    g.add_argument("--table", required=True)
    a = p.parse_args()
    s3 = client(a.endpoint)
    if a.cmd == "create-bucket":
        s3.create_bucket(Bucket=a.bucket)
        print(json.dumps({"bucket": a.bucket}))
    elif a.cmd == "list":
        for k in keys(s3, a.bucket, a.prefix):
            print(k)
    elif a.cmd == "fetch":
        fetched = keys(s3, a.bucket, a.prefix)
        for k in fetched:
            rel = k[len(a.prefix):].lstrip("/")
            path = os.path.join(a.out, rel)
            os.makedirs(os.path.dirname(path) or a.out, exist_ok=True)
            s3.download_file(a.bucket, k, path)
        print(json.dumps({"fetched": len(fetched)}))
    elif a.cmd == "put":
        s3.upload_file(a.file, a.bucket, a.key)
        print(json.dumps({"put": a.key}))
    elif a.cmd == "glue-table":
        glue = boto3.client("glue", endpoint_url=a.endpoint,
                            region_name=os.environ.get("AWS_REGION", "us-east-1"))
        t = glue.get_table(DatabaseName=a.database, Name=a.table)["Table"]
        sd = t["StorageDescriptor"]
        parts = glue.get_paginator("get_partitions").paginate(
            DatabaseName=a.database, TableName=a.table)
        partitions = sorted([p["Values"], p["StorageDescriptor"]["Location"]]
                            for page in parts for p in page["Partitions"])
        print(json.dumps({
            "columns": [[c["Name"], c["Type"]] for c in sd["Columns"]],
            "partition_keys": [[c["Name"], c["Type"]] for c in t.get("PartitionKeys", [])],
            "location": sd["Location"],
            "serde": sd["SerdeInfo"]["SerializationLibrary"],
            "input_format": sd["InputFormat"],
            "table_type": t.get("TableType"),
            "parameters": t.get("Parameters", {}),
            "partitions": partitions,
        }))
    elif a.cmd == "uploads":
        resp = s3.list_multipart_uploads(Bucket=a.bucket)
        print(json.dumps([u["Key"] for u in resp.get("Uploads", [])]))


if __name__ == "__main__":
    main()
