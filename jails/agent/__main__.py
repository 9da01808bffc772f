"""`python -m jails.agent`: the jailadmin host agent's command line (DESIGN.md, 3a).

One program, three ways in: `--stdio` (an SSH forced command; what systemd's Accept=yes
socket activation runs per connection) and `--listen unix:PATH` (hosts without systemd).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from jails.fail2ban import DEFAULT_SOCKET

from . import AGENT_NAME, AGENT_VERSION
from .operations import HostConfig

# What ServerLimits() holds (jails.agent.server), repeated so that --help and --version
# import no asyncio; tests/agent/test_agent_protocol.py checks that they agree.
DEFAULT_FRAME_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_WORKERS = 4


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _mode(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text}") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"not a file mode: {text}")
    return value


def _listen_address(text: str) -> str:
    if not text.startswith("unix:") or len(text) <= len("unix:"):
        raise argparse.ArgumentTypeError("the address must be unix:/path/to/agent.sock")
    return text[len("unix:") :]


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jails.agent",
        description="The jailadmin host agent: allow-listed fail2ban operations over JSON.",
    )
    parser.add_argument("--version", action="version", version=f"{AGENT_NAME} {AGENT_VERSION}")
    way = parser.add_mutually_exclusive_group(required=True)
    way.add_argument("--stdio", action="store_true", help="serve one connection on stdin/stdout")
    way.add_argument("--listen", type=_listen_address, metavar="unix:PATH", help="listen there")
    parser.add_argument("--group", help="the listening socket's group (--listen)")
    parser.add_argument("--mode", type=_mode, default=0o660, help="its mode (default 0660)")
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="fail2ban's socket")
    parser.add_argument("--timeout", type=_positive, default=5.0, help="fail2ban's timeout (s)")
    parser.add_argument("--config-dir", default="/etc/fail2ban", help="fail2ban's configuration")
    parser.add_argument(
        "--fail2ban-client",
        default="fail2ban-client",
        help="how to run fail2ban-client (for reload), split like a shell would",
    )
    parser.add_argument("--reload-timeout", type=_positive, default=120.0)
    parser.add_argument(
        "--fail2ban-regex",
        default="",
        help="how to run fail2ban-regex (the filter tester); default: next to fail2ban-client",
    )
    parser.add_argument("--regex-timeout", type=_positive, default=30.0)
    parser.add_argument(
        "--no-config-writes",
        action="store_true",
        help="refuse the configuration editor's writes (reading and testing still work)",
    )
    parser.add_argument(
        "--frame-timeout",
        type=_positive,
        default=DEFAULT_FRAME_TIMEOUT,
        help="seconds a started request frame (or a new connection's hello) may take",
    )
    parser.add_argument("--idle-timeout", type=_positive, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = parser_build().parse_args(argv)
    # asyncio imports ssl whenever it can: libssl and libcrypto, about 4.5 MB resident of an
    # agent that measures 17 MB idle. The agent never speaks TLS (a Unix socket or stdio;
    # SSH does the remote crypto), so it is kept out before asyncio is first imported.
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    import asyncio

    from .server import Agent, ServerLimits, serve_listen, serve_stdio

    # stderr only: in --stdio mode stdout is the protocol stream.
    logging.basicConfig(stream=sys.stderr, level=options.log_level, format="%(message)s")
    config = HostConfig(
        socket=options.socket,
        timeout=options.timeout,
        config_dir=options.config_dir,
        fail2ban_client=tuple(shlex.split(options.fail2ban_client)),
        reload_timeout=options.reload_timeout,
        fail2ban_regex=tuple(shlex.split(options.fail2ban_regex)),
        regex_timeout=options.regex_timeout,
        config_writes=not options.no_config_writes,
    )
    defaults = ServerLimits()
    limits = ServerLimits(
        frame_timeout=options.frame_timeout,
        idle_timeout=options.idle_timeout,
        write_timeout=max(defaults.write_timeout, options.frame_timeout),
        max_connections=max(1, options.max_connections),
        workers=max(1, options.workers),
    )
    agent = Agent.build(config)
    if options.stdio:
        asyncio.run(serve_stdio(agent, limits))
    else:
        asyncio.run(
            serve_listen(agent, limits, path=options.listen, group=options.group, mode=options.mode)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
