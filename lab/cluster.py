"""`raftmon cluster`: an N-member cluster of real member processes on loopback.

`LocalCluster` is also the fixture behind the cluster tests, the lab and
`make demo`: free ports, one data dir per member under one folder, an
endpoints file, member logs kept per member (and streamed with a name prefix
when asked), and the operator's rough tools: kill -9, pause (SIGSTOP), resume
(SIGCONT) and restart of one member. Everything it started is stopped by
`stop()`, which the context manager and Ctrl-C always call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lab.certs import Authority, ClusterCerts, issue, make_authority
from lab.children import interrupt_on_signals, spawn
from lab.members import ProcessCluster, ProcessMember, placement_flags
from lab.membership import MembershipOps, failures_tolerated, quorum
from lab.procs import free_ports

CLUSTER_SIZES = (1, 3, 5, 7)


@dataclass(kw_only=True)
class MemberProcess(ProcessMember):
    """One raftmon member: also its metrics URL, its flags and the thread copying its log."""

    metrics_url: str
    args: list[str]
    _log_thread: threading.Thread | None = field(default=None, repr=False)


class LocalCluster(MembershipOps, ProcessCluster[MemberProcess]):
    """Start, break and stop an N-member raftmon cluster made of real processes.

    Membership changes (`add_member`, `promote`, `remove`, `replace`) come from
    `MembershipOps`: a member added at run time gets new ports and a fresh data dir under
    the same folder and joins with `--initial-cluster-state existing`.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        size: int = 3,
        *,
        extra_args: list[str] | None = None,
        member_args: dict[str, list[str]] | None = None,
        stream_logs: bool = False,
        fault_injection: bool = True,
        token: str | None = None,
        tls: bool = False,
        authority: Authority | None = None,
    ) -> None:
        if not 1 <= size <= 7:
            raise ValueError("cluster size must be 1 to 7")
        self.base_dir = Path(base_dir)
        self.size = size
        self.stream_logs = stream_logs
        self.fault_injection = fault_injection
        self.extra_args = list(extra_args or [])
        self.removed: list[MemberProcess] = []
        self.token = token or f"raftmon-{os.getpid()}-{int(time.time())}"
        ports = free_ports(3 * size)
        names = [f"m{i + 1}" for i in range(size)]
        # --tls: a CA, a certificate per member and one for clients under <base>/tls;
        # every URL is https, client and peer certificates are required (mTLS). With an
        # `authority` (implies tls) that CA signs the members: the lab's runs share one.
        tls = tls or authority is not None
        self.certs: ClusterCerts | None = None
        if tls:
            ca = authority or make_authority(self.base_dir / "tls")
            self.certs = ca.cluster_certs(self.base_dir / "tls", names)
        scheme = "https" if tls else "http"
        self.members = [
            self._process(name, scheme, ports[3 * i : 3 * i + 3]) for i, name in enumerate(names)
        ]
        self._client_ssl = self.client_ssl  # built once: loading the CA costs a few ms
        initial = self.initial_cluster()
        for m in self.members:
            m.args = [
                *placement_flags(m, initial, self.token),
                f"--listen-metrics-urls={m.metrics_url}",
                *(["--enable-fault-injection"] if fault_injection else []),
                *(self.certs.member_flags(m.name) if self.certs else []),
                *(extra_args or []),
                *((member_args or {}).get(m.name, [])),
            ]

    # ---- membership hooks (lab.membership.MembershipOps) -----------------
    def _new_member(self, name: str) -> MemberProcess:
        client, peer, metrics = free_ports(3)
        scheme = "https" if self.certs is not None else "http"
        if self.certs is not None:
            folder = self.base_dir / "tls"
            self.certs.members[name] = issue(self.certs.ca, folder, name, name)
        return self._process(name, scheme, [client, peer, metrics])

    def _process(self, name: str, scheme: str, ports: list[int]) -> MemberProcess:
        """A member (not started) on loopback: client, peer and metrics ports, in order."""
        client, peer, metrics = ports
        return MemberProcess(
            name=name,
            client_url=f"{scheme}://127.0.0.1:{client}",
            peer_url=f"{scheme}://127.0.0.1:{peer}",
            metrics_url=f"{scheme}://127.0.0.1:{metrics}",
            data_dir=self.base_dir / f"{name}.etcd",
            log_path=self.base_dir / f"{name}.log",
            args=[],
        )

    def _start_joining(self, m: MemberProcess, flags: list[str]) -> None:
        shutil.rmtree(m.data_dir, ignore_errors=True)  # a fresh data dir, always
        m.args = [
            *flags,
            f"--listen-metrics-urls={m.metrics_url}",
            *(["--enable-fault-injection"] if self.fault_injection else []),
            *(self.certs.member_flags(m.name) if self.certs else []),
            *self.extra_args,
        ]
        self._spawn(m)
        self.write_endpoints_file()

    def _stop_member(self, m: MemberProcess) -> None:
        """A removed member stops itself; kill -9 one that has not, and close its log."""
        if m.alive:
            if m.paused:
                self.resume(m.name)
            self.kill(m.name)
        if m._log_thread is not None:
            m._log_thread.join(timeout=2)
        if m.proc is not None and m.proc.stdout is not None:
            m.proc.stdout.close()

    # ---- lifecycle -----------------------------------------------------
    @property
    def client_ssl(self) -> ssl.SSLContext | None:
        """What a client needs on --tls: trust the cluster's CA, present the client cert."""
        if self.certs is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.certs.ca.cert_file))
        ctx.load_cert_chain(self.certs.client.cert_file, self.certs.client.key_file)
        return ctx

    def curl_command(self, body: str = '{"key":"Zm9v"}') -> str:
        """A curl command that reads key "foo" from the first member, working as written."""
        first = self.members[0].client_url
        tls = ""
        if self.certs is not None:
            c = self.certs
            tls = (
                f"--cacert {c.ca.cert_file} --cert {c.client.cert_file} --key {c.client.key_file} "
            )
        return f"curl {tls}{first}/v3/kv/range -d '{body}'"

    def start(self, wait: bool = True, timeout: float = 30.0) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for m in self.members:
            self._spawn(m)
        self.write_endpoints_file()
        if wait:
            self.wait_healthy(timeout=timeout)

    def _spawn(self, m: MemberProcess) -> None:
        cmd = [sys.executable, "-m", "node", *m.args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        log_file = open(m.log_path, "ab")
        m.proc = spawn(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        m.paused = False
        assert m.proc.stdout is not None
        m._log_thread = threading.Thread(
            target=self._pump_log, args=(m.name, m.proc.stdout, log_file), daemon=True
        )
        m._log_thread.start()

    def _pump_log(self, name: str, stream: IO[bytes], log_file: IO[bytes]) -> None:
        with log_file:
            for line in iter(stream.readline, b""):
                log_file.write(line)
                log_file.flush()
                if self.stream_logs:
                    sys.stdout.write(f"{name} | {line.decode(errors='replace')}")
                    sys.stdout.flush()

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL after a grace period)."""
        for m in self.members:
            if m.alive and m.paused:
                self.resume(m.name)
        for m in self.members:
            if m.alive:
                assert m.proc is not None
                m.proc.terminate()
        deadline = time.monotonic() + 10
        for m in self.members:
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=5)
            if m._log_thread is not None:
                m._log_thread.join(timeout=2)
            if m.proc.stdout is not None:
                m.proc.stdout.close()

    def pause(self, name: str) -> None:
        m = self.member(name)
        if m.proc is not None and m.alive:
            os.kill(m.proc.pid, signal.SIGSTOP)
            m.paused = True

    def resume(self, name: str) -> None:
        m = self.member(name)
        if m.proc is not None and m.alive:
            os.kill(m.proc.pid, signal.SIGCONT)
            m.paused = False

    def restart(self, name: str, wait: bool = True, timeout: float = 30.0) -> None:
        m = self.member(name)
        if m.alive:
            assert m.proc is not None
            if m.paused:  # a stopped process cannot act on SIGTERM until it runs again
                self.resume(name)
            m.proc.terminate()
            try:
                m.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self._spawn(m)
        self.write_endpoints_file()  # its new pid
        if wait:
            self.wait_member_ready(name, timeout=timeout)

    def wipe(self, name: str) -> None:
        """Delete a stopped member's data dir (to rehearse a member that lost its disk)."""
        m = self.member(name)
        if m.alive:
            raise RuntimeError(f"{name} is running")
        shutil.rmtree(m.data_dir, ignore_errors=True)

    # ---- observation ---------------------------------------------------
    def wait_member_ready(self, name: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        m = self.member(name)
        while time.monotonic() < deadline:
            if not m.alive:
                raise RuntimeError(f"{name} exited\n{m.log_tail()}")
            if self.status(name) is not None:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready within {timeout}s\n{m.log_tail()}")

    def wait_healthy(self, timeout: float = 30.0) -> str:
        for m in self.members:
            self.wait_member_ready(m.name, timeout=timeout)
        return self.wait_leader(timeout=timeout)

    def write_endpoints_file(self) -> Path:
        info: dict[str, Any] = {
            "endpoints": self.endpoints,
            # What a member joining by hand needs besides `member add`'s output.
            "initial_cluster_token": self.token,
            "members": [
                {
                    "name": m.name,
                    "client_url": m.client_url,
                    "peer_url": m.peer_url,
                    "metrics_url": m.metrics_url,
                    "data_dir": str(m.data_dir),
                    "log": str(m.log_path),
                    "pid": m.proc.pid if m.proc else None,
                }
                for m in self.members
            ],
        }
        if self.certs is not None:
            info["tls"] = {
                "cacert": str(self.certs.ca.cert_file),
                "cert": str(self.certs.client.cert_file),
                "key": str(self.certs.client.key_file),
            }
        path = self.base_dir / "endpoints.json"
        path.write_text(json.dumps(info, indent=2) + "\n")
        (self.base_dir / "endpoints").write_text(",".join(self.endpoints) + "\n")
        return path


HELP_COMMANDS = """commands (type and press Enter):
  status              members, pids, leader
  kill <member>       SIGKILL a member
  pause <member>      SIGSTOP a member
  resume <member>     SIGCONT a member
  restart <member>    restart a member (after kill, or gracefully)
  add [--learner]     add a member (or a learner) and start it with a fresh data dir
  promote <member>    promote a learner to a voter once it has caught up
  remove <member>     remove a member from the cluster (and stop it)
  replace <member>    remove a dead member, add a fresh one, start it, wait for catch-up
  members             the member list as the cluster sees it (ids, learners)
  quit                stop everything (Ctrl-C does the same)"""


def _print_status(cluster: LocalCluster) -> None:
    lead = cluster.leader()
    try:
        listed = {p: info for info in cluster.member_list() for p in info.peer_urls}
    except (OSError, RuntimeError):
        listed = {}
    for m in cluster.members:
        state = "paused" if m.paused else ("running" if m.alive else "stopped")
        pid = m.proc.pid if m.proc else "-"
        info = listed.get(m.peer_url)
        role = "learner" if info is not None and info.is_learner else "voter"
        mark = "  <- leader" if m.name == lead else ""
        print(f"  {m.name}  {state:<8} {role:<7} pid={pid:<7} client={m.client_url}{mark}")
    if listed:
        voters = sum(1 for info in set(listed.values()) if not info.is_learner)
        print(
            f"  voters {voters}, learners {len(set(listed.values())) - voters}: quorum "
            f"{quorum(voters)}, failures tolerated {failures_tolerated(voters)}"
        )


def _print_members(cluster: LocalCluster) -> None:
    for info in cluster.member_list():
        name = info.name or "(unstarted)"
        role = "learner" if info.is_learner else "voter"
        print(f"  {info.id}  {name:<12} {role:<7} peers={','.join(info.peer_urls)}")


def _membership_command(cluster: LocalCluster, cmd: str, rest: list[str]) -> bool:
    """add / promote / remove / replace / members; False when the words are not one."""
    if cmd == "add" and rest in ([], ["--learner"]):
        learner = rest == ["--learner"]
        name = cluster.add_member(learner=learner)
        print(f"add: {name} joined as a {'learner' if learner else 'voter'} and caught up")
    elif cmd == "promote" and len(rest) == 1:
        refused = cluster.promote(rest[0])
        print(f"promote {rest[0]}: done ({refused} 'not in sync yet' refusals first)")
    elif cmd in ("remove", "replace") and len(rest) == 1:
        if cmd == "remove":
            cluster.remove(rest[0])
            print(f"remove {rest[0]}: done")
        else:
            print(f"replace {rest[0]}: done, {cluster.replace(rest[0])} joined and caught up")
    elif cmd == "members" and not rest:
        _print_members(cluster)
    else:
        return False
    cluster.write_endpoints_file()
    return True


def _serve_commands(cluster: LocalCluster) -> None:
    """Operator commands from stdin until `quit`; when stdin ends, run until a signal."""
    if sys.stdin.isatty():
        print(HELP_COMMANDS)
    for line in sys.stdin:  # a terminal, or a pipe a script writes commands into
        words = line.split()
        if not words:
            continue
        cmd, rest = words[0], words[1:]
        try:
            if cmd in ("quit", "exit"):
                return
            if cmd == "status":
                _print_status(cluster)
            elif cmd in ("kill", "pause", "resume", "restart") and len(rest) == 1:
                getattr(cluster, cmd)(rest[0])
                print(f"{cmd} {rest[0]}: done")
            elif _membership_command(cluster, cmd, rest):
                pass
            else:
                print(HELP_COMMANDS)
        except (KeyError, RuntimeError, TimeoutError, OSError) as err:
            print(f"error: {err}")
        sys.stdout.flush()
    while True:  # stdin ended (e.g. </dev/null in the background): run until SIGINT/SIGTERM
        time.sleep(3600)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="raftmon cluster", description="Run a local N-member cluster on loopback."
    )
    parser.add_argument("--size", type=int, default=3, choices=CLUSTER_SIZES)
    parser.add_argument("--data-dir", default="var/cluster", help="folder for member data and logs")
    parser.add_argument("--quiet", action="store_true", help="do not stream member logs")
    parser.add_argument("--no-fault-injection", action="store_true")
    parser.add_argument("--clean", action="store_true", help="delete --data-dir first")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="generate a CA and certificates under --data-dir/tls and run every URL on "
        "https with client and peer certificates required (mTLS)",
    )
    parser.add_argument("member_flags", nargs="*", help="extra member flags after --")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(args.data_dir, ignore_errors=True)
    cluster = LocalCluster(
        args.data_dir,
        args.size,
        extra_args=args.member_flags,
        stream_logs=not args.quiet,
        fault_injection=not args.no_fault_injection,
        tls=args.tls,
    )
    with interrupt_on_signals():
        try:
            cluster.start(wait=False)
            lead = cluster.wait_healthy()
            print(f"cluster of {args.size} ready; leader {lead}")
            print(f"endpoints: {','.join(cluster.endpoints)}  (also in {args.data_dir}/endpoints)")
            if cluster.certs is not None:
                print(f"certificates in {cluster.certs.ca.cert_file.parent}; try:")
                print(f"  {cluster.curl_command()}")
            sys.stdout.flush()
            _serve_commands(cluster)
        except KeyboardInterrupt:
            pass
        finally:
            print("stopping cluster")
            cluster.stop()
    return 0
