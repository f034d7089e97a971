"""What one anonymous page view costs in DynamoDB, next to the raw floor of one PutItem.

Runs the visits function's handler (``POST /visits``) against moto in-process and counts,
per anonymous page view, the DynamoDB calls, the reads, the writes and the write
capacity units (WCU: 1 per started KB of the item written, as DynamoDB bills a
standard-table PutItem), then the same for one plain PutItem of the same item, and the
time per view of each. A repeat of the same beacon is counted as well.

Run: ``make bench-visits`` (or ``python -m bench.visits --views 500``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "ap-northeast-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")  # moto accepts any

TABLE = "bench-visits"
SITE = "https://www.example.co.jp"
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class Meter:
    """Counts DynamoDB calls and the WCU of the items they write (botocore hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.wcu = 0
        client.meta.events.register("provide-client-params.dynamodb.*", self._seen)

    def _seen(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "PutItem":
            size = len(json.dumps(params["Item"]).encode())
            self.wcu += max(1, math.ceil(size / 1024))

    def reset(self) -> None:
        self.calls.clear()
        self.wcu = 0


def beacon(visitor: str, view: str) -> dict[str, Any]:
    from tests.events import rest_event

    body = {
        "kind": "view",
        "visitor_id": visitor,
        "view_id": view,
        "url": f"{SITE}/pricing",
        "title": "料金プラン | Flowlane",
        "referrer": "https://www.google.com/",
        "seconds": 42,
    }
    return rest_event(
        "POST", "/visits", body=json.dumps(body, ensure_ascii=False),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE},
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--views", type=int, default=300)
    args = parser.parse_args()

    import boto3
    from moto import mock_aws

    from functions.visits.handler import build_app, dependencies
    from functions.visits.handler import lambda_handler as handler
    from infra.provision import create_table
    from shared.adapters.visits import visitor_pk
    from shared.domain.clock import FixedClock

    os.environ.update(
        TABLE_NAME=TABLE,
        CORS_ORIGINS=SITE,
        SIGNING_SECRET="bench-secret-16-bytes!",  # noqa: S106 - a throwaway key for moto
    )

    class Context:
        function_name = "visits"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:ap-northeast-1:123456789012:function:visits"
        aws_request_id = "bench"

    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        deps = dependencies(FixedClock(datetime(2026, 11, 23, 1, tzinfo=UTC)))
        app = build_app(deps)
        meter = Meter(deps.tracker._store._client)  # type: ignore[attr-defined]

        events = [beacon(uuid.uuid4().hex, uuid.uuid4().hex) for _ in range(args.views)]
        started = time.perf_counter()
        for event in events:
            assert handler(event, Context(), app)["statusCode"] == 204
        snippet_s = time.perf_counter() - started
        views = dict(meter.calls)
        views_wcu = meter.wcu

        meter.reset()
        for event in events[:50]:  # the browser sending the same beacon again
            handler(event, Context(), app)
        repeats = {k: v / 50 for k, v in meter.calls.items()}

        raw = boto3.client("dynamodb")
        raw_meter = Meter(raw)
        started = time.perf_counter()
        for _ in range(args.views):
            item = {
                "pk": {"S": visitor_pk(uuid.uuid4().hex)},
                "sk": {"S": f"VISIT#{uuid.uuid4().hex}"},
                "url": {"S": f"{SITE}/pricing"},
                "title": {"S": "料金プラン | Flowlane"},
                "seconds": {"N": "42"},
                "at": {"S": "2026-11-23T01:00:00.000000Z"},
                "expires_at": {"N": "1797900000"},
            }
            raw.put_item(TableName=TABLE, Item=item)
        raw_s = time.perf_counter() - started

    n = args.views
    writes = sum(v for k, v in views.items() if k in WRITES)
    reads = sum(v for k, v in views.items() if k not in WRITES)
    print(f"anonymous page views: {n} through POST /visits (moto in-process)")
    print(
        f"  per view: {sum(views.values()) / n:.2f} DynamoDB calls "
        f"({reads / n:.2f} read: GetItems of the visitor's link, before and after; "
        f"{writes / n:.2f} write: "
        f"PutItem of the VISIT# item), {views_wcu / n:.2f} WCU, "
        f"{snippet_s / n * 1000:.2f} ms"
    )
    print(f"  a repeated beacon: {repeats} calls per view (its conditional Put is refused)")
    print(
        f"raw floor: 1 PutItem per view, {raw_meter.wcu / n:.2f} WCU, "
        f"{raw_s / n * 1000:.2f} ms per view"
    )
    print(f"ratio: {(snippet_s / n) / (raw_s / n):.2f}x the floor's time; writes 1 : 1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
