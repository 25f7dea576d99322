"""Which merchant image URLs the approval page may show, and the origins its CSP lets images load from.

An image URL comes from the merchant's catalog, which we do not write. Its origin goes into the
page's ``Content-Security-Policy`` header, so a URL such as ``https://a.com; script-src *`` would
add a directive if it were copied there. Nothing is copied: the origin is rebuilt from parts that
were each checked (scheme ``https``, a hostname valid under IDNA, in its ASCII form, and an
optional port), and an image whose URL fails any check is not shown at all (the page shows its
placeholder). The one other scheme is plain ``http`` to a loopback host: the local stack's
sandbox merchant, which only the approver's own machine can reach.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

# Whitespace, control characters, quotes, angle brackets, backslashes and backticks are never part
# of a well-formed URL (RFC 3986), and a browser or a header parser may read them as separators.
_FORBIDDEN = re.compile(
    r"[\x00-\x20\x7f-\x9f\"'<>\\`\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOOPBACK_NAMES = frozenset({"localhost"})
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class ImageSource:
    url: str  # what the page's <img src> gets: the URL with its host in ASCII form
    origin: str  # what the CSP's img-src gets: scheme, ASCII host and port, nothing else


def image_source(url: str | None) -> ImageSource | None:
    """The image and its origin, or None when the URL is anything but a plain web image URL."""
    if not url or len(url) > MAX_URL_LENGTH or _FORBIDDEN.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    # The authority is the host and the port, nothing else: no userinfo, no empty port.
    expected = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if parts.netloc.lower() != expected:
        return None
    host = _ascii_host(parts.hostname)
    if host is None or not _allowed_scheme(parts.scheme, host):
        return None
    netloc = host if port is None else f"{host}:{port}"
    origin = f"{parts.scheme}://{netloc}"
    return ImageSource(
        url=urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), origin=origin
    )


def _ascii_host(hostname: str | None) -> str | None:
    """The hostname in its ASCII (punycode) form, or None unless it is a valid DNS name (an IPv4
    address is one too, label by label)."""
    if not hostname:
        return None
    try:
        ascii_name = idna.encode(hostname.rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return ascii_name


def _allowed_scheme(scheme: str, host: str) -> bool:
    if scheme == "https":
        return True
    return scheme == "http" and _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False
