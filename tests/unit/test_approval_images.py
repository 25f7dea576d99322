"""Only checked https origins reach the approval page's CSP; any other image URL is not shown (issue 11, row 14)."""

from __future__ import annotations

import pytest

from cartpilot.approvals.images import image_source

HOSTILE = [
    "https://a.com; script-src *",
    "https://a.com;script-src 'unsafe-inline'",
    "https://a.com/x.png; form-action https://evil.example",
    "https://a.com x.png",
    "https://a.com\tscript-src",
    "https://a.com\n; script-src *",
    "https://a.com\r\nX-Injected: 1",
    "https://a.com\u3000/x.png",
    'https://a.com"/x.png',
    "https://a.com'/x.png",
    "https://a.com`/x.png",
    "https://a.com, https://evil.example",
    "https://a.com,evil.example/x.png",
    "https://a.com<x>/x.png",
    "https://a.com\\@evil.example/x.png",
    "javascript:alert(1)",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "http://a.com/x.png",
    "ftp://a.com/x.png",
    "//a.com/x.png",
    "/media/x.png",
    "https://user:pass@a.com/x.png",
    "https://user@a.com/x.png",
    "https://@a.com/x.png",
    "https://a.com:/x.png",
    "https://a.com:99999/x.png",
    "https://a.com:8a/x.png",
    "https://a_b.com/x.png",
    "https://-a.com/x.png",
    "https://a..com/x.png",
    "https://*.a.com/x.png",
    "https://[::1]/x.png",
    "https:///x.png",
    "https://" + "a" * 64 + ".com/x.png",
    "http://evil.example:8080/x.png",
    "",
    None,
]


@pytest.mark.parametrize("url", HOSTILE)
def test_a_hostile_image_url_is_dropped(url: str | None):
    assert image_source(url) is None


@pytest.mark.parametrize(
    ("url", "origin", "src"),
    [
        ("https://img.example.com/a/b/shoe.png?w=200#x", "https://img.example.com", "https://img.example.com/a/b/shoe.png?w=200#x"),
        ("https://IMG.Example.com:8443/shoe.png", "https://img.example.com:8443", "https://img.example.com:8443/shoe.png"),
        ("https://bücher.example/書.png", "https://xn--bcher-kva.example", "https://xn--bcher-kva.example/書.png"),
        ("https://例子.测试/x.png", "https://xn--fsqu00a.xn--0zwm56d", "https://xn--fsqu00a.xn--0zwm56d/x.png"),
        ("https://cdn.example.com/a;b,c.png", "https://cdn.example.com", "https://cdn.example.com/a;b,c.png"),
        ("http://127.0.0.1:8081/media/x.svg", "http://127.0.0.1:8081", "http://127.0.0.1:8081/media/x.svg"),
        ("http://localhost:8081/media/x.svg", "http://localhost:8081", "http://localhost:8081/media/x.svg"),
    ],
)  # fmt: skip
def test_a_plain_web_image_keeps_its_url_and_gives_only_its_origin(url: str, origin: str, src: str):
    source = image_source(url)
    assert source is not None and (source.origin, source.url) == (origin, src)
