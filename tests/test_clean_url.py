"""clean_url's shortcut for links already in canonical form gives exactly what the full path gives."""

from __future__ import annotations

import random
import re

import pytest

from digest import sanitize
from digest.sanitize import clean_url


@pytest.mark.parametrize(
    ("url", "cleaned"),
    [
        ("https://news.example.org/a/b.html?utm_source=rss&id=7#top", "https://news.example.org/a/b.html?id=7"),
        ("https://news.example.org:443/x?utm_medium=feed", "https://news.example.org/x"),
        ("http://news.example.org:80", "http://news.example.org/"),
        ("http://news.example.org:0080/", "http://news.example.org/"),
        ("http://news.example.org:8080/?", "http://news.example.org:8080/"),
        ("http://news.example.org:65536/", None),
        ("https://news.example.org/p?q=1&fbclid=x&a=%20b", "https://news.example.org/p?q=1&a=%20b"),
        ("HTTPS://News.Example.org/Path", "https://news.example.org/Path"),
        # Newspapers' analytics markers, as their feeds write them; the publisher's own parameter stays.
        (
            "https://www.lemonde.fr/europe/article/2018/x_5308610.html?xtor=RSS-3208",
            "https://www.lemonde.fr/europe/article/2018/x_5308610.html",
        ),
        (
            "https://www.heise.de/meldung/x-3347401.html?wt_mc=rss.ho.beitrag.rdf",
            "https://www.heise.de/meldung/x-3347401.html",
        ),
        (
            "http://www.dailymail.co.uk/a-227.html?ITO=1490&ns_mchannel=rss&ns_campaign=1490",
            "http://www.dailymail.co.uk/a-227.html?ITO=1490",
        ),
        (
            "http://www.nytimes.com/2017/01/07/fashion/table-for-three.html?partner=rss&emc=rss",
            "http://www.nytimes.com/2017/01/07/fashion/table-for-three.html",
        ),
        # "partner" is only the feed's marker when it names the feed; another value is the site's.
        ("https://shop.example/p?partner=acme&id=3", "https://shop.example/p?partner=acme&id=3"),
        ("https://news.example/a.html?partner=RSS&x=1", "https://news.example/a.html?x=1"),
    ],
)
def test_canonical_links_lose_default_ports_tracking_and_fragments(url: str, cleaned: str | None) -> None:
    assert clean_url(url) == cleaned


_PIECES = "abcXYZ019/%:@!$&'()*+,;=._~?#-"
_AWKWARD = _PIECES + '[]\\ "<>^`{}|é\t'


def _urls(rng: random.Random, alphabet: str, n: int) -> list[str]:
    schemes = ["http", "https", "HTTP", "ftp", "javascript"]
    hosts = ["a.example", "x", "A.B", "127.0.0.1", "[::1]", "a..b", "рф.рф", "u:p@h.x", "ex.com."]
    ports = ["", ":80", ":443", ":8080", ":0", ":65536", ":", ":080"]
    out = []
    for _ in range(n):
        tail = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        url = f"{rng.choice(schemes)}://{rng.choice(hosts)}{rng.choice(ports)}{rng.choice(['', '/', '/p', '?'])}{tail}"
        if rng.random() < 0.3:
            url += ("&" if "?" in url else "?") + "utm_source=x&a=1&fbclid=2"
        out.append(url)
    return out


def test_the_canonical_shortcut_agrees_with_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    urls = _urls(rng, _PIECES, 3000) + _urls(rng, _AWKWARD, 3000)
    options = [(True, True), (False, True), (False, False)]
    fast = [
        sanitize._clean(u, "http://base.example/d/f.xml", keep_fragment=k, strip_params=s)
        for u in urls
        for k, s in options
    ]
    shortcut_taken = sum(sanitize._CANONICAL_URL.fullmatch(u) is not None for u in urls)
    monkeypatch.setattr(sanitize, "_CANONICAL_URL", re.compile(r"(?!)"))  # never matches: the full path only
    full = [
        sanitize._clean(u, "http://base.example/d/f.xml", keep_fragment=k, strip_params=s)
        for u in urls
        for k, s in options
    ]
    assert shortcut_taken > 500
    assert fast == full
