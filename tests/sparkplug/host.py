#!/usr/bin/env python3
"""A Sparkplug B host for tests/sparkplug.rs, built on pysparkplug (an independent decoder).

Prints one JSON line per message under spBv1.0/# (decoded by pysparkplug, aliases resolved with
the births it saw), and reads JSON lines on stdin: {"op":"ncmd"|"dcmd"|"state"|"raw", ...}.
"""
import argparse
import json
import sys
import threading
import uuid

import paho.mqtt.client as mqtt
import pysparkplug as spb
from pysparkplug import _protobuf as pb

births = {}


def out(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def metric_json(m):
    return {
        "name": m.name,
        "alias": m.alias,
        "datatype": m.datatype.name,
        "value": m.value,
        "is_null": m.is_null,
    }


def on_message(_client, _userdata, msg):
    line = {"topic": msg.topic, "qos": msg.qos, "retain": bool(msg.retain)}
    try:
        topic = spb.Topic.from_str(msg.topic)
        kind = topic.message_type
        line["type"] = str(kind.name if hasattr(kind, "name") else kind)
        if line["type"] == "STATE":
            state = spb.State.decode(msg.payload)
            line.update(online=state.online, timestamp=state.timestamp)
            out(line)
            return
        raw = pb.Payload.FromString(msg.payload)
        line["has_seq"] = raw.HasField("seq")
        line["device"] = topic.device_id
        key = (topic.group_id, topic.edge_node_id, topic.device_id)
        payload = kind.payload.decode(msg.payload, birth=births.get(key))
        if line["type"] in ("NBIRTH", "DBIRTH"):
            births[key] = payload
        if line["type"] == "NDEATH":
            line["metrics"] = [metric_json(payload.bd_seq_metric)]
            line["metric_count"] = len(raw.metrics)
        else:
            line["metrics"] = [metric_json(m) for m in getattr(payload, "metrics", ())]
        if hasattr(payload, "seq"):
            line["seq"] = payload.seq
        line["timestamp"] = payload.timestamp
    except Exception as e:  # a payload pysparkplug cannot read is a test failure, reported
        line["decode_error"] = repr(e)
    out(line)


def metrics(items):
    result = []
    for m in items:
        result.append(
            spb.Metric(
                timestamp=spb.get_current_timestamp(),
                name=m.get("name"),
                alias=m.get("alias"),
                datatype=spb.DataType[m["datatype"]],
                value=m["value"],
            )
        )
    return tuple(result)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    # With a user, the id must be bound to it (`<user>-<suffix>`, see README Security).
    prefix = f"{args.user}-" if args.user else ""
    client = mqtt.Client(client_id=f"{prefix}spb-host-{uuid.uuid4().hex[:8]}", clean_session=True)
    if args.user:
        client.username_pw_set(args.user, args.password)
    ready = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.on_connect = lambda c, *_: c.subscribe("spBv1.0/#", qos=1)
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    ready.wait(30)
    out({"ready": True})
    for text in sys.stdin:
        cmd = json.loads(text)
        op = cmd["op"]
        now = spb.get_current_timestamp()
        if op == "ncmd":
            topic = f"spBv1.0/{cmd['group']}/NCMD/{cmd['node']}"
            body = spb.NCmd(timestamp=now, metrics=metrics(cmd["metrics"])).encode(include_dtypes=True)
            client.publish(topic, body, qos=0).wait_for_publish()
        elif op == "dcmd":
            topic = f"spBv1.0/{cmd['group']}/DCMD/{cmd['node']}/{cmd['device']}"
            body = spb.DCmd(timestamp=now, metrics=metrics(cmd["metrics"])).encode(include_dtypes=True)
            client.publish(topic, body, qos=0).wait_for_publish()
        elif op == "state":
            body = spb.State(timestamp=now, online=cmd["online"]).encode()
            client.publish(f"spBv1.0/STATE/{cmd['host']}", body, qos=1, retain=True).wait_for_publish()
        elif op == "raw":
            retain = bool(cmd.get("retain"))
            client.publish(cmd["topic"], bytes.fromhex(cmd["hex"]), qos=1 if retain else 0, retain=retain).wait_for_publish()
        out({"sent": op})
    client.loop_stop()


if __name__ == "__main__":
    main()
