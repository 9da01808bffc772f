"""Installing the agent on an SSH host over a one-time administrator login (issue 12).

`manage.py hosts install-agent NAME --perform --login root@host:22 --login-key PATH` does
over that login exactly what the printed steps (hosts.install_steps) tell an administrator
to do by hand: put the agent bundle in place, check that it runs, append the forced-command
authorized_keys line for the site's key (once), then contact the agent through the site's
key as the site does (hosts.host_check).

The login is the operator's, for this run only: its destination and key file are never
stored, logged or audited, and the key file is read by ssh where it lies (never copied).
It is held to the site's own rules (jails.agent.ssh.client_argv): no user configuration,
no ssh-agent, and the host must present the key an administrator confirmed before: an
unconfirmed host is refused before ssh starts, a changed key is refused by ssh.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jails.agent import ssh
from jails.fail2ban import Fail2banError, InvalidArgument
from jails.hosts.models import Host
from jails.hosts.services.hosts import (
    HostRefused,
    host_check,
    install_steps,
    link_forget,
)
from jails.services.audit import Actor, audit_record
from jails.state import RuntimeState

# A path or option that goes into the forced command, which sshd runs through the user's
# shell: only characters no shell treats specially (and no double quote: authorized_keys).
_PATH = re.compile(r"/[A-Za-z0-9_./+-]{1,1000}")
_OPTION = re.compile(r"[A-Za-z0-9_./:=+,@-]{1,1000}")
# "~user/rest": the user's home, which only the remote shell can expand.
_HOME_PATH = re.compile(r"~(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]{0,31})/(?P<rest>.+)")
# One step over ssh: the upload of a ~100 kB bundle is the slowest, on a slow link.
STEP_TIMEOUT = 120.0
CONNECT_TIMEOUT = 15.0
# What `agent.pyz --version` prints first (jails.agent.__main__: AGENT_NAME).
AGENT_NAME = "jailadmin-agent"


@dataclass(frozen=True)
class InstallPlan:
    """Where the agent goes on the host and what its forced command runs (the printed steps'
    defaults; tests and unusual hosts override them)."""

    agent_path: str = ssh.AGENT_PATH
    python: str = ssh.AGENT_PYTHON
    authorized_keys: str = ""  # "": the host's user's ~/.ssh/authorized_keys (install_steps)
    agent_options: tuple[str, ...] = ()  # appended to `--stdio`, e.g. ("--socket", PATH)

    def checked(self) -> InstallPlan:
        for name, path in (("agent path", self.agent_path), ("python", self.python)):
            if not _PATH.fullmatch(path) or "/../" in path or path.endswith("/"):
                raise InvalidArgument(
                    f"the {name} must be an absolute path of letters, digits and . _ + - /"
                )
        if self.authorized_keys:
            _remote_path(self.authorized_keys)
        for option in self.agent_options:
            if not _OPTION.fullmatch(option):
                raise InvalidArgument(f"the agent option {option!r} has characters a shell reads")
        return self

    @property
    def forced_command(self) -> str:
        return ssh.agent_command(self.python, self.agent_path, *self.agent_options)


@dataclass(frozen=True)
class Step:
    """One step's outcome as the operator reads it."""

    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class InstallReport:
    host: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "steps": [s.as_dict() for s in self.steps]}


class _StepFailed(Exception):
    pass


def _remote_path(path: str) -> str:
    """`path` for the remote shell: quoted, except a leading ~user/ that it must expand."""
    home = _HOME_PATH.fullmatch(path)
    if home is not None:
        rest = home.group("rest")
        if not _PATH.fullmatch("/" + rest):
            raise InvalidArgument(f"{path!r}: use letters, digits and . _ + - / only")
        return f"~{home.group('user')}/{shlex.quote(rest)}"
    if not _PATH.fullmatch(path) or path.endswith("/"):
        raise InvalidArgument(
            f"{path!r} is not an absolute file path (or ~user/…) of letters, digits and . _ + - /"
        )
    return shlex.quote(path)


class _Login:
    """ssh over the operator's login, with the host's confirmed key as the only known host."""

    def __init__(self, target: ssh.SshTarget, key_file: Path, scratch: Path) -> None:
        self.target = target
        self.key_file = key_file
        self.known_hosts = scratch / "known_hosts"
        self.known_hosts.write_text(ssh.known_hosts_text(target))

    def run(self, command: str, *, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        argv = ssh.client_argv(
            self.target,
            key_path=self.key_file,
            known_hosts=self.known_hosts,
            timeout=CONNECT_TIMEOUT,
            command=command,
        )
        try:
            result = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                timeout=STEP_TIMEOUT,
                # Nothing of this process's environment (an ssh-agent socket) is passed on.
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _StepFailed(f"no answer within {STEP_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise _StepFailed(f"cannot run ssh: {exc}") from None
        if result.returncode == 255:
            said = result.stderr.decode(errors="replace")
            failure = ssh.ssh_failure(f"ssh:{self.target.destination}", said, 255)
            # The reason alone, never the login's destination or key file: a failure after
            # the login step goes into the audit log.
            if isinstance(failure, ssh.SiteKeyRejected):
                raise _StepFailed(
                    "the host did not accept the login key (is it in that user's"
                    " authorized_keys, and the key file mode 0600?)"
                )
            if failure is not None:
                raise _StepFailed(f"ssh: {failure.reason}")
            raise _StepFailed("ssh failed with no message")
        return result


def _said(result: subprocess.CompletedProcess[bytes]) -> str:
    text = (result.stderr or result.stdout).decode(errors="replace").strip()
    return text.splitlines()[-1][:300] if text else f"exit status {result.returncode}"


def _upload(login: _Login, plan: InstallPlan, bundle: bytes) -> str:
    directory, _, name = plan.agent_path.rpartition("/")
    # A temp file beside the target and a rename: an agent starting meanwhile never runs half
    # a bundle. The sha256 printed back proves what arrived.
    script = "; ".join(
        [
            "set -e",
            "umask 022",
            f"install -d -m 0755 {shlex.quote(directory or '/')}",
            f"tmp=$(mktemp {shlex.quote(f'{directory}/.{name}.XXXXXX')})",
            'cat > "$tmp"',
            'chmod 0644 "$tmp"',
            f'mv -f "$tmp" {shlex.quote(plan.agent_path)}',
            f"sha256sum {shlex.quote(plan.agent_path)}",
        ]
    )
    result = login.run(script, stdin=bundle)
    if result.returncode != 0:
        raise _StepFailed(f"could not write {plan.agent_path}: {_said(result)}")
    digest = hashlib.sha256(bundle).hexdigest()
    arrived = result.stdout.decode(errors="replace").split()
    if not arrived or arrived[0] != digest:
        raise _StepFailed(f"{plan.agent_path} does not hold the bundle sent (sha256 differs)")
    return f"{plan.agent_path} ({len(bundle)} bytes, sha256 {digest[:16]}…)"


def _agent_runs(login: _Login, plan: InstallPlan) -> str:
    command = shlex.join([plan.python, "-I", plan.agent_path, "--version"])
    result = login.run(command)
    said = result.stdout.decode(errors="replace").strip()
    if result.returncode != 0 or not said.startswith(AGENT_NAME):
        raise _StepFailed(f"`{command}` on the host failed: {_said(result)}")
    return f"{said} on {plan.python}"


# Appends the line once. The key already there with other options (another forced command,
# none at all) is not touched: an administrator decides which line is right.
_AUTHORIZE = """set -e
umask 077
f={file}
line={line}
d=$(dirname "$f")
[ -d "$d" ] || install -d -m 0700 "$d"
touch "$f"
if grep -qxF -- "$line" "$f"; then echo present; exit 0; fi
if grep -qF -- {blob} "$f"; then echo other; exit 3; fi
if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then printf '\\n' >> "$f"; fi
printf '%s\\n' "$line" >> "$f"
echo added
"""


def _authorize(login: _Login, *, keys_file: str, line: str, blob: str) -> str:
    script = _AUTHORIZE.format(
        file=_remote_path(keys_file), line=shlex.quote(line), blob=shlex.quote(blob)
    )
    result = login.run(script)
    said = result.stdout.decode(errors="replace").strip()
    if result.returncode == 0 and said == "present":
        return f"{keys_file} already holds the line: not added again"
    if result.returncode == 0 and said == "added":
        return f"added the forced-command line to {keys_file}"
    if said == "other":
        raise _StepFailed(
            f"{keys_file} already holds the site's key for this host with other options "
            "than the agent's forced command: fix or remove that line by hand; nothing changed"
        )
    raise _StepFailed(f"could not update {keys_file}: {_said(result)}")


def agent_install(
    state: RuntimeState,
    *,
    host: Host,
    login: str,
    login_key: Path,
    bundle: bytes,
    plan: InstallPlan,
    actor: Actor,
    deadline: float,
    progress: Callable[[Step], None] = lambda step: None,
) -> InstallReport:
    """Run the install steps over the login; stop at the first that fails (its Step says why).

    HostRefused before anything runs: not an SSH host, no key pair, a bad plan or login."""
    steps = install_steps(host)  # refuses a host that is not SSH or has no key pair
    plan = plan.checked()
    keys_file = plan.authorized_keys or steps.authorized_keys_file
    line = ssh.authorized_keys_line(host.ssh_public_key, command=plan.forced_command)
    blob = host.ssh_public_key.split()[1]  # the key itself, whatever options precede it
    if not host.ssh_host_key:
        raise HostRefused(
            f"{host.name}'s host key is not confirmed: run `manage.py hosts confirm-key "
            f"{host.name}` and compare the fingerprint first; nothing was done"
        )
    try:
        target = ssh.SshTarget.from_destination(
            login, alias=f"jailadmin-host-{host.pk}", private_key="", host_key=host.ssh_host_key
        )
    except InvalidArgument as exc:
        raise HostRefused(f"the login: {exc}") from None
    if not login_key.is_file():
        raise HostRefused(f"the login key {login_key} is not a readable file")
    report = InstallReport(host=host.name)
    changed = False

    def step(name: str, action: Callable[[], str]) -> None:
        try:
            detail = action()
        except _StepFailed as exc:
            report.steps.append(Step(name, False, str(exc)))
            progress(report.steps[-1])
            raise
        report.steps.append(Step(name, True, detail))
        progress(report.steps[-1])

    def logged_in() -> str:
        result = session.run("true")
        if result.returncode != 0:
            raise _StepFailed(f"the login cannot run commands: {_said(result)}")
        key = ssh.fingerprint(host.ssh_host_key)
        # Not the login's destination: the report goes to the audit log.
        return f"logged in; the host presented the confirmed host key {key}"

    def checked() -> str:
        link_forget(state, host)  # a link built before the install would not see it
        check = host_check(state, host=host, deadline=deadline)
        if not check.ok:
            raise _StepFailed(f"the site cannot use the agent through its key: {check.error}")
        return (
            f"agent {check.agent_version}, fail2ban {check.fail2ban_version}, "
            f"{len(check.jails)} jails: {', '.join(check.jails) or 'none'}"
        )

    with tempfile.TemporaryDirectory(prefix="jailadmin-install-") as scratch:
        session = _Login(target, login_key, Path(scratch))
        try:
            step("login", logged_in)
            changed = True  # from here on the host may change: the run is audited
            step("agent bundle", lambda: _upload(session, plan, bundle))
            step("agent runs", lambda: _agent_runs(session, plan))
            step(
                "authorized_keys",
                lambda: _authorize(session, keys_file=keys_file, line=line, blob=blob),
            )
            step("check", checked)
        except _StepFailed:
            pass
        except Fail2banError as exc:  # the tools missing (ssh not installed)
            report.steps.append(Step("ssh", False, str(exc)))
            progress(report.steps[-1])
    if changed:
        failed = next((s for s in report.steps if not s.ok), None)
        audit_record(
            actor=actor,
            action="host-agent-install",
            host=host.name,
            # Where the agent went and what ran; never the login (destination or key).
            parameters={
                "host": host.name,
                "agent_path": plan.agent_path,
                "python": plan.python,
                "authorized_keys": keys_file,
                "forced_command": plan.forced_command,
                "steps": [s.as_dict() for s in report.steps],
            },
            ok=report.ok,
            error=f"{failed.name}: {failed.detail}" if failed else "",
        )
    return report
