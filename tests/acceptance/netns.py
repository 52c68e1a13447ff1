"""Hosts of a test network: Linux network namespaces on one bridge, made and removed by a test.

Each `Host` is a namespace with one veth link to a bridge in the test's own namespace, a
host name of its own (its processes run in a UTS namespace) and a private address on a
10.x.y.0/24 that no route of the machine overlaps, picked from the test's pid (runs at the
same time do not collide). The test process reaches every host over the bridge; hosts
reach each other and nothing else (no route out). Needs root, `ip` (iproute2), `runuser`
and `unshare` (util-linux); `unavailable()` says why not.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_PREFIX = "mlr"  # every namespace and link this module makes starts with it
_OWN_NAME = re.compile(rf"^{_PREFIX}(\d+)[a-z]")


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "runuser", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install iproute2 util-linux)"
    probe = f"{_PREFIX}{os.getpid()}probe"
    steps = [
        ["ip", "netns", "add", probe],
        ["ip", "link", "add", probe, "type", "bridge"],
        ["ip", "link", "add", f"{probe}v", "type", "veth", "peer", "name", "eth0", "netns", probe],
    ]
    try:
        for step in steps:
            made = subprocess.run(step, capture_output=True, text=True)
            if made.returncode != 0:
                return f"`{' '.join(step[:4])}` failed: {made.stderr.strip()}"
    finally:
        for undo in (["ip", "link", "delete", f"{probe}v"], ["ip", "link", "delete", probe]):
            subprocess.run(undo, capture_output=True)
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Delete namespaces and bridges of earlier runs whose process is gone (a run that was
    killed before its clean-up)."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in namespaces.splitlines() if line.strip()]
    names += [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    for name in names:
        owner = _OWN_NAME.match(name)
        if owner is None or _pid_alive(int(owner.group(1))):
            continue
        if name in namespaces:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        else:
            subprocess.run(["ip", "link", "delete", name], capture_output=True)


@dataclass
class Host:
    """One namespace: its address, its own empty directory, and the processes run in it."""

    name: str
    namespace: str
    link: str  # the bridge side of its veth pair
    address: str
    home: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, argv: Sequence[str], *, user: str | None = None) -> list[str]:
        """`argv` as run inside this host (as `user`, else root), under the host's own
        host name (a UTS namespace). Each step execs the next: the process id stays."""
        inside = ["runuser", "-u", user, "--", *argv] if user else list(argv)
        named = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name]
        return ["ip", "netns", "exec", self.namespace, *named, *inside]

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        user: str | None = None,
        log_name: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` in this host with exactly `env` (plus a private HOME and TMPDIR),
        in its own directory; stdout and stderr go to a log file there."""
        with open(self.home / f"{log_name or Path(argv[0]).name}.log", "ab") as log:
            process = subprocess.Popen(
                self.command(argv, user=user),
                env=self.environment(env),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def run(self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 60) -> str:
        """Run `argv` in this host to its end; its stdout (raises with stderr on failure)."""
        done = subprocess.run(
            self.command(argv),
            env=self.environment(env),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv} on {self.name} failed:\n{done.stderr}")
        return done.stdout

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """Nothing of the test's environment but PATH: the settings are all a host has."""
        (self.home / "tmp").mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "TMPDIR": str(self.home / "tmp"),
            **env,
        }

    def log(self, name: str) -> str:
        """What a process started with `log_name=name` has written so far."""
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL every process started here (the host is gone, nothing drains)."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM every process started here, then SIGKILL what is still running."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def cut(self) -> None:
        """Take this host's link down: nothing reaches it and it reaches nothing."""
        _run("ip", "link", "set", self.link, "down")
        _run("ip", "-n", self.namespace, "link", "set", "eth0", "down")


def free_subnet(pid: int) -> str:
    """The first three octets of a 10.x.y.0/24 that no route of this machine overlaps,
    starting from one derived from `pid` (so that concurrent runs differ)."""
    routes = subprocess.run(
        ["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    taken = []
    for line in routes.splitlines():
        words = line.split()
        destination = words[1] if words[0] in ("local", "broadcast", "unicast") else words[0]
        if destination != "default":
            taken.append(ipaddress.ip_network(destination, strict=False))
    for step in range(10_000):
        number = (pid + step * 7919) % 25_600
        candidate = ipaddress.ip_network(f"10.{100 + number // 256}.{number % 256}.0/24")
        if not any(candidate.overlaps(network) for network in taken):
            return str(candidate.network_address).rsplit(".", 1)[0]
    raise RuntimeError("no free 10.x.y.0/24 for a test network")


class Network:
    """A bridge in the test's namespace and the hosts attached to it."""

    def __init__(self, workdir: Path) -> None:
        pid = os.getpid()
        self.tag = f"{_PREFIX}{pid}"
        self.subnet = free_subnet(pid)
        self.gateway = f"{self.subnet}.1"
        self.bridge = f"{self.tag}br"
        self.workdir = workdir
        self.hosts: dict[str, Host] = {}

    def create(self) -> None:
        """Make the bridge, with the test process's own address on it."""
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        """A new namespace `name` on the bridge, with the next address of the subnet."""
        number = len(self.hosts) + 2
        host = Host(
            name=name,
            namespace=f"{self.tag}{name}",
            link=f"{self.tag}{name}",
            address=f"{self.subnet}.{number}",
            home=Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir)),
        )
        host.home.chmod(0o755)
        _run("ip", "netns", "add", host.namespace)
        _run("ip", "link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns",
             host.namespace)  # fmt: skip
        _run("ip", "link", "set", host.link, "master", self.bridge, "up")
        _run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run("ip", "-n", host.namespace, "link", "set", "eth0", "up")
        _run("ip", "-n", host.namespace, "link", "set", "lo", "up")
        self.hosts[name] = host
        return host

    def remove(self) -> None:
        """Stop every host's processes (clients before servers), delete the links, the
        namespaces and the bridge.

        The links are deleted explicitly: a namespace whose name is deleted lives on, with
        its link, while sockets in it still retransmit to a host that was cut off."""
        for host in reversed(self.hosts.values()):
            host.stop()
        for host in self.hosts.values():
            subprocess.run(["ip", "link", "delete", host.link], capture_output=True)
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)


@contextmanager
def network(workdir: Path) -> Iterator[Network]:
    """A test network, removed on the way out whatever happened."""
    remove_leftovers()
    net = Network(workdir)
    try:
        net.create()
        yield net
    finally:
        net.remove()
