"""Loaded by every Python process of the Colab simulation's virtual environment
(tools/colab_sim.py): it makes `google.colab` importable and already imported, as in a Colab
runtime, and cuts the network off, so a chapter that fetches anything fails here as it would on
a Colab runtime without internet. Connections to this machine (the kernel's own) still work."""

import errno
import ipaddress
import socket

import google.colab  # noqa: F401  (a chapter tests `"google.colab" in sys.modules`)

_connect, _connect_ex, _getaddrinfo = (socket.socket.connect, socket.socket.connect_ex,
                                       socket.getaddrinfo)
_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}


def _is_local(host: object) -> bool:
    if not isinstance(host, str):
        return True  # a Unix socket's path, not a network address
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(host: object) -> OSError:
    return OSError(errno.ENETUNREACH, f"the Colab simulation has no network (asked for {host})")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if isinstance(address, tuple) and not _is_local(address[0]):
        raise _refuse(address[0])
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if isinstance(address, tuple) and not _is_local(address[0]):
        return errno.ENETUNREACH
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
        raise socket.gaierror(socket.EAI_NONAME, f"the Colab simulation has no network "
                                                 f"(asked for {host})")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
