"""An edition made from real publishers' feeds that carry whole articles and images.

Boing Boing, TechCrunch, XDA Developers and Cloudflare put complete articles in content:encoded:
subheadings, figures, embedded tweets, tables, dozens of images. The feeds are served over HTTP on
127.0.0.1, the `digest` command polls them and sends the edition through a real SMTP server with
the sections `digest init` ships, and the message is checked as a reader gets it:

* each story shows an excerpt (at most excerpt_chars of text, links/bold/italic only), in both parts;
* with images = false (the default) nothing in the message loads from anywhere;
* Chromium lays it out at 375 and 1200 px without sideways scrolling (screenshots in test-artifacts/);
* SpamAssassin (local rules only) scores it below 2.0;
* `digest sections explain <id>` names the section the edition stored for an item, which is the
  section the email shows it under.
"""

from __future__ import annotations

import asyncio
import html as htmllib
import re
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from httpservers import FeedServer
from smtpservers import SmtpServer
from test_end_to_end import digest
from test_mail_clients import ARTIFACTS, DESKTOP, PHONE, SPAM_LIMIT, chromium, lay_out, need, spamassassin

from digest import config as cfg

FEEDS = ("boingboing.xml", "techcrunch_feedburner-era.xml", "xda-developers.xml", "cloudflare_blog.xml")
EXCERPT = 280


def _sections_toml() -> str:
    """The [[sections]] that `digest init` writes, as they are."""
    text = cfg.example_toml()
    start = text.index("\n[[sections]]\n") + 1
    return text[start : text.index("# Feeds:", start)]


# [digest] settings of the edition below; the corpus is years old.
SETTINGS = (
    'timezone = "Europe/Moscow"\nsend_at = "07:00"\nbase_url = "https://review.example"\nmax_item_age = "100000d"\n'
)


def _config(tmp: Path, feeds: list[str], smtp_port: int, settings: str = SETTINGS) -> Path:
    """A config of these feeds, the sections `digest init` ships, one subscriber, the SMTP server at
    `smtp_port` and `settings` in [digest]."""
    path = tmp / "digest.toml"
    path.write_text(
        "[digest]\n"
        f'title = "Morning Review"\ndatabase = "sqlite:///{tmp / "digest.sqlite"}"\nallow_private_addresses = true\n'
        + settings
        + f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsender = "Morning Review <review@review.example>"\n'
        "timeout = 10\n[fetch]\ntimeout = 20\n\n"
        + _sections_toml()
        + "".join(f'[[feeds]]\nurl = "{u}"\n' for u in feeds)
        + '[[subscribers]]\nemail = "editor@example.org"\n',
        encoding="utf-8",
    )
    return path


async def _edition(tmp: Path, corpus: Path) -> tuple[bytes, Path]:
    async with FeedServer() as server, SmtpServer() as smtp:
        urls = [
            server.serve(
                f"/{name}",
                (corpus / "feeds" / "news" / name).read_bytes(),
                headers={"Content-Type": "application/rss+xml"},
            )
            for name in FEEDS
        ]
        config = _config(tmp, urls, smtp.port)
        code, out, err = await digest(config, "poll")
        assert code == 0, out + err
        code, out, err = await digest(config, "send")
        assert code == 0, out + err
    assert len(smtp.messages) == 1, out + err
    return smtp.messages[0].data, config


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmailMessage, bytes, Path]:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    data, config = asyncio.run(_edition(tmp_path_factory.mktemp("corpus-edition"), corpus))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "corpus-edition.eml").write_bytes(data)
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg, data, config


def _html(msg: EmailMessage) -> str:
    body = msg.get_body(("html",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_the_feeds_really_carry_whole_articles_with_images() -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    raw = "".join((corpus / "feeds" / "news" / name).read_text(encoding="utf-8", errors="replace") for name in FEEDS)
    assert raw.count("content:encoded") >= 60 and raw.count("<img") >= 100 and raw.count("<h2") >= 10


def test_each_story_shows_an_excerpt_with_inline_markup_only(sent: tuple[EmailMessage, bytes, Path]) -> None:
    html = _html(sent[0])
    summaries = re.findall(r'<div class="summary"[^>]*>(.*?)</div>', html, re.S)
    longest = max(len(htmllib.unescape(re.sub("<[^>]+>", "", s))) for s in summaries)
    print(f"\n{len(summaries)} summaries; longest {longest} characters of text (limit {EXCERPT})")
    assert len(summaries) >= 10
    for summary in summaries:
        tags = set(re.findall(r"<([a-zA-Z0-9]+)", summary))
        assert tags <= {"a", "b", "strong", "i", "em"}, tags
        text = htmllib.unescape(re.sub(r"<[^>]+>", "", summary))
        assert len(text) <= EXCERPT, text
    for block in ("<iframe", "<blockquote", "<figure", "<h5", "<h6", "<pre", "<video"):
        assert block not in html.lower()
    # The only <h2> are the email's own: its contents' heading and a section heading per entry of them.
    toc = re.findall(r'<li[^>]*><a href="#(s-[^"]+)"', html)
    assert len(re.findall(r"<h2\b", html)) == 1 + len(toc) == 1 + len(re.findall(r'<h2 [^>]*\bid="s-', html))


def test_the_text_part_carries_the_same_excerpts(sent: tuple[EmailMessage, bytes, Path]) -> None:
    html, text = _html(sent[0]), " ".join(_text(sent[0]).split())
    for summary in re.findall(r'<div class="summary"[^>]*>(.*?)</div>', html, re.S)[:15]:
        plain = " ".join(htmllib.unescape(re.sub(r"<[^>]+>", "", summary)).split())
        assert plain in text, plain


def test_no_remote_image_or_resource_loads_when_images_are_off(sent: tuple[EmailMessage, bytes, Path]) -> None:
    html = _html(sent[0])
    assert "<img" not in html.lower()
    assert not re.search(r"""\b(?:src|background|poster|srcset)\s*=""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?https?:", html, re.I)


def test_sections_explain_gives_the_section_the_edition_used(sent: tuple[EmailMessage, bytes, Path]) -> None:
    html, config = _html(sent[0]), sent[2]
    checked = 0
    for item_id in ("1", "12", "25"):
        code, out, err = asyncio.run(digest(config, "sections", "explain", item_id))
        assert code == 0, out + err
        title = out.splitlines()[0].split(": ", 1)[1]
        stored = re.search(r"edition \S+ \S+: (.+)", out)
        assert stored, out
        section = stored.group(1)
        assert f"{section}:" in out  # the reason is given for that same section
        # Where the email shows the story: under the heading of that section.
        first_section = html.find('<h2 class="section"')
        at = html.find(htmllib.escape(title, quote=False)[:40], first_section)
        if first_section < 0 or at < 0:
            continue  # a story hidden behind "N more in <Section>" or merged under another lead
        heading = re.findall(r'<h2 [^>]*\bid="[^"]+"[^>]*>(?:<a [^>]*></a>)?(.*?)</h2>', html[:at])[-1]
        assert htmllib.unescape(heading) == section, (title, heading, out)
        checked += 1
    assert checked >= 1
    # By its link, the same answer as by its id.
    with sqlite3.connect(config.parent / "digest.sqlite") as db:
        link = db.execute("SELECT url FROM items WHERE id = 1").fetchone()[0]
    by_id = asyncio.run(digest(config, "sections", "explain", "1"))
    by_link = asyncio.run(digest(config, "sections", "explain", link))
    assert by_link[0] == 0 and by_link[1] == by_id[1]
    missing = asyncio.run(digest(config, "sections", "explain", "999999"))
    assert missing[0] == 1 and "No stored item has id 999999" in missing[1] + missing[2]


def test_chromium_lays_the_corpus_edition_out_without_sideways_scroll(sent: tuple[EmailMessage, bytes, Path]) -> None:
    binary = need("chromium")
    page = ARTIFACTS / "corpus-edition.html"
    page.write_text(_html(sent[0]), encoding="utf-8")

    async def run(profile: Path) -> list:  # type: ignore[type-arg]
        async with chromium(binary, profile) as devtools:
            return [
                await lay_out(devtools, page, width=PHONE, height=812, name="corpus-375"),
                await lay_out(devtools, page, width=DESKTOP, height=900, name="corpus-1200"),
            ]

    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as profile:
        layouts = asyncio.run(run(Path(profile)))
    for lay in layouts:
        print(f"\n{lay.width} px: scrollWidth {lay.scroll_width}, height {lay.scroll_height} px; {lay.screenshot}")
        assert lay.inner_width == lay.width and lay.scroll_width <= lay.inner_width, lay.wide
        assert not lay.wide, lay.wide


def test_spamassassin_scores_the_corpus_edition_below_2(sent: tuple[EmailMessage, bytes, Path], tmp_path: Path) -> None:
    report = spamassassin(need("spamassassin"), sent[1], tmp_path)
    print(f"\nSpamAssassin score {report.score} (limit {SPAM_LIMIT})\n{report.details}")
    assert report.score < SPAM_LIMIT, report.rules


def test_with_images_on_each_story_has_at_most_one_sized_described_lead_image(
    sent: tuple[EmailMessage, bytes, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = sent[2]
    monkeypatch.setenv("DIGEST_DIGEST_IMAGES", "true")  # the documented environment override of [digest] images
    out = tmp_path / "preview.html"
    code, stdout, stderr = asyncio.run(
        digest(config, "preview", "--subscriber", "editor@example.org", "--date", "2026-01-16", "--out", str(out))
    )
    assert code == 0, stdout + stderr
    html = out.read_text(encoding="utf-8")
    stories = re.split(r'<h[34] class="title"', html)[1:]
    images = [re.findall(r"<img\b[^>]*>", story) for story in stories]
    print(f"\nimages = true: {sum(map(len, images))} lead images for {len(stories)} stories")
    assert all(len(found) <= 1 for found in images)
    assert sum(map(len, images)) >= len(stories) // 2  # these feeds illustrate most items
    for found in images:
        for img in found:
            assert re.search(r'width="\d+"', img) and re.search(r'height="\d+"', img), img
            assert re.search(r'alt="[^"]+"', img), img
            assert 'class="lead-image"' in img


async def _podcast_edition(tmp: Path, corpus: Path) -> EmailMessage:
    """The New York Times' Still Processing feed served on 127.0.0.1, polled and sent by `digest`."""
    async with FeedServer() as server, SmtpServer() as smtp:
        body = (corpus / "feeds" / "news" / "nyt_still-processing_podcast.xml").read_bytes()
        url = server.serve("/still-processing.xml", body, headers={"Content-Type": "application/rss+xml"})
        config = _config(tmp, [url], smtp.port, SETTINGS + "max_per_source = 100\nmax_items_per_section = 1000\n")
        for command in ("poll", "send"):
            code, out, err = await digest(config, command)
            assert code == 0, out + err
    (message,) = smtp.messages
    msg = message_from_bytes(message.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_a_podcast_episode_without_a_page_links_its_podcasts_page_and_marks_its_audio(tmp_path: Path) -> None:
    # Still Processing gives 33 episodes no <link>: their title linked the MP3 enclosure, and a
    # reader's click downloaded 50 MB (audit finding 14). The title opens the podcast's page (the
    # channel's <link>); the file is one more link that says what it is.
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    msg = asyncio.run(_podcast_edition(tmp_path, corpus))
    html, text = _html(msg), _text(msg).replace("\r\n", "\n")
    page = "http://www.nytimes.com/podcasts/still-processing"
    title = re.search(r'<h[34] class="title"[^>]*><a href="([^"]+)"[^>]*>We Wouldn(?:&#39;|\')t Leave Kanye', html)
    assert title, html
    assert title.group(1) == page
    # Its audio, beside its time: labelled with its format, linking the file.
    story = html[title.start() : html.index("<h", title.end())]
    audio = re.search(r'<a href="(https://dts\.podtrac\.com/[^"]+\.mp3)"[^>]*>MP3 audio</a>', story)
    assert audio, story
    # No title opens an audio file; an episode with its own page keeps it.
    assert not re.search(r'class="title"[^>]*><a href="[^"]+\.mp3"', html)
    assert re.search(r'class="title"[^>]*><a href="https://www\.nytimes\.com/2017/06/08/podcasts/', html)
    # The text part: the title's reference is the page, the audio's the file.
    line = re.search(
        r"\* We Wouldn't Leave Kanye, But Should We\? \[(\d+)\]\n  Still Processing · .* · MP3 audio \[(\d+)\]\n", text
    )
    assert line, text
    listed = re.search(r"(?:^\[\d+\] \S+\n)+", text[line.end() :], re.M)  # the section's links, numbered from 1
    assert listed, text
    refs = dict(re.findall(r"^\[(\d+)\] (\S+)$", listed.group(0), re.M))
    assert refs[line.group(1)] == page and refs[line.group(2)] == audio.group(1)


async def _poll_then_preview(tmp: Path, body: bytes, *, poll_at: datetime, preview_at: datetime) -> tuple[str, str]:
    """Serve `body` on 127.0.0.1, `digest poll` at `poll_at`, then `digest preview` at `preview_at`
    (DIGEST_NOW): what preview printed on stdout and on stderr."""
    async with FeedServer() as server:
        url = server.serve("/feed.xml", body, headers={"Content-Type": "application/rss+xml"})
        tmp.mkdir()
        config = _config(tmp, [url], 2525)  # no SMTP server: preview sends nothing
        code, out, err = await digest(config, "poll", now=poll_at)
        assert code == 0, out + err
        code, out, err = await digest(config, "preview", "--subscriber", "editor@example.org", now=preview_at)
        assert code == 0, out + err
    return out, err


def test_a_preview_at_the_polls_clock_says_its_items_are_newer_than_the_cut_off_and_when_they_go(
    tmp_path: Path,
) -> None:
    # The whole corpus polled and previewed with one DIGEST_NOW: "polled 97 feeds: 2586 new items",
    # then "Nothing new for editor@example.org in their sections" (audit finding 15). Each process
    # starts its clock at DIGEST_NOW, so the poll's items were first seen after the preview's cut-off.
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    body = (corpus / "feeds" / "news" / "indian-express_world.xml").read_bytes()
    # Here the poll's clock starts 30 s after the preview's: with one DIGEST_NOW, which process reads
    # its clock later depends on how fast each starts, and a test must not depend on timing.
    at = datetime(2026, 1, 16, 3, 0, tzinfo=UTC)  # 06:00 in Moscow, an hour before send_at
    poll_at = at + timedelta(seconds=30)
    out, err = asyncio.run(_poll_then_preview(tmp_path / "same", body, poll_at=poll_at, preview_at=at))
    assert "Nothing new for editor@example.org" in out, out + err
    assert re.search(
        r"hint: 200 items were first seen after this edition's cut-off, 2026-01-16 03:00:0\d UTC; "
        r"the edition sent at 2026-01-16 07:00 \(Europe/Moscow\) carries them\.",
        " ".join(err.split()),
    ), err
    # A minute later, the preview shows them, and says nothing of a cut-off.
    later = at + timedelta(minutes=1)
    out, err = asyncio.run(_poll_then_preview(tmp_path / "later", body, poll_at=poll_at, preview_at=later))
    assert out.startswith("Subject: Morning Review") and "hint:" not in err, err
