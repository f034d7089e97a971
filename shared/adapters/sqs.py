"""Send jobs on SQS, in batches of ten (the SendMessageBatch maximum); dead letters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from shared.domain.jobs import SendJob

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

BATCH = 10


class QueueError(Exception):
    pass


class SqsJobQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def enqueue(self, jobs: Sequence[SendJob]) -> None:
        for start in range(0, len(jobs), BATCH):
            chunk = jobs[start : start + BATCH]
            response = self._client.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "MessageBody": job.to_json()} for i, job in enumerate(chunk)
                ],
            )
            failed = response.get("Failed", [])
            if failed:
                # The leases of these leads run out and the next tick queues them again.
                raise QueueError(
                    f"{len(failed)} send jobs were not queued: {failed[0].get('Code')}"
                )


class SqsDeadLetters:
    """A consumer's dead-letter queue, for the records it can never process.

    Its client is made on the first record put there (rare), not at a cold start.
    """

    def __init__(self, client: Callable[[], SQSClient], queue_url: str) -> None:
        self._make_client = client
        self._client: SQSClient | None = None
        self._lock = threading.Lock()
        self._url = queue_url

    def put(self, body: str, attributes: Mapping[str, str]) -> None:
        self._sqs().send_message(
            QueueUrl=self._url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
                if value  # SQS refuses an empty attribute value
            },
        )

    def _sqs(self) -> SQSClient:
        with self._lock:  # a batch's records may run on several threads
            if self._client is None:
                self._client = self._make_client()
            return self._client
