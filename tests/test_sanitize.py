"""digest.sanitize: HTML allow-listing, URL cleaning, excerpts and header-safe text (E1-E5, R1-R4, P5)."""

from __future__ import annotations

import re

import pytest

from digest.sanitize import (
    MAX_DEPTH,
    clean_text,
    clean_url,
    drop_images,
    excerpt,
    excerpt_html,
    header_text,
    html_to_text,
    prose_text,
    redirect_target,
    repair_mojibake,
    sanitize_html,
)

BASE = "https://news.example/section/feed.xml"
# A first paragraph longer than a standfirst's least, ending with an ideographic full stop: a sentence.
_LONG_ZH = (
    "这是一个很长的第一段，它以中文句号结尾，后面还有更多的内容，"
    "所以它不是导语而是正文的一部分，读者应该看到后面的第二段和第三段的内容。"
)

# --------------------------------------------------------------------------- R1: XSS

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="https://ok.example/a.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">j</a>',
    '<a href="JaVaScRiPt:alert(1)">j</a>',
    '<a href="jav&#x09;ascript:alert(1)">j</a>',
    '<a href="jav&#x0A;ascript:alert(1)">j</a>',
    '<a href=" &#14;javascript:alert(1)">j</a>',
    '<a href="vbscript:msgbox(1)">v</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">d</a>',
    '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<math><mi xlink:href=javascript:alert(1)>m</mi></math>",
    '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    '<iframe src="https://evil.example/"></iframe>',
    '<base href="https://evil.example/">',
    '<form action="https://evil.example/"><input name=q><button>go</button></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x.swf">',
    '<div onclick="alert(1)" onmouseover="alert(2)">hover</div>',
    '<a href="https://ok.example/" target="_blank" onfocus="alert(1)" autofocus>x</a>',
    "<<script>script>alert(1)//<</script>/script>",
    '<img """><script>alert(1)</script>">',
    "<!--[if gte IE 4]><script>alert(1)</script><![endif]-->",
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">e</a>',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<video src="https://evil.example/v.mp4" poster="javascript:alert(1)"></video>',
    '<a href="https://ok.example/" style="position:fixed;top:0;left:0;width:100%;height:100%">cover</a>',
]
FORBIDDEN = re.compile(
    r"<script|<svg|<math|<iframe|<base|<form|<input|<meta|<object|<embed|<link|<video|<style"
    r"|\son\w+=|javascript:|vbscript:|data:|srcdoc|style=|evil\.example/x",
    re.IGNORECASE,
)


@pytest.mark.parametrize("payload", XSS)
def test_R1_nothing_executable_survives_sanitising(payload: str) -> None:
    out = sanitize_html(payload, base_url=BASE)
    assert not FORBIDDEN.search(out), out
    # Running it twice changes nothing: the output is already in its safe, canonical form.
    assert sanitize_html(out, base_url=BASE) == out


def test_R1_text_around_removed_elements_is_kept() -> None:
    out = sanitize_html("<p>before<script>alert(1)</script> after <iframe>inner</iframe>end</p>", base_url=BASE)
    assert out == "<p>before after end</p>"


# --------------------------------------------------------------------------- R2: CSS


@pytest.mark.parametrize(
    "payload",
    [
        '<p style="display:none">hidden</p>',
        '<p style="position:fixed">fixed</p>',
        '<span style="font-size:0">tiny</span>',
        '<span style="color:#fff">white on white</span>',
        '<div style="background:url(https://evil.example/track.png)">bg</div>',
        '<p class="hidden" id="top">named</p>',
    ],
)
def test_R2_style_class_and_id_attributes_are_removed(payload: str) -> None:
    out = sanitize_html(payload, base_url=BASE)
    assert not re.search(r"\s(style|class|id)=", out)
    assert "evil.example" not in out
    assert html_to_text(out) in {"hidden", "fixed", "tiny", "white on white", "bg", "named"}


def test_R2_style_blocks_are_removed_with_their_content() -> None:
    out = sanitize_html("<style>p { display:none }</style><p>shown</p>", base_url=BASE)
    assert out == "<p>shown</p>"


# --------------------------------------------------------------------------- R3: links


def test_R3_relative_links_resolve_against_the_base_and_get_noopener() -> None:
    out = sanitize_html('<a href="../story/1.html">s</a> <a href="/top">t</a>', base_url=BASE)
    assert 'href="https://news.example/story/1.html"' in out
    assert 'href="https://news.example/top"' in out
    assert out.count('rel="noopener noreferrer"') == 2


def test_R3_relative_links_without_a_base_lose_their_href() -> None:
    assert sanitize_html('<a href="/top">t</a>', base_url=None) == '<a rel="noopener noreferrer">t</a>'


def test_R3_only_http_https_and_mailto_links_remain() -> None:
    out = sanitize_html(
        '<a href="ftp://x.example/f">f</a><a href="file:///etc/passwd">p</a><a href="tel:123">t</a>'
        '<a href="mailto:desk@news.example">m</a><a href="http://x.example/">h</a>',
        base_url=BASE,
    )
    hrefs = re.findall(r'href="([^"]*)"', out)
    assert hrefs == ["mailto:desk@news.example", "http://x.example/"]


def test_R3_tracking_parameters_are_removed_from_links() -> None:
    out = sanitize_html(
        '<a href="https://x.example/a?id=5&utm_source=feed&UTM_Medium=rss&fbclid=1&gclid=2&mc_eid=3'
        '&_hsenc=4&yclid=5#section">a</a>',
        base_url=BASE,
    )
    assert 'href="https://x.example/a?id=5#section"' in out


# --------------------------------------------------------------------------- R4: pixels and images


@pytest.mark.parametrize(
    "img",
    [
        '<img src="https://t.example/p.gif" width="1" height="1">',
        '<img src="https://t.example/p.gif" width="0" height="0">',
        '<img src="https://t.example/p.gif" width="1px" height="1px">',
        '<img src="https://t.example/p.gif" height="1">',
        '<img src="https://feeds.feedburner.com/~r/example/~4/abc">',
        '<img src="https://stats.wordpress.com/b.gif?host=x">',
        '<img src="https://medium.com/_/stat?event=post.clientViewed">',
        '<img alt="no source">',
    ],
)
def test_R4_tracking_pixels_are_removed(img: str) -> None:
    assert sanitize_html(f"<p>text{img}</p>", base_url=BASE) == "<p>text</p>"


def test_R4_a_link_that_only_wrapped_a_pixel_goes_too() -> None:
    pixel = '<img src="https://t.example/p.gif" width="1" height="1">'
    out = sanitize_html(f'<p>x<a href="https://t.example/">{pixel}</a></p>', base_url=BASE)
    assert out == "<p>x</p>"


def test_R4_content_images_keep_src_alt_and_size_only() -> None:
    out = sanitize_html(
        '<img src="photo.jpg" alt="A harbour" width="640" height="480" srcset="x 2x" loading="lazy" title="t">',
        base_url=BASE,
    )
    assert out == '<img src="https://news.example/section/photo.jpg" alt="A harbour" width="640" height="480">'


def test_rtl_direction_is_kept_and_checked() -> None:
    assert sanitize_html('<p dir="RTL" lang="ur">متن</p><p dir="evil">x</p>', base_url=BASE) == (
        '<p dir="rtl" lang="ur">متن</p><p>x</p>'
    )


def test_R4_drop_images_applies_a_no_remote_images_policy() -> None:
    html = sanitize_html('<p>a<img src="https://i.example/x.jpg" alt="x"></p>', base_url=BASE)
    assert drop_images(html) == "<p>a</p>"


# --------------------------------------------------------------------------- P5: nesting


def test_P5_deeply_nested_markup_is_sanitised_without_blowing_up() -> None:
    html = "<div>" * 100_000 + "deep" + "</div>" * 100_000
    assert sanitize_html(html, base_url=BASE) == "deep"
    assert html_to_text("<p>" + "<span>" * 100_000 + "deep text") == "deep text"
    assert excerpt("<p>" + "<span>" * 100_000 + "deep text", 50) == ""  # no text in its window


def test_P5_ordinary_nesting_is_left_alone() -> None:
    html = "<ul>" + "<li>item" * (MAX_DEPTH * 3) + "</ul>"
    assert sanitize_html(html, base_url=BASE).count("<li>") == MAX_DEPTH * 3


# --------------------------------------------------------------------------- clean_url


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("https://x.example/a?b=1#frag", None, "https://x.example/a?b=1"),
        ("HTTP://X.Example:80/a", None, "http://x.example/a"),
        ("https://x.example:8443/a", None, "https://x.example:8443/a"),
        ("  https://x.example/a\n", None, "https://x.example/a"),
        ("https://x.example/a?utm_source=rss&utm_medium=feed", None, "https://x.example/a"),
        ("https://x.example/a?q=1&fbclid=abc&p=2", None, "https://x.example/a?q=1&p=2"),
        ("https://x.example/a b/é", None, "https://x.example/a%20b/%C3%A9"),
        ("https://user:pw@x.example/a", None, "https://x.example/a"),
        ("https://trusted.example@evil.example/", None, "https://evil.example/"),
        ("https://bücher.example/", None, "https://xn--bcher-kva.example/"),
        # IDNA 2008 as browsers: IDNA 2003 spelt straße.de "strasse.de", another domain
        ("https://straße.de/a", None, "https://xn--strae-oqa.de/a"),
        ("https://Bücher.Example/", None, "https://xn--bcher-kva.example/"),
        ("https://☃.example/", None, "https://xn--n3h.example/"),  # IDNA 2008 refuses it; browsers open it
        ("https://[2001:db8::1]:8080/a", None, "https://[2001:db8::1]:8080/a"),
        ("https://x.example", None, "https://x.example/"),
        ("/path?x=1", "https://x.example/feed", "https://x.example/path?x=1"),
        ("item.html", "https://x.example/dir/feed.xml", "https://x.example/dir/item.html"),
        ("//cdn.example/i.png", "https://x.example/", "https://cdn.example/i.png"),
        ("/path", None, None),
        ("//cdn.example/i.png", None, None),
        ("javascript:alert(1)", None, None),
        ("java\tscript:alert(1)", None, None),
        ("data:text/html,hi", None, None),
        ("mailto:a@b.example", None, None),
        ("file:///etc/passwd", None, None),
        ("ftp://x.example/f", None, None),
        ("htpt://x.example/", None, None),
        ("http://", None, None),
        ("https://x.example:99999/", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_clean_url_gives_an_absolute_http_url_or_none(raw: str | None, base: str | None, expected: str | None) -> None:
    assert clean_url(raw, base_url=base) == expected


def test_clean_url_is_idempotent() -> None:
    once = clean_url("https://X.example/a b?utm_source=x&k=v#f")
    assert once is not None and clean_url(once) == once


# --------------------------------------------------------------------------- text


def test_excerpt_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    html = "<p>The harbour board met on Tuesday</p><p>and agreed a new timetable.</p>"
    assert excerpt(html, 30) == "The harbour board met on…"
    assert excerpt(html, 500) == "The harbour board met on Tuesday and agreed a new timetable."
    assert len(excerpt(html, 30)) <= 30


def test_a_cut_excerpt_never_ends_on_a_bare_address() -> None:
    # Boing Boing's summaries end with the video's address; cut there, the "…" was glued to it
    # ("quality: https://www.youtube.com/watch?v=vl3rf…"), a link no client opens right.
    html = (
        "<p>A chemist works out what the parts of a body would fetch, and finds the answer depends on "
        "the market: https://video.example.org/watch?v=abc123 and more after it</p>"
    )
    assert excerpt(html, 145) == (
        "A chemist works out what the parts of a body would fetch, and finds the answer depends on the market…"
    )
    assert excerpt_html(html, 145).endswith("market…")
    # An address inside the kept text, not at its end, stays; so does one that is most of the text.
    assert "https://a.example.org/x" in excerpt(
        "<p>See https://a.example.org/x for the full list of the winners</p>", 40
    )
    assert excerpt("<p>https://a.example.org/a-very-long-address-of-one-page and words</p>", 30).startswith("https://")


def test_excerpt_separates_blocks_and_decodes_entities() -> None:
    assert excerpt("<p>one</p><p>two</p><br>three &amp; four&nbsp;five", 100) == "one two three & four five"


def test_excerpt_of_text_without_spaces_is_cut_hard() -> None:
    assert excerpt("<p>" + "港" * 50 + "</p>", 10) == "港" * 9 + "…"


def test_excerpt_of_zero_length_is_empty() -> None:
    assert excerpt("<p>text</p>", 0) == ""


def test_excerpt_leaves_out_script_and_style_text() -> None:
    assert excerpt("<style>p{}</style><script>var x;</script><p>body</p>", 50) == "body"


def test_clean_text_strips_controls_and_bidi_overrides() -> None:
    raw = "a\u202eb\u202c c\u2066d\u2069 e\x00f\x1bg\x85h\u2028i\u2029j\ufeffk\x9bl"
    assert clean_text(raw) == "ab cd efg h i jkl"


def test_clean_text_keeps_joiners_that_scripts_need() -> None:
    urdu = "پاکستان\u200cکے"
    assert clean_text(urdu) == urdu


def test_clean_text_collapses_whitespace_and_caps_length() -> None:
    assert clean_text("  many \t\n  spaces\u00a0here  ") == "many spaces here"
    assert clean_text("word " * 100, limit=20) == "word word word word…"


@pytest.mark.parametrize("breaker", ["\r", "\n", "\r\n", "\x00", "\x85", "\u2028", "\u2029", "\x0b", "\x0c"])
def test_E5_header_text_is_one_line(breaker: str) -> None:
    out = header_text(f"Big news{breaker}Bcc: victim@example.com")
    assert out == "Big news Bcc: victim@example.com"
    assert not re.search(r"[\r\n\x00\x85\u2028\u2029\x0b\x0c]", out)


def test_E5_header_text_is_capped() -> None:
    assert len(header_text("x" * 1000, limit=78)) == 78


MEDIUM_BODY = (
    '<figure><img alt="" src="https://cdn.example/1.jpeg"><figcaption><em>Image: </em>'
    '<a href="https://photos.example/"><em>The&nbsp;Wire</em></a></figcaption></figure>'
    '<p><em>By </em><a href="https://social.example/jo"><em>Jo&nbsp;Fenwick</em></a></p>'
    "<p>The harbour board bought the old ferry line for $7.5 million. What does it mean?</p>"
    "<h3><strong>1. From ferries to freight</strong></h3><p>The first change is the timetable.</p>"
    '<blockquote class="twitter-tweet"><p>Big day at the quay! pic.twitter.com/x</p></blockquote>'
    "<pre>route = ferry.route()</pre><table><tr><td>fare</td><td>3</td></tr></table>"
)


def test_prose_text_leaves_out_captions_a_byline_subheadings_quotes_code_and_tables() -> None:
    assert prose_text(MEDIUM_BODY) == (
        "The harbour board bought the old ferry line for $7.5 million. What does it mean?"
        " The first change is the timetable."
    )
    # The stored excerpt reads the same prose, and the HTML excerpt shows the same text.
    assert excerpt(MEDIUM_BODY, 60) == "The harbour board bought the old ferry line for $7.5…"
    assert html_to_text(excerpt_html(MEDIUM_BODY, 500)).startswith("The harbour board bought")


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>By the numbers: 40 ferries, 3 quays.</p>", "By the numbers: 40 ferries, 3 quays."),  # "the" is no name
        ("<p>By Ana de la Cruz</p><p>Fares rise.</p>", "Fares rise."),
        ("<p>Par Jean-Luc Moreau</p><p>Les tarifs augmentent.</p>", "Les tarifs augmentent."),
        ("<p>The board met. By Friday it had decided.</p>", "The board met. By Friday it had decided."),
        ("<p>Fares rise.</p><p>By Jo Fenwick</p>", "Fares rise. By Jo Fenwick"),  # only an opening byline
        # A credit in capitals, as 20minutos opens its summaries with its photo's.
        ("<p>EUROPA PRESS</p> <ul><li>Las tarifas suben.</li></ul>", "Las tarifas suben."),
        ("<p>ISABEL SERRANO</p><p>Las tarifas suben.</p>", "Las tarifas suben."),
        ("<p>NASA launches a probe.</p><p>It flies.</p>", "NASA launches a probe. It flies."),  # a sentence
        # A script without case has no capitals: a short opening paragraph in it is prose (netease's blog).
        ("<p>刚才看到一位豆友说：笑而不语啊。</p><p>更多内容。</p>", "刚才看到一位豆友说：笑而不语啊。 更多内容。"),
        ("<p>وزیر اعظم نے کہا</p><p>مزید تفصیل</p>", "وزیر اعظم نے کہا · مزید تفصیل"),
        # A wire report's dateline, as UOL passes Reuters', ANSA's, AFP's and EFE's copy on.
        ("BRASÍLIA (Reuters) - O candidato do PSL lidera.", "O candidato do PSL lidera."),
        ("<p>MOSCOU, 24 SET (ANSA) - O líder foi condenado.</p>", "O líder foi condenado."),
        ("<p>Quito, 24 Set 2018 (AFP) - O fundador do WikiLeaks.</p>", "O fundador do WikiLeaks."),
        ("Nova York, 24 set (EFE).- O índice subiu.", "O índice subiu."),
        ("<p>Rio de Janeiro, 3 jan (Agência Brasil) – A chuva.</p>", "A chuva."),
        ("<p><b>WASHINGTON (Reuters) —</b> Lawmakers met.</p>", "Lawmakers met."),
        ("Apple (AAPL) - shares rose.", "Apple (AAPL) - shares rose."),  # not an agency: a sentence
        ("The talks (AP) - were held.", "The talks (AP) - were held."),  # "talks" is no place's word
        ("Fares rise. LONDON (Reuters) - More.", "Fares rise. LONDON (Reuters) - More."),  # only an opening one
        ("WASHINGTON (Reuters) - ", "WASHINGTON (Reuters) -"),  # nothing else: kept
        # A standfirst, then the body (The Guardian): the standfirst alone, not "... contempt Donald Trump has".
        (
            "<p>The speech stirred applause on one side of the chamber and thinly disguised contempt on the other</p>"
            "<p>Donald Trump has promised a new moment.</p><p>Related: more</p>",
            "The speech stirred applause on one side of the chamber and thinly disguised contempt on the other",
        ),
        ("<p>Hi everyone,</p><p>I am building a server.</p>", "Hi everyone, I am building a server."),  # a greeting
        ("<p>Party time</p><p>Replay the live show.</p>", "Party time · Replay the live show."),  # too short: a kicker
        (
            "<p>The harbour authority published its plan for the winter ferries today.</p><p>Fares rise.</p>",
            "The harbour authority published its plan for the winter ferries today. Fares rise.",
        ),  # a sentence: the body goes on
        (
            '<p><cite>Henri</cite>: <a href="https://x.example/">'
            "Using a phone as a desktop computer when it is docked</a></p><p>Definitely want.</p>",
            "Henri: Using a phone as a desktop computer when it is docked · Definitely want.",
        ),  # a quote's source: the comment follows
        (
            f"<p>{_LONG_ZH}</p><p>第二段。</p>",
            f"{_LONG_ZH} 第二段。",
        ),
        ("<blockquote>Only a quoted line.</blockquote>", "Only a quoted line."),  # nothing else: kept whole
        ("<h2>Only a heading</h2>", "Only a heading"),
        ("plain &amp; simple", "plain & simple"),
        ("", ""),
    ],
)
def test_prose_text_keeps_prose_that_only_looks_like_a_byline(html: str, expected: str) -> None:
    assert prose_text(html) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ã©tÃ© Ã  Paris", "été à Paris"),
        ("Mike PenceÂ\xa0says", "Mike Pence\xa0says"),
        # The Indian Express ends titles with a double-encoded no-break space; feedparser strips its
        # "\xa0" as whitespace and leaves the "Â".
        ("Five killed at Fort Lauderdale airportÂ", "Five killed at Fort Lauderdale airport\xa0"),
        ("ÂLTIMO MINUTO", "ÂLTIMO MINUTO"),  # a capital Â that opens a word stays
        ("Clean text, nothing to do", "Clean text, nothing to do"),
    ],
)
def test_repair_mojibake_undoes_double_encoded_utf8(text: str, expected: str) -> None:
    assert repair_mojibake(text) == expected


def test_an_excerpt_drops_a_wire_dateline_and_closes_the_emphasis_it_opened() -> None:
    assert excerpt_html("<p><b>WASHINGTON (Reuters) —</b> Lawmakers <i>met</i>.</p>", 280) == "Lawmakers <i>met</i>."
    assert excerpt_html("<p>MOSCOU, 24 SET (ANSA) - O líder foi condenado.</p>", 280) == "O líder foi condenado."


@pytest.mark.parametrize(
    "body",
    [
        # As rss.arxiv.org writes its abstracts (text), and as a reader may get them in HTML.
        "arXiv:2611.04512v2 Announce Type: replace-cross \nAbstract: Tidal models of the harbour predict silting.",
        "<p>arXiv:2611.04512v2 Announce Type: new<br/>Abstract: Tidal models of the harbour predict silting.</p>",
    ],
)
def test_an_excerpt_of_an_arxiv_abstract_is_the_abstract_without_its_announcement(body: str) -> None:
    assert excerpt(body, 280) == "Tidal models of the harbour predict silting."
    assert prose_text(body) == "Tidal models of the harbour predict silting."
    assert excerpt_html(body, 280) == "Tidal models of the harbour predict silting."
    # A sentence that only mentions an identifier keeps it.
    cited = "arXiv:2611.04512 is cited by the harbour's survey. Announce Type: none."
    assert excerpt(cited, 280) == cited


def test_an_excerpt_of_a_standfirst_and_its_body_is_the_standfirst() -> None:
    html = (
        "<p>The speech stirred applause on one side and <em>thinly disguised contempt</em> on the other</p>"
        "<p>Donald Trump has promised a new moment.</p>"
    )
    assert (
        excerpt_html(html, 280)
        == "The speech stirred applause on one side and <em>thinly disguised contempt</em> on the other"
    )


def test_an_excerpt_counts_its_characters_as_the_text_it_shows() -> None:
    # TMZ writes U+FEFF around quotes ("&#65279;'Wizard of Oz&#65279;'"): counted in the HTML part
    # but not in its text, they cut the feed's closing "The…" to "Th", under the limit.
    html = (
        "<p>Jerry Maren, the last &#65279;'Wizard of Oz&#65279;' munchkin, died. His funeral was held. The&hellip;</p>"
    )
    assert excerpt_html(html, 280) == "Jerry Maren, the last 'Wizard of Oz' munchkin, died. His funeral was held. The…"
    # Cut, an excerpt says so, though the text it was cut from ends with the feed's own "…".
    assert excerpt_html(html, 40) == "Jerry Maren, the last 'Wizard of Oz'…"


@pytest.mark.parametrize("limit", [280, 60, 25])
def test_a_link_whose_text_opens_with_a_space_costs_the_excerpt_no_character(limit: int) -> None:
    # Feeds often write "One <a> two</a>": the space before the link and the one inside it are one
    # space of the text, and counting both cut the excerpt's last word short ("... six seve").
    links = "".join(f' <a href="https://a.example/{k}">\n word{k}</a> and' for k in range(6))
    html = f"<p>One{links} five six seven.</p>"
    text = html_to_text(html)
    got = excerpt_html(html, limit)
    shown = html_to_text(got)
    assert len(shown) <= limit
    if len(text) <= limit:
        assert shown == text and got.endswith("seven.")
    else:
        assert shown.endswith("…") and text.startswith(shown[:-1].rstrip())
        assert re.fullmatch(r"[\w ]+", shown[:-1].rstrip()) and shown[:-1].rstrip().split()[-1] in text.split()


# --------------------------------------------------------------------------- redirect wrappers


def test_a_redirector_that_carries_the_article_after_a_star_gives_the_article() -> None:
    wrapped = "https://redir.daily.example/redir/online/politics/rss091/*https://www.daily.example/politics/2018/09/vote.shtml?utm_source=rss"
    assert redirect_target(wrapped) == "https://www.daily.example/politics/2018/09/vote.shtml"


@pytest.mark.parametrize(
    "url",
    [
        "https://www.daily.example/politics/2018/09/vote.shtml",
        "https://web.archive.org/web/2018*/https://www.daily.example/",  # a list of captures
        "https://web.archive.org/web/*/https://www.daily.example/page",
        "https://search.example/find?q=*https://www.daily.example/",  # in the query: not a path's redirect
        "https://redir.example/go/*https://nohost/",  # no site after it
        "https://files.example/glob/*.html",
    ],
)
def test_links_that_wrap_no_article_are_left_alone(url: str) -> None:
    assert redirect_target(url) is None


# --------------------------------------------------------------------------- block boundaries (audit finding 4)

_BULLETS_THEN_BODY = (
    "<ul><li>Ferry board says storms could close 40 piers</li><li>Report contradicts the council's forecast</li></ul>"
    "<p>Nearly half of the harbour's piers are at risk, a study finds.</p>"
    '<p>Art by <a href="https://art.example/">Ana Lopes</a></p><p>Read the transcript</p>'
)
_BULLETS_TEXT = (
    "Ferry board says storms could close 40 piers · Report contradicts the council's forecast · "
    "Nearly half of the harbour's piers are at risk, a study finds. Art by Ana Lopes · Read the transcript"
)


def test_blocks_that_end_without_a_stop_are_not_run_into_the_next() -> None:
    # "... could endanger 1,700 sites Findings run counter ..." (The Guardian's standfirst list), "... by
    # Jessica Hayworth Read episode transcripts" (Night Vale's credits): one run-on text.
    assert prose_text(_BULLETS_THEN_BODY) == _BULLETS_TEXT
    assert excerpt(_BULLETS_THEN_BODY, 500) == _BULLETS_TEXT
    assert html_to_text(excerpt_html(_BULLETS_THEN_BODY, 500)) == _BULLETS_TEXT


def test_an_excerpt_cut_after_a_block_separator_does_not_end_with_it() -> None:
    html = "<p>Ferry board says storms could close piers</p><p>Report follows</p>"
    assert excerpt(html, 46) == "Ferry board says storms could close piers…"
    assert excerpt_html(html, 46) == "Ferry board says storms could close piers…"


def test_prose_text_without_cross_links_drops_only_blocks_that_are_one_link() -> None:
    html = (
        "<ul><li>The board met on Monday.</li>"
        '<li><strong><a href="https://news.example/other">Another story entirely.</a></strong></li>'
        '<li><a href="https://news.example/b">Unclosed link</li>'
        '<li>Real prose with a <a href="https://news.example/c">link</a> inside.</li></ul>'
        '<p><a href="https://news.example/d">Lead words</a> open a sentence.</p>'
        '<p><a href="https://news.example/e">Read the other report</a>.</p>'
    )
    kept = prose_text(html, cross_links=False)
    assert "Another story entirely" not in kept and "Read the other report" not in kept
    for said in ("The board met on Monday.", "Unclosed link", "Real prose with a link inside.", "Lead words open"):
        assert said in kept, (said, kept)
    assert "Another story entirely." in prose_text(html)  # what clustering and section rules read
