"""Read back what the trackers wrote, with each tool's own reader (W&B: its record protobuf)."""

from __future__ import annotations

from pathlib import Path


def tensorboard_scalars(logdir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def mlflow_history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    return sorted((m.step, m.value) for m in MlflowClient(tracking_uri).get_metric_history(run_id, key))


def wandb_history(run_file: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in an offline run's .wandb file: W&B's log of Record protobufs
    (a 7-byte ':W&B' header, then LevelDB-log framing: 32 KiB blocks, 7-byte chunk headers)."""
    import json

    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", run_file
    pos, block, pending, found = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.HasField("history"):
                items = {"/".join(i.nested_key) or i.key: i.value_json for i in record.history.item}
                if key in items:
                    found.append((record.history.step.num, json.loads(items[key])))
    return found
