"""``python -m sandbox [--host 127.0.0.1] [--port 9100]``: serve every fake provider on one port.

Prints the environment to point the services at it, under a banner that says what it is.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from .app import BANNER, create_app
from .control import env_for
from .core import SandboxState
from .testing import DUMMY_KEYS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=BANNER)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--no-keys", action="store_true", help="do not print dummy API keys")
    args = parser.parse_args(argv)
    base = f"http://{args.host}:{args.port}"
    state = SandboxState(base_url=base)
    app = create_app(state)
    line = "!" * 100
    print(line)
    print(f"!!  {BANNER}")
    print(f"!!  serving on {base}   control API: {base}/_sandbox   (see sandbox/README.md)")
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
