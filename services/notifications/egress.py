"""Outbound webhook HTTP behind the SSRF guard: checked by DNS before sending, and at connect time.

Checking the URL and then connecting resolves the name twice; a hostile DNS server can answer with a public
address for the check and 127.0.0.1 for the connection (DNS rebinding). So in production the session's
connections also check the address they actually connected to, before a byte of the request is sent.
"""

from __future__ import annotations

import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from services.notifications.domain import Resolver, UnsafeWebhookUrl, address_problem, check_webhook_url


def system_resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


class UrlGuard:
    """`check(url)` raises UnsafeWebhookUrl when webhooks may not go there (see domain.check_webhook_url)."""

    def __init__(self, allow_private: bool, resolve: Resolver = system_resolve):
        self.allow_private = allow_private
        self._resolve = resolve

    def check(self, url: str) -> None:
        check_webhook_url(url, allow_private=self.allow_private, resolve=self._resolve)


def _refuse_non_public_peer(sock: socket.socket) -> None:
    problem = address_problem(str(sock.getpeername()[0]))
    if problem:
        sock.close()
        raise UnsafeWebhookUrl(f"connected to {problem} address; webhooks go to public addresses only")


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _refuse_non_public_peer(sock)
        return sock


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _refuse_non_public_peer(sock)  # before the TLS handshake, so before any request byte
        return sock


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _PublicOnlyAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def webhook_session(allow_private: bool) -> requests.Session:
    """A requests Session for one dispatcher thread (Sessions are not shared across threads)."""
    session = requests.Session()
    if not allow_private:
        adapter = _PublicOnlyAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return session
