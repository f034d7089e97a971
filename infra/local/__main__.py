"""``make dev``: run the system on this machine with no AWS account and no Docker.

moto runs in server mode on loopback, the wiring's resources are provisioned into it,
and the wiring's routes are served by a local API Gateway that calls the same
handlers the Lambda functions run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

import boto3
from moto.server import ThreadedMotoServer

from infra.config import DeploymentConfig, function_environment
from infra.local.apigateway import LocalApiGateway
from infra.provision import create_table
from infra.wiring import FUNCTIONS

TABLE_NAME = "lead-nurture-local"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", 3000)))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args(argv)

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
    create_table(boto3.client("dynamodb"), TABLE_NAME)
    config = DeploymentConfig(cors_origins=[api_origin], redirect_origins=[api_origin])
    for spec in FUNCTIONS:
        # One process hosts every function, so their settings share one environment.
        os.environ.update(function_environment(spec, config, table_name=TABLE_NAME))

    gateway = LocalApiGateway(FUNCTIONS)
    server = gateway.serve(args.host, args.port)
    print(f"API         {api_origin}/{gateway.stage}  (POST /leads)", flush=True)
    print(f"AWS (moto)  {endpoint}", flush=True)
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
