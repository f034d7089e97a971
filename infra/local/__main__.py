"""``make dev``: run the system on this machine with no AWS account and no Docker.

moto runs in server mode on loopback and the wiring's resources are provisioned into
it. Every function is built once on one movable clock and runs as on Lambda: routes
through a local API Gateway, schedules on timers, queues and the table's stream
through pollers (``infra/local/runtime.py``). ``/_local/...`` moves the clock and runs
the schedules at once (``infra/local/control.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import boto3

from infra.config import DeploymentConfig, Resources, function_environment
from infra.local import moto_fixes, state
from infra.local.apigateway import LocalApiGateway
from infra.local.console import PREFIX as CONSOLE_PREFIX
from infra.local.console import ConsoleConfig, LocalConsole
from infra.local.console.mail import InProcessOutbox
from infra.local.control import PREFIX as CONTROL_PREFIX
from infra.local.control import (
    Answer,
    LocalControl,
    own_hosts,
    refuse_foreign,
    refuse_foreign_host,
)
from infra.local.functions import REGION, build_handlers
from infra.local.moto_server import LocalMotoServer
from infra.local.runtime import MINUTE_S, LocalRuntime, Triggers
from infra.provision import provision_all
from infra.wiring import FUNCTIONS, TABLE
from shared.adapters.items import deserialize
from shared.domain.clock import OffsetClock, to_iso
from shared.domain.leads import Lead

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
# Names the table and prefixes the queues and the topics.
PREFIX = "lead-nurture-local"
STAGE = "v1"
# Signs unsubscribe links locally (Secrets Manager on AWS); set SIGNING_SECRET to override.
LOCAL_SIGNING_SECRET = "local-development-signing-secret-0123456789"  # noqa: S105


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", 3000)))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=MINUTE_S,
        help="seconds of wall time per scheduled minute (default 60: the wiring's rates)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="keep the table, sent mail, queued messages and the clock in DIR (saved on stop)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="with --state: start empty, ignoring what DIR holds (overwritten on stop)",
    )
    args = parser.parse_args(argv)
    if args.tick_seconds <= 0:
        parser.error("--tick-seconds must be positive")
    return args


# How often (in stack minutes) expired items are deleted between ticks, as DynamoDB's TTL
# does within hours.
TTL_SWEEP_MINUTES = 60


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log
    logging.getLogger("botocore").setLevel(logging.WARNING)

    moto = LocalMotoServer(args.host, args.moto_port, own_hosts(args.host, args.moto_port))
    moto.start()
    endpoint = f"http://{args.host}:{args.moto_port}"
    api_origin = f"http://{args.host}:{args.port}"
    # The handlers create their clients from the environment, as on Lambda.
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION=REGION,
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    # The deployment's own settings (sender, lifecycle, consent, caps), served from here.
    deployed = DeploymentConfig.from_cdk_json(CDK_JSON)
    config = deployed.model_copy(
        update={
            "cors_origins": [*deployed.cors_origins, api_origin],
            "redirect_origins": [*deployed.redirect_origins, api_origin],
            "public_api_url": None,
        }
    )
    session = boto3.session.Session()
    provisioned = provision_all(session, prefix=PREFIX, from_domain=config.sender.from_domain)
    resources = Resources(
        table_name=provisioned.table_name,
        api_url=f"{api_origin}/{STAGE}/",
        configuration_set=provisioned.configuration_set,
        queue_urls=provisioned.queue_urls,
        dead_letter_queue_urls=provisioned.dead_letter_queue_urls,
        stream_failure_queue_urls=provisioned.stream_failure_queue_urls,
        topic_arns=provisioned.topic_arns,
        signing_secret=os.environ.get("SIGNING_SECRET") or LOCAL_SIGNING_SECRET,
    )
    for spec in FUNCTIONS:
        # One process hosts every function, so their settings share one environment.
        os.environ.update(function_environment(spec, config, resources))

    dynamodb = session.client("dynamodb")
    offset = None
    if args.state and not args.reset:
        offset = state.load(args.state, session, provisioned)
    clock = OffsetClock(offset) if offset is not None else OffsetClock()
    moto_fixes.SENT_EMAILS.clock = clock.now  # emails are sent at the stack's time
    handlers = build_handlers(FUNCTIONS, clock)
    runtime = LocalRuntime(
        FUNCTIONS,
        handlers,
        clock,
        Triggers(
            queue_urls=provisioned.queue_urls,
            table_name=provisioned.table_name,
            stream_failure_queue_urls=provisioned.stream_failure_queue_urls,
        ),
        sqs=session.client("sqs"),
        dynamodb=dynamodb,
        streams=session.client("dynamodbstreams"),
        minute_s=args.tick_seconds,
    )
    about = {
        "api": f"{api_origin}/{STAGE}",
        "moto": endpoint,
        "table": provisioned.table_name,
        "queue_urls": provisioned.queue_urls,
        "dead_letter_queue_urls": provisioned.dead_letter_queue_urls,
        "stream_failure_queue_urls": provisioned.stream_failure_queue_urls,
        "sales_inbox_url": provisioned.sales_inbox_url,
        "topic_arns": provisioned.topic_arns,  # the SES email-events topic among them
        "configuration_set": provisioned.configuration_set,
    }
    outbox = InProcessOutbox(REGION)
    stop = threading.Event()

    def tick() -> dict[str, Any]:
        """The schedules, then DynamoDB's TTL (moto keeps expired items for ever)."""
        results = runtime.tick()
        state.expire_items(provisioned.table_name, REGION, clock.now(), TABLE.ttl_attribute)
        return results

    def expire_now_and_then() -> None:
        while not stop.wait(TTL_SWEEP_MINUTES * args.tick_seconds):
            state.expire_items(provisioned.table_name, REGION, clock.now(), TABLE.ttl_attribute)

    console = LocalConsole(
        ConsoleConfig(
            origin=api_origin,
            api=f"{api_origin}/{STAGE}",
            moto=endpoint,
            table_name=provisioned.table_name,
            email_events_topic_arn=provisioned.email_events_topic_arn,
            sales_inbox_url=provisioned.sales_inbox_url,
            configuration_set=provisioned.configuration_set,
        ),
        clock,
        session,
        tick=tick,
        outbox=outbox,
        sent_info=outbox.info,
        profiles=lambda: [
            Lead.model_validate(deserialize(item))
            for item in state.moto_lead_profiles(provisioned.table_name, REGION)
        ],
    )
    control = LocalControl(clock, tick, about, outbox, console.send_info)

    hosts = own_hosts(args.host, args.port)

    def local_paths(
        method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Answer | None:
        if not urlsplit(target).path.startswith((CONTROL_PREFIX, CONSOLE_PREFIX)):
            # The API stage: any site may post its forms (CORS), under our names only.
            return refuse_foreign_host(headers, hosts)
        return (
            refuse_foreign(method, headers, hosts)
            or control(method, target, body)
            or console(method, target, body)
        )

    keys = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}  # IAM routes
    gateway = LocalApiGateway(FUNCTIONS, handlers, stage=STAGE, clock=clock, credentials=keys)
    server = gateway.serve(args.host, args.port, local_paths)
    runtime.start()
    threading.Thread(target=expire_now_and_then, name="ttl", daemon=True).start()

    routes = ", ".join(f"{r.method} {r.path}" for spec in FUNCTIONS for r in spec.routes)
    schedules = ", ".join(
        f"{s.name} every {s.schedule_minutes * args.tick_seconds:g}s"
        for s in runtime.scheduled
        if s.schedule_minutes
    )
    lines = [
        f"API         {api_origin}/{gateway.stage}  ({routes})",
        f"AWS (moto)  {endpoint}  (state: {endpoint}/moto-api/data.json)",
        f"Console     {api_origin}/console/  (site forms, outbox, leads, sales inbox, funnel)",
        f"Sales inbox {provisioned.sales_inbox_url}  (SQS, what the sales topic sends)",
        f"Clock       {to_iso(clock.now())}  GET {api_origin}/_local/clock, "
        f'POST {api_origin}/_local/clock/advance {{"by": "P1D"}}',
        f"Schedules   {schedules}  POST {api_origin}/_local/tick runs them now",
        f"State       {args.state or 'this run only'}",
        "Ctrl-C stops.",
    ]
    print("\n".join(lines), flush=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    runtime.stop()
    if args.state:
        saved = state.save(args.state, session, provisioned, clock.offset)
        print(f"saved {saved} and the clock to {args.state}", flush=True)
    moto.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is saved and stopped: skip the interpreter's teardown, which frees a long
    # run's moto state object by object and can take seconds.
    os._exit(code)
