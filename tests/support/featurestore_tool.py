#!/usr/bin/env python3
"""boto3 against a feature store endpoint (`sluice featurestore serve`): a client no one here
wrote, so the local store is checked against the SageMaker API as AWS's own SDK speaks it.

  featurestore_tool.py check-api --endpoint URL
      creates, describes and lists a feature group; puts, gets, batch-gets and deletes
      records; checks the older-event-time rule, TTL expiry, and the error codes of a missing
      group and an invalid record. Prints "ok" or fails with the first mismatch.
  featurestore_tool.py create-group --endpoint URL --name G --id FEATURE --time FEATURE
                                    --features NAME:TYPE,... [--offline-uri URI]
                                    [--glue DATABASE.TABLE]
  featurestore_tool.py put --endpoint URL --name G --record NAME=VALUE,...
  featurestore_tool.py get --endpoint URL --name G --ids ID,...
      prints {id: {feature: value}} of every record found, via GetRecord.

Credentials and region come from the environment (dummy values in the tests).
"""
import argparse
import json
import os
import time

import boto3
from botocore.config import Config


def clients(endpoint):
    config = Config(retries={"max_attempts": 1})
    control = boto3.client("sagemaker", endpoint_url=endpoint, config=config)
    runtime = boto3.client("sagemaker-featurestore-runtime", endpoint_url=endpoint,
                           config=config)
    return control, runtime


def create_group(control, name, record_id, event_time, features, offline_uri=None, ttl=None,
                 glue=None):
    kwargs = dict(
        FeatureGroupName=name,
        RecordIdentifierFeatureName=record_id,
        EventTimeFeatureName=event_time,
        FeatureDefinitions=[{"FeatureName": n, "FeatureType": t} for n, t in features],
        OnlineStoreConfig={"EnableOnlineStore": True},
        RoleArn="arn:aws:iam::000000000000:role/featurestore",
    )
    if ttl:
        kwargs["OnlineStoreConfig"]["TtlDuration"] = ttl
    if offline_uri:
        kwargs["OfflineStoreConfig"] = {"S3StorageConfig": {"S3Uri": offline_uri}}
        if glue:
            database, table = glue.split(".", 1)
            kwargs["OfflineStoreConfig"]["DataCatalogConfig"] = {
                "TableName": table, "Catalog": "AwsDataCatalog", "Database": database}
    return control.create_feature_group(**kwargs)


def record(**values):
    return [{"FeatureName": k, "ValueAsString": str(v)} for k, v in values.items()]


def as_dict(rec):
    return {v["FeatureName"]: v["ValueAsString"] for v in rec}


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except Exception as e:  # botocore.exceptions.ClientError or a modelled subclass
        got = getattr(e, "response", {}).get("Error", {}).get("Code")
        assert got == code, f"expected error {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected error {code}, the call succeeded")


def check_api(endpoint):
    control, runtime = clients(endpoint)
    name = "cards"
    out = create_group(control, name, "card_id", "event_time",
                       [("card_id", "String"), ("event_time", "String"),
                        ("tx_count", "Integral"), ("avg_amount", "Fractional")],
                       offline_uri="offline")
    assert out["FeatureGroupArn"].endswith(":feature-group/cards"), out
    expect_error("ResourceInUse", create_group, control, name, "card_id", "event_time",
                 [("card_id", "String"), ("event_time", "String")])
    expect_error("ValidationException", create_group, control, "bad", "missing", "event_time",
                 [("event_time", "String")])
    desc = control.describe_feature_group(FeatureGroupName=name)
    assert desc["RecordIdentifierFeatureName"] == "card_id", desc
    assert desc["EventTimeFeatureName"] == "event_time", desc
    assert [d["FeatureName"] for d in desc["FeatureDefinitions"]] == \
        ["card_id", "event_time", "tx_count", "avg_amount"], desc
    assert desc["FeatureDefinitions"][2]["FeatureType"] == "Integral", desc
    assert desc["FeatureGroupStatus"] == "Created", desc
    assert desc["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"].endswith(
        "/offline-store/cards-%d/data" % int(desc["CreationTime"].timestamp())), desc
    summaries = control.list_feature_groups()["FeatureGroupSummaries"]
    assert [s["FeatureGroupName"] for s in summaries] == [name], summaries

    # Put and get; a feature subset; a missing record.
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c1", event_time="2024-05-01T12:00:00Z", tx_count=3, avg_amount=12.5))
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1")
    assert as_dict(got["Record"]) == {"card_id": "c1", "event_time": "2024-05-01T12:00:00Z",
                                      "tx_count": "3", "avg_amount": "12.5"}, got
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1",
                             FeatureNames=["tx_count", "avg_amount"])
    assert as_dict(got["Record"]) == {"tx_count": "3", "avg_amount": "12.5"}, got
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="nobody")
    assert "Record" not in got, got

    # An older event time changes nothing online; an equal one neither; a newer one wins.
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c1", event_time="2024-05-01T11:59:59.999Z", tx_count=1, avg_amount=1.0))
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c1", event_time="2024-05-01T12:00:00.000Z", tx_count=2, avg_amount=2.0))
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1")
    assert as_dict(got["Record"])["tx_count"] == "3", got
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c1", event_time="1714564801.5", tx_count=4, avg_amount=0.25))
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1")
    assert as_dict(got["Record"])["tx_count"] == "4", got

    # BatchGetRecord over two records, one missing, and a missing group.
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c2", event_time="2024-05-01T12:00:00Z", tx_count=7))
    got = runtime.batch_get_record(Identifiers=[
        {"FeatureGroupName": name, "RecordIdentifiersValueAsString": ["c1", "c2", "c3"]},
        {"FeatureGroupName": "nope", "RecordIdentifiersValueAsString": ["c1"]},
    ])
    found = {r["RecordIdentifierValueAsString"]: as_dict(r["Record"]) for r in got["Records"]}
    assert set(found) == {"c1", "c2"}, got
    assert found["c2"] == {"card_id": "c2", "event_time": "2024-05-01T12:00:00Z",
                           "tx_count": "7"}, got
    assert [e["ErrorCode"] for e in got["Errors"]] == ["ResourceNotFound"], got

    # Errors: missing group, unknown feature, wrong type, missing identifier.
    expect_error("ResourceNotFound", runtime.put_record, FeatureGroupName="nope",
                 Record=record(card_id="c1", event_time="2024-05-01T12:00:00Z"))
    expect_error("ResourceNotFound", runtime.get_record, FeatureGroupName="nope",
                 RecordIdentifierValueAsString="c1")
    expect_error("ResourceNotFound", control.describe_feature_group, FeatureGroupName="nope")
    expect_error("ValidationError", runtime.put_record, FeatureGroupName=name,
                 Record=record(card_id="c1", event_time="2024-05-01T13:00:00Z", color="red"))
    expect_error("ValidationError", runtime.put_record, FeatureGroupName=name,
                 Record=record(card_id="c1", event_time="2024-05-01T13:00:00Z", tx_count="x"))
    expect_error("ValidationError", runtime.put_record, FeatureGroupName=name,
                 Record=record(event_time="2024-05-01T13:00:00Z"))
    expect_error("ValidationError", runtime.put_record, FeatureGroupName=name,
                 Record=record(card_id="c1", event_time="noon"))
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1")
    assert as_dict(got["Record"])["tx_count"] == "4", got

    # DeleteRecord: an older delete is ignored; a soft delete hides the record and keeps
    # older puts out; a hard delete removes it.
    runtime.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1",
                          EventTime="2024-05-01T10:00:00Z")
    assert "Record" in runtime.get_record(FeatureGroupName=name,
                                          RecordIdentifierValueAsString="c1")
    runtime.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="c1",
                          EventTime="2024-05-01T14:00:00Z")
    assert "Record" not in runtime.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString="c1")
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c1", event_time="2024-05-01T13:00:00Z", tx_count=5))
    assert "Record" not in runtime.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString="c1")
    runtime.delete_record(FeatureGroupName=name, RecordIdentifierValueAsString="c2",
                          EventTime="2024-05-01T12:00:00Z", DeletionMode="HardDelete")
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="c2", event_time="2024-05-01T11:00:00Z", tx_count=8))
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="c2")
    assert as_dict(got["Record"])["tx_count"] == "8", got

    # TTL: a record expires TTL after its event time; ExpiresAt is reported when asked.
    now = time.time()
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="old", event_time="%.3f" % (now - 120)),
        TtlDuration={"Unit": "Minutes", "Value": 1})
    assert "Record" not in runtime.get_record(FeatureGroupName=name,
                                              RecordIdentifierValueAsString="old")
    runtime.put_record(FeatureGroupName=name, Record=record(
        card_id="new", event_time="%.3f" % now), TtlDuration={"Unit": "Days", "Value": 1})
    got = runtime.get_record(FeatureGroupName=name, RecordIdentifierValueAsString="new",
                             ExpirationTimeResponse="Enabled")
    assert got["Record"] and got["ExpiresAt"].endswith("Z"), got

    control.delete_feature_group(FeatureGroupName=name)
    expect_error("ResourceNotFound", control.describe_feature_group, FeatureGroupName=name)
    print("ok")


def check_guard(endpoint, token):
    """A store started with --auth-token TOKEN: refuses clients without it, accepts the
    token as the access key id, and keeps offline stores inside its folder (or on S3)."""
    from botocore.exceptions import ClientError

    control, runtime = clients(endpoint)
    features = [("id", "String"), ("t", "String"), ("v", "Fractional")]
    try:
        create_group(control, "guarded", "id", "t", features)
        raise AssertionError("a client without the token was served")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "UnrecognizedClientException", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 401, e.response
    os.environ["AWS_ACCESS_KEY_ID"] = token
    boto3.DEFAULT_SESSION = None  # the default session keeps the credentials it first found
    control, runtime = clients(endpoint)
    for outside in ["../../somewhere", "/tmp/elsewhere", "file:///etc/sluice"]:
        try:
            create_group(control, "escaping", "id", "t", features, offline_uri=outside)
            raise AssertionError(f"S3Uri {outside} was accepted")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ValidationException", e.response
            assert outside in e.response["Error"]["Message"], e.response
    create_group(control, "guarded", "id", "t", features, offline_uri="offline/guarded")
    runtime.put_record(FeatureGroupName="guarded",
                       Record=record(id="a", t="2026-12-01T00:00:00Z", v=1.5))
    got = runtime.get_record(FeatureGroupName="guarded", RecordIdentifierValueAsString="a")
    assert as_dict(got["Record"])["v"] == "1.5", got
    print("guarded")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["check-api", "check-guard", "create-group", "put", "get"])
    p.add_argument("--token")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--name")
    p.add_argument("--id")
    p.add_argument("--time")
    p.add_argument("--features", default="")
    p.add_argument("--offline-uri")
    p.add_argument("--glue")
    p.add_argument("--record", default="")
    p.add_argument("--ids", default="")
    a = p.parse_args()
    if a.command == "check-api":
        check_api(a.endpoint)
        return
    if a.command == "check-guard":
        check_guard(a.endpoint, a.token)
        return
    control, runtime = clients(a.endpoint)
    if a.command == "create-group":
        features = [tuple(f.split(":", 1)) for f in a.features.split(",") if f]
        create_group(control, a.name, a.id, a.time, features, offline_uri=a.offline_uri,
                     glue=a.glue)
    elif a.command == "put":
        values = dict(kv.split("=", 1) for kv in a.record.split(",") if kv)
        runtime.put_record(FeatureGroupName=a.name, Record=record(**values))
    elif a.command == "get":
        found = {}
        for i in [i for i in a.ids.split(",") if i]:
            got = runtime.get_record(FeatureGroupName=a.name, RecordIdentifierValueAsString=i)
            if "Record" in got:
                found[i] = as_dict(got["Record"])
        print(json.dumps(found, sort_keys=True))


if __name__ == "__main__":
    main()
