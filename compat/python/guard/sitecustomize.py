"""Loaded (through PYTHONPATH) by the application process test_proxy.py starts: refuses every name
lookup but loopback's, so a library that ignored HTTPS_PROXY fails at once, naming the host, instead
of trying to reach Microsoft's real servers. Through a proxy a client looks up only the proxy's own
address (127.0.0.1); the hosts it asks the proxy for are never resolved by the client."""

import socket

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name not in _LOOPBACK:
        raise socket.gaierror(
            socket.EAI_NONAME,
            f"compat guard: {name} was looked up to be reached directly, not through HTTPS_PROXY",
        )
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only
