"""``make dev``: run the system on this machine with no AWS account and no Docker.

moto runs in server mode on loopback, the wiring's resources are provisioned into it,
and the wiring's routes are served by a local API Gateway that calls the same
handlers the Lambda functions run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

import boto3
from moto.server import ThreadedMotoServer

from infra.config import DeploymentConfig, Resources, function_environment
from infra.local.apigateway import LocalApiGateway
from infra.provision import provision_all
from infra.wiring import FUNCTIONS

# Names the table and prefixes the queues and the topics.
PREFIX = "lead-nurture-local"
STAGE = "v1"
# Signs unsubscribe links locally (Secrets Manager on AWS); set SIGNING_SECRET to override.
LOCAL_SIGNING_SECRET = "local-development-signing-secret-0123456789"  # noqa: S105


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", 3000)))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log

    moto = ThreadedMotoServer(ip_address=args.host, port=args.moto_port, verbose=False)
    moto.start()
    endpoint = f"http://{args.host}:{args.moto_port}"
    api_origin = f"http://{args.host}:{args.port}"
    # The handlers create their clients from the environment, as on Lambda.
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION="ap-northeast-1",
    )
    config = DeploymentConfig(cors_origins=[api_origin], redirect_origins=[api_origin])
    provisioned = provision_all(
        boto3.session.Session(), prefix=PREFIX, from_domain=config.sender.from_domain
    )
    resources = Resources(
        table_name=provisioned.table_name,
        api_url=f"{api_origin}/{STAGE}/",
        configuration_set=provisioned.configuration_set,
        queue_urls=provisioned.queue_urls,
        topic_arns=provisioned.topic_arns,
        signing_secret=os.environ.get("SIGNING_SECRET") or LOCAL_SIGNING_SECRET,
    )
    for spec in FUNCTIONS:
        # One process hosts every function, so their settings share one environment.
        os.environ.update(function_environment(spec, config, resources))

    gateway = LocalApiGateway(FUNCTIONS, stage=STAGE)
    server = gateway.serve(args.host, args.port)
    routes = ", ".join(f"{r.method} {r.path}" for spec in FUNCTIONS for r in spec.routes)
    print(f"API         {api_origin}/{gateway.stage}  ({routes})", flush=True)
    print(f"AWS (moto)  {endpoint}", flush=True)
    print(
        f"Sales inbox {provisioned.sales_inbox_url}  (SQS, what the sales topic sends)", flush=True
    )
    print("Ctrl-C stops.", flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    moto.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
