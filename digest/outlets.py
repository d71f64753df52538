"""Who wrote an item that an aggregator's feed carries. Pure.

Yandex News and Google News feeds carry many outlets' reports, each link naming the article it
stands for (`https://news.yandex.ru/yandsearch?cl4url=ria.ru%2F...`, `https://news.google.com/
news/url?...&url=https://www.reuters.com/...`). The site that link names wrote the item: a press
review cites it ("ria.ru reports: ..."), and two of them on one event are two outlets telling it,
not one outlet's series (`digest.cluster`). parse links the item to that article itself, not
through the aggregator's redirect, and keeps the site as the item's outlet.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import SplitResult, parse_qsl, urlsplit

_FORWARDS = ("cl4url", "url", "u")  # query parameters an aggregator's link names the article in


def split_url(url: str) -> SplitResult | None:
    """`urlsplit`, or None where it refuses the address ("http://[bad/": a bracketed host that is no
    IPv6 address). Links here come from feeds as publishers wrote them: one malformed link must cost
    only itself, not the parse of its whole feed or the edition that cites it."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _hostname(url: str | None) -> str:
    """A link's host, lower-cased ("" when it has none or is malformed)."""
    parts = split_url(url or "")
    return (parts.hostname or "") if parts is not None else ""


def site(url: str | None) -> str:
    """A link's host without "www.": the site it is on ("" when it has none)."""
    return _hostname(url).removeprefix("www.")


def linked_article(url: str | None) -> str | None:
    """The article an aggregator's link stands for, as an absolute URL ("ria.ru/..." is read as
    https), or None for any other link: a publisher's own, one back to its own site, a bare host, a
    value that is no address."""
    if not url or "?" not in url:
        return None
    parts = split_url(url)
    for name, value in parse_qsl(parts.query) if parts is not None else ():
        if name in _FORWARDS and value:
            article = value if "://" in value else "https://" + value
            target = split_url(article)
            host = site(article)
            if (
                target is not None
                and target.scheme in ("http", "https")
                and "." in host
                and target.path not in ("", "/")
                and host != site(url)
            ):
                return article
    return None


# Medium's topic and tag feeds ("Handpicked stories about Technology on Medium") carry many
# publications' stories, each summary closing with a paragraph that links the story and names its
# publication: "Continue reading on NewCo Shift »". "Continue reading on Medium »" is a writer's own.
_READ_ON = re.compile(
    r'<a\s[^>]*href="([^"]*)"[^>]*>\s*Continue reading on ([^<]{1,60}?)\s*(?:»|&raquo;)\s*</a>(?:\s|</\w+>)*$'
)


def read_on(summary_html: str, url: str | None) -> str | None:
    """The publication that a summary's closing "Continue reading on <publication> »" link to the
    item's own article names (Medium's feeds), or None."""
    if not url or "Continue reading on" not in summary_html[-300:]:
        return None
    m = _READ_ON.search(summary_html, max(0, len(summary_html) - 400))
    if m is None or not same_article(m.group(1), url):
        return None
    name = " ".join(html.unescape(m.group(2)).split())
    return None if not name or name.casefold() == "medium" else name


def same_article(link: str, url: str) -> bool:
    """Whether a link as HTML writes it (entities and all) is the article at `url`: its fragment
    ("...#more-602924"), its scheme and a trailing slash aside."""
    return _article(html.unescape(link)) == _article(url)


def _article(url: str) -> str:
    return url.split("#", 1)[0].rstrip("/").removeprefix("https:").removeprefix("http:")


# Second-level labels under which a country's registry gives out names: "folha.uol.com.br" is
# uol.com.br's, "bbc.co.uk" is the BBC's own.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu", "ne", "or"})


def domain(host: str) -> str:
    """The name a host's owner registered: "www1.folha.uol.com.br" -> "uol.com.br", "news.bbc.co.uk"
    -> "bbc.co.uk", "news.ycombinator.com" -> "ycombinator.com" (a rule of thumb, not the public
    suffix list: it only tells whether two links are one site's)."""
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def linked_site(url: str | None) -> str | None:
    """The site (host without "www.") of the article an aggregator's link stands for, or None."""
    article = linked_article(url)
    return site(article) if article else None


# Where a feed's title joins the outlet's name to its section's: "World – The Indian Express",
# "SPIEGEL ONLINE - Nachrichten", "NYT > Home Page", "Home | Mail Online".
# A pattern, not compiled here: `re` compiles it on first use and keeps it (not on the poll's path).
_SEPARATOR = r"\s+[-–—|>/»›·]\s+|:\s+"
# Host labels that name no outlet: "rss.nytimes.com" is the New York Times', "news.example.org" example's.
_GENERIC_LABELS = frozenset({"www", "rss", "feed", "feeds", "news", "blog", "blogs", "api", "xml", "static", "com"})
# Platforms that host many outlets' feeds: "strava-engineering - Medium" is not Medium's own.
_PLATFORMS = frozenset({"medium", "substack", "blogspot", "wordpress", "tumblr", "typepad", "feedburner", "feedproxy"})
# Words that say what a feed or a page is, not who publishes it: "Home | Mail Online", "World News
# Articles | Mail Online", "Jornal de Notícias - Últimas Notícias", "Пресс-релизы" (the Bank of
# Russia's). A part of a feed's title made of these alone is the page, and the outlet is the other part.
_PAGE_WORDS_TEXT = """
    home homepage front page pages latest newest last news top stories story articles article posts all
    headlines breaking rss feed feeds channel updates edition world international national politics
    recent submissions commits releases release notes
    business sport sports opinion the of and
    accueil actualités actualites actualité actualite infos info dernières dernieres une à la le les en continu monde
    startseite nachrichten neueste meldungen schlagzeilen aktuell aktuelle alle artikel politik ausland welt
    portada noticias últimas ultimas inicio titulares mundo internacional el las los
    ultime ultima notizie ora cronaca cronache mondo esteri prima pagina
    notícias início capa
    главная новости последние пресс релизы лента все публикации статьи мир в
"""
_PAGE_WORDS = frozenset(_PAGE_WORDS_TEXT.split())
# Medium's titles for a publication's tag and for a writer's stories, also on a publication's own
# domain: "Software Development in Hacker Noon on Medium", "Stories by Jo Fenwick on Medium".
_ON_MEDIUM = r"(?:.+? in (?P<publication>.+)|Stories by (?P<writer>.+)) on Medium"


@lru_cache(maxsize=4096)  # per stored item, for the few feeds of an edition
def outlet_name(title: str, feed_url: str, site_url: str | None = None, rights: str | None = None) -> str:
    """The outlet's name in a feed's title: the part of it that names the feed's site, else the title.

    The feed's site is its URL's host, else the host of the site the feed links to (its channel's
    `<link>`, `site_url`): a feed served from FeedBurner, a CDN or a mirror ("World – The Harbour
    Gazette" at feeds.feedburner.com, linking harbourgazette.example) names its outlet by that link.

    A press review cites an outlet by name, and feeds' titles carry more: "World – The Indian
    Express" at indianexpress.com is "The Indian Express", "SPIEGEL ONLINE - Nachrichten" at
    spiegel.de "SPIEGEL ONLINE", "NYT > Home Page" at nytimes.com "NYT". Only a part that the feed's
    host names is taken (a label of three letters or more in it, or it in a label, compared in
    ASCII, or its first word opening a label: "BBC News اردو" at bbcurdu.com). A title that
    describes a page of a site names the site after "on": "cs.LG updates on arXiv.org" is
    "arXiv.org", "Handpicked stories about Technology on Medium" "Medium". When no part names a
    host, a part made of words that name a page (`_PAGE_WORDS`: "Home", "World News Articles",
    "Últimas Notícias", "newest submissions") is not the outlet: "Home | Mail Online" at
    dailymail.co.uk is "Mail Online", and what a page lists the news of ("newest submissions :
    homelab", "Recent Commits to v2:main") is named as the channel's link writes it, under its
    owner ("r/homelab", "miniflux/v2"); a title that names only the page ("Пресс-релизы" at
    cbr.ru) gives the site, "cbr.ru"; a title of two names or more that name no host ("Harbour |
    Evening Courier", a feed on feedburner.com that links no site) stays as it is, not a guess. On
    a platform that hosts many outlets, the part that is not the platform's name is the outlet
    ("strava-engineering - Medium"), as are the publication and the writer Medium's titles name
    ("Software Development in Hacker Noon on Medium"). Last, a name that is an address is cited as
    a reader says it (`_as_said`): "www.finanzen.net" as "finanzen.net", "CNN.com" as "CNN"; and an
    acronym as the name it stands for where the feed's copyright line (`rights`) names that and the
    host spells it (`_spelt_out`): "NYT" whose copyright is "The New York Times Company", at
    nytimes.com, is "The New York Times". The operator's `name` for a feed beats all of this.
    """
    said = _as_said(_named(title, feed_url, site_url))
    return _spelt_out(said, rights, (feed_url, site_url)) or said


def _named(title: str, feed_url: str, site_url: str | None) -> str:
    """`outlet_name` before `_as_said`."""
    named = _outlet_at(title, feed_url)
    if named is None and site_url and site(site_url) != site(feed_url):
        named = _outlet_at(title, site_url)
    if named is not None:
        return named
    # No part names a host: the one part that is not a page's name, or for a title that names only
    # the page the site, what a reader knows it by; else the title as it is.
    parts = _parts(title)
    names = [p for p in parts if not _is_page(p)]
    if not names:
        return domain(_hostname(site_url or feed_url).removeprefix("www.")) or title
    if len(names) == 1 and len(parts) > 1:
        return _under_owner(_without_suffix(names[0], _hostname(site_url or feed_url).split(".")), site_url, feed_url)
    listed = _LISTED.fullmatch(title)
    if listed is not None and _is_page(listed.group("page")) and not _is_page(listed.group("name")):
        return _under_owner(listed.group("name"), site_url, feed_url)
    return title


# A title that says what a page lists and whose: "Recent Commits to v2:main", "Release notes from
# gulp" (GitHub). Two words of a page's at least, then one name: "News of the World" is a name.
_LISTED = re.compile(r"(?P<page>\S+\s.*?)\s+(?:to|from|for|of|at)\s+(?P<name>\S+)")


def _under_owner(name: str, *urls: str | None) -> str:
    """A name a page lists the news of, as the channel's link writes it under its owner: "homelab"
    at reddit.com/r/homelab/new is "r/homelab", "v2:main" (a repository and its branch) at
    github.com/miniflux/v2/commits/main "miniflux/v2"; else the name as it is."""
    bare = name.split(":", 1)[0].casefold()
    for url in urls:
        parts = split_url(url or "")
        segments = [s for s in (parts.path if parts is not None else "").split("/") if s]
        if len(segments) >= 2 and segments[1].casefold() == bare:
            return f"{segments[0]}/{segments[1]}"
    return name


# An address's suffixes that only say "a website" after a brand: "CNN.com", "Meduza.io". A country's
# or an organisation's is often the brand's own ("20minutos.es", "Lenta.ru", "kottke.org"), and stays.
_WEB_SUFFIXES = (".com", ".io")
# A name written as a host: "www.finanzen.net", "Koerant.co.za".
_HOST_NAME = re.compile(r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}")


def _as_said(name: str) -> str:
    """A name that is an address as a reader says it: its registrable part, as the title writes it
    ("www.finanzen.net" -> "finanzen.net"), and a brand written with a capital less its ".com" or
    ".io" ("CNN.com" -> "CNN", "Meduza.io" -> "Meduza"); "kottke.org", "20minutos.es" and
    "tmz.com" (written as an address, not as a name) stay."""
    if _HOST_NAME.fullmatch(name) is None:
        return name
    labels = name.split(".")
    name = ".".join(labels[-len(domain(name.casefold()).split(".")) :])
    for suffix in _WEB_SUFFIXES:
        brand = name[: -len(suffix)]
        if name.casefold().endswith(suffix) and "." not in brand and any(map(str.isupper, brand)):
            return brand
    return name


def cited_name(
    name: str | None, title: str | None, feed_url: str, site_url: str | None = None, rights: str | None = None
) -> str:
    """What an edition cites a feed as: the operator's name, else the outlet its title names
    (`outlet_name`), else its URL."""
    return name or (outlet_name(title, feed_url, site_url, rights) if title else feed_url)


# An acronym a title may cite its outlet by ("NYT"), and what a copyright line says around its
# owner's name: the copyright words, years, and the company's legal form after it.
_ACRONYM = re.compile(r"[A-Z]{2,5}")
_COPYRIGHT = re.compile(r"(?i)^(?:\s|copyright\b|©|\(c\)|\d{4}(?:\s*[-–]\s*\d{4})?\b|,)*")
_LEGAL_FORMS = frozenset(
    {"company", "co", "inc", "incorporated", "corp", "corporation", "ltd", "limited", "llc", "plc"}
    | {"gmbh", "ag", "kg", "sa", "group", "holdings"}
)
_ARTICLES = frozenset({"the", "a", "an", "le", "la", "les", "der", "die", "das", "el", "il", "o", "os"})


def _owner(rights: str) -> list[str]:
    """The words of the name a copyright line gives its owner: "Copyright 2017  The New York Times
    Company" -> The New York Times; what follows a sentence's end ("All rights reserved") is not it."""
    text = _COPYRIGHT.sub("", rights).split(". ", 1)[0].split(",", 1)[0].rstrip(".")
    words = text.split()
    while words and words[-1].casefold().rstrip(".") in _LEGAL_FORMS:
        words.pop()
    return words


def _spelt_out(name: str, rights: str | None, urls: tuple[str | None, ...]) -> str | None:
    """The name an acronym stands for, or None: the owner a feed's copyright line names, when its
    words' initials are the acronym (an article before them aside) and the feed's site is spelt of
    those words, each by its initial or whole ("nytimes": N, Y, Times). A title's acronym is how the
    publication abbreviates itself; the copyright line and the host say it in full. A parent company
    ("Turner Broadcasting System" for CNN) is another name, and is not taken."""
    if not rights or _ACRONYM.fullmatch(name) is None:
        return None
    words = _owner(rights)
    named = words[1:] if words and words[0].casefold() in _ARTICLES else words
    if "".join(w[:1] for w in named).casefold() != name.casefold():
        return None
    folded = [re.sub(r"[^a-z0-9]", "", w.casefold()) for w in named]
    labels = {domain(_hostname(url).removeprefix("www.")).split(".")[0] for url in urls if url}
    return " ".join(words) if any(_spells(label, folded) for label in labels) else None


def _spells(label: str, words: list[str]) -> bool:
    """Whether `label` is `words` run together, each written whole or by its initial."""
    if not words:
        return not label
    head, rest = words[0], words[1:]
    return any(label.startswith(part) and _spells(label[len(part) :], rest) for part in {head[:1], head} if part)


def _outlet_at(title: str, feed_url: str) -> str | None:
    """`outlet_name` by one address's host: None when no part of the title names it."""
    from digest.words import fold  # "Хабр" as "khabr"; imported here: polling never names outlets

    medium = re.fullmatch(_ON_MEDIUM, title)
    if medium is not None:
        return medium.group("publication") or medium.group("writer")
    parts = _parts(title)
    host = _hostname(feed_url).split(".")
    labels = [label for label in host[:-1] if len(label) >= 3 and label not in _GENERIC_LABELS]
    # A page of a site, described: "cs.LG updates on arXiv.org", "Handpicked stories about
    # Technology on Medium", a title of one part. The name after "on" spells a label of the host
    # whole: "Joel on Software" at joelonsoftware.com is a name, "Software" only a part of its host's.
    what, on, where = title.rpartition(" on ")
    if on and what and len(parts) < 2 and labels and any(label.replace("-", "") in fold(where) for label in labels):
        return where
    if len(parts) < 2:
        return _named_run(title, host, fold)
    if _PLATFORMS.intersection(host):
        # The platform's own name is where the feed is published, not who writes it.
        own = [p for p in parts if fold(p) not in _PLATFORMS]
        return own[0] if len(own) == 1 else None
    for part in parts if labels else ():
        folded = fold(part)
        if any(label.replace("-", "") in folded or (len(folded) >= 3 and folded in label) for label in labels):
            return _without_suffix(part, host)
    # A brand that shortens its host's name ("HuffPost Canada" at huffingtonpost.ca): a part whose
    # first word is a label contracted, when one part's is; else one whose first word opens a label
    # ("BBC News اردو - <a topic's page>" at bbcurdu.com), a word of three letters or more that names
    # no page ("The", "News" open many hosts' names).
    short = [p for p in parts if labels and any(_shortens(fold(p.split()[0]), label) for label in labels)]
    if not short:
        short = [p for p in parts if labels and any(_opens(p.split()[0], label, fold) for label in labels)]
    return _without_suffix(short[0], host) if len(short) == 1 else None


def _opens(word: str, label: str, fold: Callable[[str], str]) -> bool:
    """Whether `word` (three letters or more, naming no page) begins `label` and is not all of it."""
    folded = fold(word)
    return len(folded) >= 3 and len(folded) < len(label) and label.startswith(folded) and not _is_page(word)


def _shortens(word: str, label: str) -> bool:
    """Whether `word` (4 letters or more) is `label` contracted: its letters in order, beginning with
    the label's first two and ending with its last three ("huffpost", "huffingtonpost"); "harbour"
    does not contract "harbingercourier"."""
    if len(word) < 4 or len(word) >= len(label) or word[:2] != label[:2] or word[-3:] != label[-3:]:
        return False
    rest = iter(label)
    return all(ch in rest for ch in word)


def _parts(title: str) -> list[str]:
    return [p.strip() for p in re.split(_SEPARATOR, title) if p.strip()]


def _is_page(text: str) -> bool:
    """Whether a title or a part of one is made of `_PAGE_WORDS` alone: a page's name, not an outlet's."""
    found = re.findall(r"[^\W_]+", text.casefold())
    return bool(found) and _PAGE_WORDS.issuperset(found)


def _without_suffix(name: str, host: list[str]) -> str:
    """A name of several words without its site's domain suffix: "Le Monde.fr" at lemonde.fr is cited
    as "Le Monde", as a reader says it; a one-word name that is its address ("20minutos.es",
    "Lenta.ru") is the brand, and stays."""
    if " " not in name:
        return name
    for k in range(1, len(host)):  # the longest suffix first: ".co.uk" before ".uk"
        suffix = "." + ".".join(host[k:])
        if name.casefold().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)].rstrip()
    return name


def _named_run(title: str, host: list[str], fold: Callable[[str], str]) -> str | None:
    """The words of a title with no separator that spell a label of its feed's host, whole:
    "TreeHugger" in "Latest Items from TreeHugger" at treehugger.com, "Japan Times" in "Japan
    Times latest articles" at japantimes.co.jp; None when no run of words spells one, or when it
    leaves one word only."""
    if _PLATFORMS.intersection(host):
        return None
    labels = {label.replace("-", "") for label in host[:-1] if len(label) >= 4 and label not in _GENERIC_LABELS}
    title_words = title.split()
    if not labels or len(title_words) < 2:
        return None
    folded = [fold(w) for w in title_words]
    for start in range(len(title_words)):
        run = ""
        for end in range(start, len(title_words)):
            run += folded[end]
            if run in labels:
                # A title that is the name with a word about it ("The Harbour Gazette", "TreeHugger
                # Blog") is the outlet's name already.
                return " ".join(title_words[start : end + 1]) if len(title_words) - (end + 1 - start) >= 2 else None
            if not any(label.startswith(run) for label in labels):
                break
    return None
