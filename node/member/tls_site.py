"""`TLSSite`: an aiohttp site for https URLs on `TLSAcceptor` (tls_accept.py says why)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from node.member.tls_accept import TLSAcceptor

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import Callable

    from aiohttp.web_runner import BaseRunner


class TLSSite(web.BaseSite):
    """Serve `runner` (or `protocol_factory`) on host:port over TLS, as etcd's listener."""

    def __init__(
        self,
        runner: BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        listener: str,
        backlog: int = 128,
        protocol_factory: Callable[[], asyncio.BaseProtocol] | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._listener = listener  # "client", "peer" or "metrics", for the log lines
        self._factory = protocol_factory  # None: aiohttp's own (no gRPC on this listener)
        self._acceptor: TLSAcceptor | None = None

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        factory = self._factory or self._runner.server
        assert factory is not None
        assert self._ssl_context is not None
        self._acceptor = TLSAcceptor(
            self._host,
            self._port,
            ssl_context=self._ssl_context,
            listener=self._listener,
            protocol_factory=factory,
            backlog=self._backlog,
        )
        await self._acceptor.start()

    async def stop(self) -> None:
        self._runner._check_site(self)
        if self._acceptor is not None:
            await self._acceptor.stop()
        self._runner._unreg_site(self)
