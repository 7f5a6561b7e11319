"""Parses a metrics text with the prometheus-client package's OpenMetrics parser (strict:
it rejects what Prometheus would reject) and prints its samples as JSON:
[[name, {label: value}, value], ...]."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
samples = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples.append([s.name, dict(s.labels), s.value])
print(json.dumps(samples))
