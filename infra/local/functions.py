"""The wiring's functions, built once on the local stack's clock, invoked as Lambda would."""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from infra.wiring import FunctionSpec
from shared.domain.clock import Clock

# event, context -> what the function returns (a proxy response, batchItemFailures, ...)
Handler = Callable[[dict[str, Any], Any], Any]
REGION = "ap-northeast-1"
ACCOUNT = "123456789012"


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str, memory_mb: int = 512, timeout_s: int = 30) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    @classmethod
    def of(cls, spec: FunctionSpec) -> LambdaContext:
        return cls(spec.name, spec.memory_mb, spec.timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def build_handlers(specs: Iterable[FunctionSpec], clock: Clock) -> dict[str, Handler]:
    """Each function's ``lambda_handler`` bound to the app its module builds on ``clock``.

    Built once, as a Lambda container builds its app once, so the clients are reused.
    The functions' settings are read from the environment here (set it first).
    """
    handlers: dict[str, Handler] = {}
    for spec in specs:
        module_name, _, attribute = spec.handler.rpartition(".")
        module = importlib.import_module(module_name)
        handlers[spec.name] = partial(getattr(module, attribute), app=module.build(clock))
    return handlers


def invoke(spec: FunctionSpec, handlers: Mapping[str, Handler], event: dict[str, Any]) -> Any:
    return handlers[spec.name](event, LambdaContext.of(spec))
