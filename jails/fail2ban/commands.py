"""The allow-list: the only command shapes the client will ever send.

Each argument is checked against the slot it fills: jail names by pattern, addresses
by :mod:`ipaddress` (and must already be in canonical form), numbers as digits, keywords
from fixed sets. Anything else raises InvalidArgument before a byte leaves the process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .errors import InvalidArgument
from .validation import check_argument, is_canonical_ipv4, normalise_ip, validate_jail_name

SERVER_GET_KEYS = frozenset(
    {"dbfile", "dbpurgeage", "dbmaxmatches", "loglevel", "logtarget", "syslogsocket"}
)
JAIL_GET_KEYS = frozenset(
    {
        "bantime",
        "findtime",
        "maxretry",
        "maxlines",
        "maxmatches",
        "ignoreip",
        "ignoreself",
        "ignorecommand",
        "logpath",
        "logencoding",
        "journalmatch",
        "actions",
        "failregex",
        "ignoreregex",
        "prefregex",
        "datepattern",
        "logtimezone",
        "usedns",
        "backend",  # fail2ban 1.1+ only; probed before use
        "idle",  # fail2ban 1.1+ only; probed before use
        "banip",
        "bantime.increment",
        "bantime.factor",
        "bantime.formula",
        "bantime.multipliers",
        "bantime.maxtime",
        "bantime.rndtime",
        "bantime.overalljails",
    }
)
JAIL_SET_DURATION_KEYS = frozenset({"bantime", "findtime"})
JAIL_SET_COUNT_KEYS = frozenset({"maxretry"})
JAIL_SET_IP_LIST_KEYS = frozenset({"banip", "unbanip"})
JAIL_SET_IGNORE_KEYS = frozenset({"addignoreip", "delignoreip"})
STATUS_FLAVORS = frozenset({"basic", "short"})

# A probe name that can never be a real jail (jail names cannot start with '~'):
# asking about it tells "unknown command" from "unknown jail" without touching a jail.
PROBE_JAIL = "~jailadmin-probe"


def _ip(value: str, *, allow_network: bool) -> None:
    # A canonical dotted quad comes back from normalise_ip as it is, without a parse.
    if normalise_ip(value, allow_network=allow_network) != value:
        raise InvalidArgument(f"address is not in canonical form: {value!r}")


def _ips(values: Sequence[str], *, allow_network: bool) -> None:
    if not values:
        raise InvalidArgument("at least one address is required")
    for value in values:
        # A bulk ban sends 100 000 canonical dotted quads: one match each, not two calls.
        if not is_canonical_ipv4(value):
            _ip(value, allow_network=allow_network)


def _integer(value: str, *, allow_negative_one: bool) -> None:
    if value == "-1" and allow_negative_one:
        return
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise InvalidArgument(f"not a whole number: {value!r}")


def _jail(name: str, *, probe_ok: bool = False) -> None:
    if probe_ok and name == PROBE_JAIL:
        return
    validate_jail_name(name)


def _check_get(args: list[str]) -> None:
    if len(args) == 1 and args[0] in SERVER_GET_KEYS:
        return
    if len(args) < 2:
        raise InvalidArgument("get needs a jail and a key")
    jail, key, rest = args[0], args[1], args[2:]
    _jail(jail, probe_ok=True)
    if key == "banip" and rest in ([], ["--with-time"]):
        return
    if key == "banned" and rest:
        _ips(rest, allow_network=True)
        return
    if key in JAIL_GET_KEYS and not rest:
        return
    raise InvalidArgument(f"get {key!r} is not an allowed command")


def _check_set(args: list[str]) -> None:
    if len(args) < 3:
        raise InvalidArgument("set needs a jail, a key and a value")
    jail, key, values = args[0], args[1], args[2:]
    _jail(jail)
    if key in JAIL_SET_IP_LIST_KEYS:
        _ips(values, allow_network=True)
    elif key in JAIL_SET_IGNORE_KEYS and len(values) == 1:
        _ip(values[0], allow_network=True)
    elif key in JAIL_SET_DURATION_KEYS and len(values) == 1:
        _integer(values[0], allow_negative_one=(key == "bantime"))
    elif key in JAIL_SET_COUNT_KEYS and len(values) == 1:
        _integer(values[0], allow_negative_one=False)
    elif key == "idle" and values in (["on"], ["off"]):
        pass
    else:
        raise InvalidArgument(f"set {key!r} is not an allowed command")


def _check_status(args: list[str]) -> None:
    if not args:
        return
    _jail(args[0])
    if len(args) == 1 or (len(args) == 2 and args[1] in STATUS_FLAVORS):
        return
    raise InvalidArgument("status takes a jail and an optional flavor")


def _check_unban(args: list[str]) -> None:
    if args == ["--all"]:
        return
    _ips(args, allow_network=True)


def _check_banned(args: list[str]) -> None:
    if args:
        _ips(args, allow_network=True)


def _check_jail_only(args: list[str]) -> None:
    if len(args) != 1:
        raise InvalidArgument("the command takes exactly one jail")
    _jail(args[0])


def _check_no_args(args: list[str]) -> None:
    if args:
        raise InvalidArgument("the command takes no arguments")


_CHECKS: dict[str, Callable[[list[str]], None]] = {
    "ping": _check_no_args,
    "version": _check_no_args,
    "status": _check_status,
    "banned": _check_banned,
    "get": _check_get,
    "set": _check_set,
    "unban": _check_unban,
    "start": _check_jail_only,
    "stop": _check_jail_only,
    "stats": _check_no_args,  # fail2ban 1.1+: probed, then used
}


def check_command(command: Sequence[str], *, allow_server_stop: bool = False) -> list[str]:
    """Return the command as a list if it is allowed, else raise InvalidArgument.

    ``allow_server_stop`` admits a bare ``stop`` (shut the whole server down); only the
    private-server harness sets it, never the web site.
    """
    words = [check_argument(word) for word in command]
    if not words:
        raise InvalidArgument("empty command")
    verb, args = words[0], words[1:]
    if verb == "stop" and not args and allow_server_stop:
        return words
    if verb == "status" and args == ["--all", "short"]:
        # fail2ban 1.1+ (probed, then used): every jail's counters in one reply. Only the
        # short flavor: the others list every banned address of every jail.
        return words
    check = _CHECKS.get(verb)
    if check is None:
        raise InvalidArgument(f"command {verb!r} is not allowed")
    check(args)
    return words
