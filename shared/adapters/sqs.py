"""Send jobs on SQS, in batches of ten (the SendMessageBatch maximum)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.jobs import SendJob

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
