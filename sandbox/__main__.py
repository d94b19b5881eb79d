"""``python -m sandbox [--host 127.0.0.1] [--port 9100] [--stripe-forward-to URL]``: serve every
fake provider on one port.

Prints the environment to point the services at it, under a banner that says what it is.
``--stripe-forward-to URL`` (repeatable; or ``SANDBOX_STRIPE_FORWARD_TO``, comma-separated) is the
sandbox's ``stripe listen --forward-to``: every Stripe event is POSTed there, signed with
``--stripe-webhook-secret`` (default: ``STRIPE_WEBHOOK_SECRET`` from the environment, else the
sandbox's default secret). The local fleet (Procfile.dev) forwards to Payment's ``/webhook``.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from .app import BANNER, create_app
from .control import env_for
from .core import SandboxState
from .stripe_api import DEFAULT_WEBHOOK_SECRET, forward_to
from .testing import DUMMY_KEYS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=BANNER)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--no-keys", action="store_true", help="do not print dummy API keys")
    parser.add_argument(
        "--stripe-forward-to",
        action="append",
        metavar="URL",
        help="POST every Stripe event there, signed (like `stripe listen --forward-to`)",
    )
    parser.add_argument(
        "--stripe-webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_WEBHOOK_SECRET,
        help="the signing secret for --stripe-forward-to (default: $STRIPE_WEBHOOK_SECRET)",
    )
    args = parser.parse_args(argv)
    forwards = args.stripe_forward_to or [
        u.strip() for u in os.environ.get("SANDBOX_STRIPE_FORWARD_TO", "").split(",") if u.strip()
    ]
    base = f"http://{args.host}:{args.port}"
    state = SandboxState(base_url=base)
    app = create_app(state)
    for url in forwards:
        forward_to(state, url, args.stripe_webhook_secret)
    line = "!" * 100
    print(line)
    print(f"!!  {BANNER}")
    print(f"!!  serving on {base}   control API: {base}/_sandbox   (see sandbox/README.md)")
    for url in forwards:
        print(f"!!  Stripe events are forwarded to {url}")
    print(line)
    env = env_for(base)
    if not args.no_keys:
        env.update(DUMMY_KEYS)
    for k, v in env.items():
        print(f"{k}={v}")
    print(line, flush=True)
    sys.stdout.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
