"""How each kind of path is delivered, and retried as AWS or its caller retries it.

``attempt`` delivers once and says whether anything is left to retry; calling it again
is the retry:

- an HTTP request (a browser posting a form again, an operator repeating an admin
  call) is sent again when its answer was a 5xx or the invocation failed;
- an SQS batch comes back with the records the function reported failed, or all of
  them when the invocation failed (Powertools fails it when every record failed), once
  the queue's visibility timeout has passed (the clock moves on by it);
- a stream batch is retried from the first record reported failed, or whole when the
  invocation failed;
- a scheduled invocation that failed is invoked again (Lambda's asynchronous retry);
- the CLI is run again with the same arguments when it stopped on an AWS error.
"""

from __future__ import annotations

import copy
import importlib
import uuid
from contextlib import chdir
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

from infra.local.runtime import reported_failures
from infra.wiring import FunctionSpec
from tests.faults.system import System


class Trigger(Protocol):
    def attempt(self, system: System) -> bool:
        """Deliver once; True when nothing is left to retry."""
        ...


@dataclass
class HttpRequest:
    spec: FunctionSpec
    event: dict[str, Any]

    def attempt(self, system: System) -> bool:
        event = copy.deepcopy(self.event)
        # Each request, a repeated one too, is a new request to API Gateway.
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        try:
            response = system.invoke(self.spec, event)
        except Exception:
            return False  # API Gateway answers 502
        return int(response["statusCode"]) < 500


@dataclass
class SqsBatch:
    spec: FunctionSpec  # consumes its queue
    records: list[dict[str, Any]]
    received: bool = False  # received from the queue: handled messages are deleted
    attempts: int = 0

    def attempt(self, system: System) -> bool:
        queue = self.spec.consumes
        assert queue is not None, f"{self.spec.name} consumes no queue"
        if self.attempts:
            # SQS redelivers what was not deleted once its visibility timeout is over.
            system.clock.advance(timedelta(seconds=queue.visibility_timeout_s))
        self.attempts += 1
        failed = _failed(system, self.spec, self.records, [r["messageId"] for r in self.records])
        done = [r for r in self.records if failed is not None and r["messageId"] not in failed]
        if self.received:
            system.delete(queue.name, done)
        self.records = [_received_again(r) for r in self.records if r not in done]
        return not self.records


@dataclass
class StreamBatch:
    spec: FunctionSpec
    records: list[dict[str, Any]]

    def attempt(self, system: System) -> bool:
        sequence = [str(r["dynamodb"]["SequenceNumber"]) for r in self.records]
        failed = _failed(system, self.spec, self.records, sequence)
        if failed is None:
            return False
        first = next((i for i, number in enumerate(sequence) if number in failed), None)
        self.records = [] if first is None else self.records[first:]
        return not self.records


@dataclass
class ScheduledTick:
    def attempt(self, system: System) -> bool:
        try:
            system.tick()
        except Exception:
            return False
        return True


@dataclass
class CliRun:
    """``lead-nurture <argv>`` with the functions' (faulted) client, on the run's clock."""

    argv: list[str]
    workdir: Path

    def attempt(self, system: System) -> bool:
        cli = importlib.import_module("infra.cli.main")  # the package exports main()
        client = system.function_client("dynamodb")
        with (
            mock.patch.object(cli, "dynamodb", return_value=client),
            mock.patch.object(cli, "SystemClock", return_value=system.clock),
            chdir(self.workdir),  # no cdk.json here: the deployment defaults
        ):
            try:
                status: int = cli.main(self.argv)
            except Exception:
                return False
        return status != 2  # 2: stopped on an AWS error (1: rows rejected, all done)


def _failed(
    system: System, spec: FunctionSpec, records: list[dict[str, Any]], identifiers: list[str]
) -> set[str] | None:
    """The records the function reported failed; None when the invocation failed."""
    try:
        result = system.invoke(spec, {"Records": copy.deepcopy(records)})
    except Exception:
        return None
    return reported_failures(result, identifiers)


def _received_again(record: dict[str, Any]) -> dict[str, Any]:
    again = copy.deepcopy(record)
    attributes = again.setdefault("attributes", {})
    count = int(attributes.get("ApproximateReceiveCount", "1"))
    attributes["ApproximateReceiveCount"] = str(count + 1)
    return again
