"""``tilannekuva worker``: the Faust worker of ``streams/app.py``, its topics declared
before it starts."""

from __future__ import annotations

import faust

from sinks.metrics import GC_SECONDS
from streams.app import create_app
from tilannekuva.config import Settings, one_blas_thread
from tilannekuva.topics import declare_worker_topics


def add_arguments(parser) -> None:
    parser.add_argument("--loglevel", default="WARNING", help="Faust log level (default WARNING)")
    parser.add_argument(
        "--web-port", type=int, default=6066, help="port of /metrics (default 6066)"
    )
    parser.add_argument(
        "--web-bind", default="127.0.0.1", help="address of /metrics (0.0.0.0 in a container)"
    )


def run(args, settings: Settings) -> int:
    one_blas_thread()
    GC_SECONDS.install()
    app = create_app(
        settings, web_bind=args.web_bind, web_port=args.web_port, loglevel=args.loglevel
    )
    declare_worker_topics(app, settings)
    faust.Worker(app, loglevel=args.loglevel).execute_from_commandline()
    return 0
