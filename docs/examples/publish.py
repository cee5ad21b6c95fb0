#!/usr/bin/env python3
"""Announce a file to ingestd and wait for its result (docs/uploaders.md).

    publish.py --brokers HOST:9092 --dataset ice_leads /var/lib/ingestd/inbox/leads.csv

Publishes a file.arrived event (schemas/file.arrived.schema.json) to the files topic, keyed by
the dataset, then reads the results topic until the result with the same event_id arrives and
prints it. Exit codes as `ingestd submit --wait`: 0 completed (or dry_run, duplicate), 1 failed,
3 completed with rejects, 4 no result within --timeout.

Needs python3-confluent-kafka (Debian). The file must be readable by the daemon, inside its
files.allowed_roots.
"""
import argparse
import hashlib
import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition


def file_event(path, dataset, dry_run):
    """The event: sha256 and size let the daemon refuse a file that changed after it was announced."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"event_id": str(uuid.uuid4()), "type": "file.arrived", "dataset": dataset,
            "uri": "file://" + os.path.abspath(path), "sha256": digest.hexdigest(),
            "size_bytes": os.path.getsize(path), "submitted_by": "publish.py", "dry_run": dry_run}


def results_at_end(brokers, topic):
    """A consumer of the results topic at its current end, made BEFORE publishing, so the result
    cannot arrive unseen and no older result is read. No group offsets are committed."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "publish-py-" + str(uuid.uuid4()),
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in partitions]
    consumer.assign(ends)
    return consumer


def wait_for_result(consumer, event_id, timeout):
    """The result whose event_id is ours; results of other events are skipped."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        try:
            result = json.loads(msg.value())
        except ValueError:
            continue
        if isinstance(result, dict) and result.get("event_id") == event_id:
            return result
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--brokers", default="localhost:9092")
    ap.add_argument("--topic", default="ingest.files")
    ap.add_argument("--results-topic", default="ingest.results")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()

    event = file_event(args.file, args.dataset, args.dry_run)
    consumer = results_at_end(args.brokers, args.results_topic)
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
    producer.produce(args.topic, key=args.dataset, value=json.dumps(event))
    if producer.flush(30) != 0:
        sys.exit("publish.py: the event was not delivered within 30s")
    print(f"published {event['event_id']}; waiting for its result", file=sys.stderr)
    result = wait_for_result(consumer, event["event_id"], args.timeout)
    consumer.close()
    if result is None:
        print(f"publish.py: no result for {event['event_id']} within {args.timeout}s", file=sys.stderr)
        return 4
    print(json.dumps(result, indent=2))
    return {"failed": 1, "completed_with_rejects": 3}.get(result.get("status"), 0)


if __name__ == "__main__":
    sys.exit(main())
