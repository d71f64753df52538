"""digest.render: Edition -> subject, HTML and text (golden files; reliability E4, R5, R6, Gmail clipping)."""

from __future__ import annotations

import dataclasses
import html as htmllib
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from storepaths import as_stored

from digest.errors import TemplateError
from digest.model import DayGroup, Edition, Item, ParsedItem, Quote, SectionGroup, Story
from digest.parse import parse_feed
from digest.render import (
    GMAIL_CLIP_BYTES,
    PLACEHOLDER_PREFERENCES_URL,
    PLACEHOLDER_UNSUBSCRIBE_URL,
    Renderer,
    builtin_templates_dir,
    wrap,
)

GOLDEN = Path(__file__).parent / "golden"
WEB_URL = "https://news.example.org/editions/Europe~Moscow/2026-01-16"
T0 = datetime(2026, 1, 16, 6, 17, tzinfo=UTC)  # 09:17 in Moscow


def item(
    n: int,
    title: str,
    *,
    source: str = "Example News",
    published: datetime | None = T0,
    first_seen: datetime | None = None,
    url: str | None = "",
    summary: str | None = None,
    image_url: str | None = None,
) -> Item:
    text = summary if summary is not None else f"Summary of item {n}: what happened & why it matters."
    return Item(
        id=n,
        feed_id=n % 5 + 1,
        source=source,
        title=title,
        url=f"https://example.org/news/{n}" if url == "" else url,
        summary_html=f"<p>{text.replace('&', '&amp;')}</p>",
        summary_text=text,
        published=published,
        first_seen=first_seen or (published or T0) + timedelta(minutes=5),
        image_url=image_url,
    )


def rich_edition(*, language: str = "en") -> Edition:
    """Several sections and days, clusters with `also`, read-also, long, Cyrillic and RTL titles,
    an undated item and a section with hidden stories."""
    lead = item(
        1,
        "Central bank raises its key rate for the third time this year, citing persistent "
        "inflation and a weaker currency",
        source="Business Daily",
    )
    clustered = Story(
        lead=lead,
        also=(
            item(2, "Rate up again", source="Wire Service"),
            item(3, "Key rate rises", source="Morning Post"),
            item(13, "ЦБ снова повысил ставку", source="Ведомости"),
        ),
        read_also=(item(4, "Why the rate matters", source="Business Daily", published=T0 - timedelta(days=2)),),
        synopsis=(
            Quote(
                source="Business Daily",
                url="https://example.org/news/1",
                item_id=1,
                sentences=(
                    "The central bank raised its key rate by one point on Friday.",
                    "It was the third increase this year.",
                ),
            ),
            Quote(
                source="Wire Service",
                url="https://example.org/news/2",
                item_id=2,
                sentences=("Analysts had expected a smaller step & a pause in March.",),
            ),
            Quote(
                source="Ведомости",
                url="https://example.org/news/13",
                item_id=13,
                plural=True,
                sentences=("Банки начнут пересматривать ставки по кредитам на следующей неделе.",),
            ),
        ),
    )
    world_today = (
        clustered,
        Story(
            lead=item(
                5,
                "Переговоры в Женеве продолжатся в понедельник",
                source="Новости дня",
                published=T0 - timedelta(hours=3),
            )
        ),
        Story(lead=item(6, "שיחות השלום נמשכות בז'נבה", source="Haaretz-like", published=T0 - timedelta(hours=4))),
    )
    world_yesterday = (
        Story(lead=item(7, "محادثات السلام تستمر في جنيف", source="Arabic Wire", published=T0 - timedelta(days=1))),
        Story(
            lead=item(
                8,
                "An item with no date of its own",
                source="Undated Feed",
                published=None,
                first_seen=T0 - timedelta(days=1, hours=2),
            )
        ),
    )
    world = SectionGroup(
        name="World",
        anchor="s-world",
        days=(DayGroup(date(2026, 1, 16), world_today), DayGroup(date(2026, 1, 15), world_yesterday)),
        total=9,
        shown=5,
    )
    politics = SectionGroup(
        name="Russian Politics & Diplomacy",
        anchor="s-russian-politics-diplomacy",
        days=(
            DayGroup(
                date(2026, 1, 16),
                (
                    Story(
                        lead=item(
                            9, "Госдума приняла закон о цифровом рубле в третьем чтении", source="Парламентская газета"
                        )
                    ),
                ),
            ),
        ),
        total=1,
        shown=1,
    )
    sport = SectionGroup(
        name="Sport",
        anchor="s-sport",
        days=(
            DayGroup(
                date(2026, 1, 16),
                (Story(lead=item(10, "Hockey: late goal settles the derby", source="Sport & Co", url=None)),),
            ),
        ),
        total=1,
        shown=1,
    )
    top = (
        Story(
            lead=item(11, "Summit ends with a joint statement", source="Wire Service"),
            also=(item(12, "Joint statement signed", source="Morning Post"),),
        ),
    )
    return Edition(
        title="Press Review",
        day=date(2026, 1, 16),
        timezone="Europe/Moscow",
        sections=(politics, world, sport),
        web_url=WEB_URL,
        top_stories=top,
        language=language,
    )


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8", newline="")
    assert path.read_text(encoding="utf-8") == actual, f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


# --------------------------------------------------------------------------- golden files


def test_a_rich_edition_renders_as_the_golden_files() -> None:
    rendered = Renderer().render(rich_edition())
    check_golden("edition.html", rendered.html)
    check_golden("edition.txt", rendered.text)


def test_a_russian_edition_renders_as_the_golden_text() -> None:
    check_golden("edition.ru.txt", Renderer(language="ru").render(rich_edition(language="ru")).text)


# --------------------------------------------------------------------------- content and layout


def test_the_subject_is_the_title_the_localised_date_and_the_story_most_outlets_tell() -> None:
    lead = "Central bank raises its key rate for the third time this year, citing persistent inflation and a"
    assert Renderer().render(rich_edition()).subject == f"Press Review — January 16, 2026: {lead} weaker currency"
    ru = Renderer().render(rich_edition(language="ru")).subject
    # The default title reads in the edition's language (msgctxt "site title"), as the date does.
    assert ru.startswith("Обзор прессы — 16 января 2026\u202fг.: Central bank raises")
    dated = dataclasses.replace(rich_edition(language="ru"), subject_style="date")
    assert Renderer().render(dated).subject == "Обзор прессы — 16 января 2026\u202fг."


def test_days_and_times_are_shown_in_the_edition_time_zone_with_their_offset() -> None:
    r = Renderer().render(rich_edition())
    for part in (r.html, r.text):
        assert "Friday, January 16" in part and "Thursday, January 15" in part
        assert "January 16, 09:17 UTC+3" in part


def test_an_undated_item_shows_when_it_was_first_seen_marked_so() -> None:
    r = Renderer().render(rich_edition())
    assert "January 15, 07:17 UTC+3 (first seen)" in r.text
    assert "January 15, 07:17 UTC+3 (first&nbsp;seen)" in r.html
    assert r.text.count("(first seen)") == 1


def test_labels_and_dates_are_localised_in_russian() -> None:
    r = Renderer(language="ru").render(rich_edition(language="ru"))
    assert "Пятница, 16 января" in r.html and "16 января, 09:17 UTC+3" in r.html
    assert "Также сообщают" in r.text and "Читайте также" in r.text and "Отписаться" in r.html
    assert "Ещё 4 материала в разделе «Мир»" in r.text  # plural forms and section names: tests/test_i18n.py


def test_the_contents_link_every_section_anchor_with_its_count() -> None:
    html = Renderer().render(rich_edition()).html
    for anchor, name, count in (
        ("s-russian-politics-diplomacy", "Russian Politics &amp; Diplomacy", 1),
        ("s-world", "World", 9),
        ("s-sport", "Sport", 1),
        ("top-stories", "Top stories", 1),
    ):
        assert re.search(rf'<a href="#{anchor}"[^>]*>{re.escape(name)}</a> <span[^>]*>\({count}\)</span>', html)
        assert f'id="{anchor}"' in html
    # Sections in the edition's order, top stories first.
    positions = [html.index(f'id="{a}"') for a in ("top-stories", "s-russian-politics-diplomacy", "s-world", "s-sport")]
    assert positions == sorted(positions)


def test_hidden_stories_are_counted_in_a_link_to_the_web_edition() -> None:
    r = Renderer().render(rich_edition())
    assert f'<a href="{WEB_URL}#s-world" dir="auto"' in r.html and "4 more in World" in r.html
    assert re.search(r"4 more in World \[(\d+)\]", r.text)
    ref = re.search(r"4 more in World \[(\d+)\]", r.text)
    assert ref and f"[{ref.group(1)}] {WEB_URL}#s-world" in r.text
    assert "more in Sport" not in r.html  # nothing hidden there


def test_a_headline_and_its_leads_quote_share_one_reference_in_the_text_part() -> None:
    # The synopsis quotes the lead's own summary under its headline: both open item 1, so the text
    # part lists its link once ("Business Daily [1]: ..."), and every link of a block exactly once.
    r = Renderer().render(rich_edition())
    headline = re.search(r"persistent inflation and a weaker currency \[(\d+)\]", r.text)
    quote = re.search(r"Business Daily \[(\d+)\]: The central bank", r.text)
    assert headline and quote and headline.group(1) == quote.group(1)
    for block in re.split(r"\n(?=[^\n]+\n-{3,}\n)", r.text):
        urls = re.findall(r"^\[\d+\] (\S+)$", block, re.M)
        assert len(urls) == len(set(urls)), block


def test_other_sources_and_read_also_are_linked() -> None:
    edition = rich_edition()
    r = Renderer().render(edition)
    # The synopsis quotes and links Wire Service (item 2); "Also reported by" names the outlets it
    # does not quote, so no outlet is listed twice under one headline.
    assert re.search(r'<strong><a href="https://example.org/news/2"[^>]*>Wire Service</a></strong>', r.html)
    assert re.search(r'Also reported by: <a href="https://example.org/news/3"[^>]*>Morning Post</a></p>', r.html)
    assert re.search(r'Read also: <a href="https://example.org/news/4"[^>]*>Why the rate matters</a>', r.html)
    assert re.search(r"Also reported by: Morning Post \[\d+\]\n", r.text)
    assert not re.search(r"Also reported by: [^\n]*Wire Service", r.text)


def one_story_edition(story: Story, *, language: str = "en") -> Edition:
    """The rich edition with one story in "World" and no top stories."""
    section = SectionGroup(
        name="World", anchor="s-world", days=(DayGroup(date(2026, 1, 16), (story,)),), total=1, shown=1
    )
    return dataclasses.replace(rich_edition(), sections=(section,), top_stories=(), language=language)


def test_without_a_synopsis_every_other_outlet_is_also_reported_by() -> None:
    story = Story(
        lead=item(1, "Rate decision", source="Business Daily"),
        also=(item(2, "Rate up again", source="Wire Service"), item(3, "Key rate rises", source="Morning Post")),
    )
    r = Renderer().render(one_story_edition(story))
    assert re.search(
        r'Also reported by: <a href="https://example.org/news/2"[^>]*>Wire Service</a>, '
        r'<a href="https://example.org/news/3"[^>]*>Morning Post</a>',
        r.html,
    )


def test_an_outlet_with_several_reports_is_named_once_with_its_other_reports_numbered() -> None:
    # A replay of real feeds showed "Also reported by: World – The Indian Express, World – The Indian
    # Express, ..." five times under one headline: one outlet's follow-ups of the story.
    story = Story(
        lead=item(1, "Five dead in airport shooting", source="Business Daily"),
        also=(
            item(2, "Airport gunman was a veteran", source="Wire Service"),
            item(3, "Thousands stranded at the airport", source="Wire Service"),
            item(4, "Shooting at the airport: what we know", source="Morning Post"),
            item(5, "Suspect had voices in his head, relatives say", source="Wire Service"),
            item(6, "Airport reopens", source="Wire Service", url=None),  # no link: nothing to number
        ),
    )
    r = Renderer().render(one_story_edition(story))
    assert re.search(
        r'Also reported by: <a href="https://example.org/news/2"[^>]*>Wire Service</a> '
        r'\(<a href="https://example.org/news/3"[^>]*>2</a>, <a href="https://example.org/news/5"[^>]*>3</a>\), '
        r'<a href="https://example.org/news/4"[^>]*>Morning Post</a></p>',
        r.html,
    )
    line = re.search(r"Also reported by: Wire Service \[(\d+)\] \[(\d+)\] \[(\d+)\], Morning Post \[(\d+)\]\n", r.text)
    assert line, r.text
    refs = dict(re.findall(r"^\[(\d+)\] (\S+)$", r.text, re.M))
    assert [refs[n] for n in line.groups()] == [f"https://example.org/news/{k}" for k in (2, 3, 5, 4)]
    # A number says nothing by itself: pointing at it (or a screen reader) gives the report's headline.
    assert re.search(
        r'<a href="https://example.org/news/3"[^>]* title="Thousands stranded at the airport"[^>]*>2</a>', r.html
    )
    assert re.search(
        r'<a href="https://example.org/news/5"[^>]* title="Suspect had voices in his head, relatives say"[^>]*>3',
        r.html,
    )
    assert 'title="Airport gunman' not in r.html  # a link that names its outlet needs no hint


def test_the_lead_outlets_other_reports_are_more_from_it_not_also_reported_by_it() -> None:
    # The replayed Fort Lauderdale story was led by The Indian Express and said "Also reported by:
    # The Indian Express (2, 3, 4, 5)": its own follow-ups, as if another outlet had told them.
    story = Story(
        lead=item(1, "Five dead in airport shooting", source="Wire Service"),
        also=(
            item(2, "Airport gunman was a veteran", source="Wire Service"),
            item(3, "Shooting at the airport: what we know", source="Morning Post"),
            item(4, "Thousands stranded at the airport", source="Wire Service"),
            item(5, "Airport reopens", source="Wire Service", url=None),  # no link: nothing to show
        ),
    )
    for lang, more in (("en", "More from Wire Service"), ("ru", "Другие публикации Wire Service")):
        r = Renderer().render(one_story_edition(story, language=lang))
        assert re.search(
            rf'{more}: <a href="https://example.org/news/2"[^>]*>Airport gunman was a veteran</a>; '
            r'<a href="https://example.org/news/4"[^>]*>Thousands stranded at the airport</a></p>',
            r.html,
        ), r.html
        assert re.search(r'<a href="https://example.org/news/3"[^>]*>Morning Post</a></p>', r.html)
        assert "Wire Service</a> (" not in r.html and "Airport reopens" not in r.html
        joined = r.text.replace("\n    ", " ")  # the line as wrapped, unwrapped
        line = re.search(
            rf"{more}: Airport gunman was a veteran \[(\d+)\]; Thousands stranded at the airport \[(\d+)\]\n", joined
        )
        assert line, r.text
        refs = dict(re.findall(r"^\[(\d+)\] (\S+)$", r.text, re.M))
        assert [refs[n] for n in line.groups()] == ["https://example.org/news/2", "https://example.org/news/4"]


def test_more_from_a_busy_outlet_names_three_reports_and_the_rest_by_short_headlines() -> None:
    # Five follow-ups by their whole headlines would be five lines under one story: three say what the
    # outlet adds, the others a short headline each. They were numbered ("5, 6", and "[5] [6]" in the
    # text part): a number says nothing to a reader or a screen reader (audit finding 10).
    follow_ups = (
        *(item(k, f"Follow-up number {k}", source="Wire Service") for k in range(2, 5)),
        item(5, "Suspect in the airport shooting had been treated for mental health issues", source="Wire Service"),
        item(6, "Flights resume", source="Wire Service"),
    )
    r = Renderer().render(
        one_story_edition(Story(lead=item(1, "Airport shooting", source="Wire Service"), also=follow_ups))
    )
    shown = re.search(r"More from Wire Service: (.*?)</p>", r.html)
    assert shown, r.html
    assert re.findall(r'<a href="https://example.org/news/(\d)"[^>]*>([^<]*)</a>', shown.group(1)) == [
        ("2", "Follow-up number 2"),
        ("3", "Follow-up number 3"),
        ("4", "Follow-up number 4"),
        ("5", "Suspect in the airport shooting had been…"),
        ("6", "Flights resume"),
    ]
    # The whole headline of a shortened one is its link's title.
    assert 'title="Suspect in the airport shooting had been treated for mental health issues"' in shown.group(1)
    line = re.search(r"More from Wire Service: (.*)\n", r.text.replace("\n    ", " "))
    assert line, r.text
    assert re.fullmatch(
        r"Follow-up number 2 \[\d+\]; Follow-up number 3 \[\d+\]; Follow-up number 4 \[\d+\]; "
        r"Suspect in the airport shooting had been… \[\d+\]; Flights resume \[\d+\]",
        line.group(1),
    ), line.group(1)


def test_more_from_links_the_web_edition_once_summaries_are_shortened_to_fit() -> None:
    # When the HTML must shrink, the follow-ups' headlines go before any story does. They were left as
    # bare numbers ("2, 3"); now one link says how many there are and opens them in the web edition.
    follow_ups = tuple(item(k, f"Follow-up number {k}", source="Wire Service") for k in range(2, 4))
    story = Story(lead=item(1, "Airport shooting", source="Wire Service", summary="Long. " * 400), also=follow_ups)
    for language, online in (("en", "2 reports in the online edition"), ("ru", "2 материала в веб-версии выпуска")):
        r = Renderer(excerpt_chars=2400).render(one_story_edition(story, language=language), max_html_bytes=9_000)
        assert re.search(r'<p class="notice"', r.html), r.html
        assert re.search(rf': <a href="{re.escape(WEB_URL)}#s-world"[^>]*>{online}</a></p>', r.html), r.html
        assert "news/2" not in r.html and "title=" not in r.html  # the bytes go to the stories
        assert "Follow-up number 2 [" in r.text  # the text part is not clipped and keeps them
    # One report alone keeps its short headline: a link to it costs no more than one to the web edition.
    one = Story(
        lead=story.lead, also=(item(2, "Follow-up on the airport shooting and what it means", source="Wire Service"),)
    )
    html = Renderer(excerpt_chars=2400).render(one_story_edition(one), max_html_bytes=9_000).html
    assert re.search(
        r': <a href="https://example.org/news/2"[^>]*>Follow-up on the airport shooting and what it…</a></p>', html
    )
    assert "title=" not in html


def _stored(k: int, parsed: ParsedItem, source: str) -> Item:
    """A parsed item as the store gives it to render, first seen when published."""
    return as_stored(parsed, id=k, feed_id=1, source=source, first_seen=parsed.published or T0)


def test_real_feeds_busy_outlet_says_what_each_more_from_link_opens_in_both_parts() -> None:
    # The Indian Express's eight reports of the Fort Lauderdale shooting: the whole corpus's edition,
    # cut to fit Gmail, showed "More from The Indian Express: 2, 3, 4, 5, 6, 7, 8", and its text part
    # "...; [19] [20] [21] [22]" (audit finding 10).
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    body = (root / "feeds" / "news" / "indian-express_world.xml").read_bytes()
    feed = parse_feed(body, url="https://indianexpress.com/world/feed/", content_type=None, now=T0)
    reports = [i for i in feed.items if re.search(r"Fort Lauderdale|Florida airport", i.title)]
    assert len(reports) >= 7
    items = [_stored(k, parsed, "The Indian Express") for k, parsed in enumerate(reports, start=1)]
    edition = one_story_edition(Story(lead=items[0], also=tuple(items[1:])))
    whole = Renderer().render(edition)
    clipped = Renderer().render(edition, max_html_bytes=len(whole.html.encode()) + 1_999)  # 2,000 kept for links
    assert "Summaries were shortened" in clipped.html and "Summaries were shortened" not in whole.html
    for rendered in (whole, clipped):
        more = re.search(r"More from The Indian Express: (.*?)</p>", rendered.html)
        assert more, rendered.html
        shown = [htmllib.unescape(text) for text in re.findall(r"<a [^>]*>([^<]*)</a>", more.group(1))]
        print(shown)
        assert shown and not any(re.fullmatch(r"[\d\s,]*", text) for text in shown)
    assert more is not None  # the clipped part's, the last one read
    assert len(re.findall(r"<a ", more.group(1))) == 1 and "reports in the online edition" in more.group(1)
    line = re.search(r"More from The Indian Express: (.*?)\n\S", whole.text.replace("\n    ", " "), re.S)
    assert line, whole.text
    print(line.group(1))
    assert len(re.findall(r"\[\d+\]", line.group(1))) == len(reports) - 1
    assert not re.search(r"(?:^|[;\]])\s*\[\d+\]", line.group(1))  # every reference follows a headline


def test_an_episode_whose_link_is_its_audio_file_opens_its_podcasts_page_and_names_the_file() -> None:
    # A podcast episode with no <link> is linked to its enclosure: the title downloaded the audio
    # (audit finding 14). Every link to the episode opens its feed's site instead; the file is one
    # more link, which says what it is, in both parts.
    page = "https://quayradio.example/show"
    episode = dataclasses.replace(
        item(1, "Harbour voices, episode 12", source="Quay Radio", url="https://cdn.example/ep/12.mp3"), site_url=page
    )
    earlier = dataclasses.replace(
        item(2, "Harbour voices, episode 11", source="Quay Radio", url="https://cdn.example/ep/11.M4A?s=rss"),
        site_url=page,
    )
    for language, label in (("en", "MP3 audio"), ("ru", "аудио, MP3")):
        r = Renderer().render(one_story_edition(Story(lead=episode, also=(earlier,)), language=language))
        assert re.search(rf'<h4 [^>]*><a href="{page}"[^>]*>Harbour voices, episode 12</a>', r.html), r.html
        assert re.search(rf'<a href="https://cdn\.example/ep/12\.mp3"[^>]*>{label}</a></p>', r.html), r.html
        assert re.search(rf'<a href="{page}"[^>]*>Harbour voices, episode 11</a>', r.html)  # "More from"
        assert "ep/11" not in r.html
        assert re.search(rf"Quay Radio · .* · {label} \[2\]\n", r.text), r.text
        assert "[1] https://quayradio.example/show\n[2] https://cdn.example/ep/12.mp3\n" in r.text
    # A feed that links no site: the title opens nothing rather than the file.
    alone = dataclasses.replace(episode, site_url=None)
    html = Renderer().render(one_story_edition(Story(lead=alone))).html
    assert re.search(r"<h4 [^>]*>Harbour voices, episode 12</h4>", html), html
    assert re.search(r'<a href="https://cdn\.example/ep/12\.mp3"[^>]*>MP3 audio</a>', html)


def test_a_short_headline_in_a_script_several_languages_write_takes_its_items_language() -> None:
    # "وزیر کی آمد" has none of Urdu's own letters and two that Persian writes: guessed alone, it is
    # Persian, and a screen reader read an Urdu headline with a Persian voice. Its summary is Urdu.
    title = "وزیر کی آمد"
    summary = "وزیر آج شہر میں پہنچے اور لوگوں سے ملے۔"
    r = Renderer().render(one_story_edition(Story(lead=item(1, title, summary=summary))))
    assert re.search(r'<h4 [^>]*lang="ur"', r.html), r.html
    assert re.search(r'<div class="summary"[^>]* lang="ur"', r.html), r.html
    assert 'lang="fa"' not in r.html


def test_real_feeds_urdu_headlines_and_summaries_are_marked_urdu() -> None:
    # BBC Urdu: every headline and summary is Urdu; "امریکی وزیرِ خارجہ کی پاکستان آمد" was marked
    # lang="fa" (audit finding 9, after its lang="ar" was fixed).
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    body = (root / "feeds" / "news" / "bbc-urdu.xml").read_bytes()
    feed = parse_feed(body, url="https://www.bbc.com/urdu/index.xml", content_type=None, now=T0)
    stories = tuple(Story(lead=_stored(k, parsed, "BBC News اردو")) for k, parsed in enumerate(feed.items, start=1))
    day = DayGroup(date(2026, 1, 16), stories)
    section = SectionGroup(name="World", anchor="s-world", days=(day,), total=len(stories), shown=len(stories))
    edition = dataclasses.replace(rich_edition(), sections=(section,), top_stories=())
    html = Renderer().render(edition, max_html_bytes=10_000_000).html
    tags = re.findall(r'<(?:h4|div|p) class="(?:title|summary)"[^>]*>', html)
    marked = [m.group(1) if (m := re.search(r' lang="(\w+)"', tag)) else "" for tag in tags]
    print(sorted(set(marked)), len(marked))
    assert len(marked) >= len(stories) and set(marked) == {"ur"}


def test_rtl_titles_let_the_client_pick_the_direction() -> None:
    html = Renderer().render(rich_edition()).html
    for title in ("שיחות השלום נמשכות בז'נבה", "محادثات السلام تستمر في جنيف"):
        assert re.search(rf'<h4 [^>]*dir="auto"[^>]*><a [^>]*>{re.escape(title)}</a></h4>', html), title


def test_the_html_part_has_inlined_css_and_keeps_dark_mode_and_narrow_screen_rules() -> None:
    html = Renderer().render(rich_edition()).html
    assert '<meta name="color-scheme" content="light dark">' in html
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style and "prefers-color-scheme: dark" in style.group(1) and "max-width: 660px" in style.group(1)
    assert 'class="container"' in html and "max-width:640px" in html  # inlined from the stylesheet
    assert 'role="presentation"' in html  # table layout
    assert "<img" not in html  # no remote images by default


def test_lead_images_appear_only_with_the_images_option() -> None:
    edition = rich_edition()
    sport = edition.sections[2]
    story = sport.days[0].stories[0]
    pic = Story(lead=item(10, story.lead.title, image_url="https://img.example.org/a.jpg"))
    group = SectionGroup(name="Sport", anchor="s-sport", days=(DayGroup(sport.days[0].day, (pic,)),), total=1, shown=1)
    edition = Edition(
        title=edition.title, day=edition.day, timezone=edition.timezone, web_url=WEB_URL, sections=(group,)
    )
    assert "<img" not in Renderer().render(edition).html
    html = Renderer(images=True).render(edition).html
    assert re.search(r'<img class="lead-image"[^>]* src="https://img.example.org/a.jpg"', html)
    img = re.search(r'<img class="lead-image"[^>]*>', html)
    assert img and 'width="592"' in img.group(0) and 'height="333"' in img.group(0)
    assert f'alt="{story.lead.title}"' in img.group(0)


ARTICLE = (
    '<p>Opening <b>bold</b> and <a href="https://example.org/x" rel="noopener noreferrer">linked</a> words '
    "of a whole article, with <i>italics</i>.</p><h2>A subheading</h2>"
    '<figure><img src="https://img.example.org/inline.jpg" width="800" height="400" alt="x">'
    "<figcaption>A caption</figcaption></figure>"
    "<blockquote><p>An embedded tweet</p></blockquote><table><tr><td>cell</td></tr></table>"
    + "<p>"
    + " ".join(f"word{i}" for i in range(400))
    + "</p>"
)


def _one_story_edition(lead: Item) -> Edition:
    group = SectionGroup(
        name="World", anchor="s-world", days=(DayGroup(date(2026, 1, 16), (Story(lead=lead),)),), total=1, shown=1
    )
    return Edition(title="Press Review", day=date(2026, 1, 16), timezone="UTC", web_url=WEB_URL, sections=(group,))


def _summary_of(html: str) -> str:
    m = re.search(r'<div class="summary"[^>]*>(.*?)</div>', html, re.S)
    assert m, "no summary"
    return m.group(1)


@pytest.mark.parametrize("limit", [60, 280])
def test_a_whole_article_becomes_an_excerpt_with_inline_markup_only(limit: int) -> None:
    lead = Item(
        id=1,
        feed_id=1,
        source="Example",
        title="A long read",
        url="https://example.org/a",
        summary_html=ARTICLE,
        summary_text="(parse-time excerpt)",
        published=T0,
        first_seen=T0,
    )
    r = Renderer(excerpt_chars=limit).render(_one_story_edition(lead))
    summary = _summary_of(r.html)
    assert set(re.findall(r"<([a-z0-9]+)", summary)) <= {"a", "b", "i", "strong", "em"}
    for absent in ("subheading", "caption", "tweet", "cell", "<img", "<h2", "<table", "<figure", "<blockquote"):
        assert absent not in summary
    text = re.sub(r"<[^>]+>", "", summary)
    assert len(text) <= limit and text.endswith("…") and not text[:-1].endswith(" ")
    assert "<b" in summary and "Opening" in summary
    # The plain-text part shows the same excerpt.
    plain = " ".join(r.text.split())
    assert " ".join(text.split()) in plain
    assert "<img" not in r.html  # images = false: no remote image anywhere in the message


def test_with_images_a_story_without_a_media_image_takes_its_summary_s_first_image() -> None:
    lead = Item(
        id=1,
        feed_id=1,
        source="Example",
        title="A long read",
        url="https://example.org/a",
        summary_html=ARTICLE,
        summary_text="",
        published=T0,
        first_seen=T0,
    )
    html = Renderer(images=True).render(_one_story_edition(lead)).html
    imgs = re.findall(r"<img\b[^>]*>", html)
    assert len(imgs) == 1  # one lead image, none from inside the summary
    assert 'src="https://img.example.org/inline.jpg"' in imgs[0]
    assert 'width="592"' in imgs[0] and 'height="296"' in imgs[0] and 'alt="A long read"' in imgs[0]


def test_the_preheader_reads_like_an_agencys_press_review() -> None:
    r = Renderer().render(rich_edition())
    # The stories most outlets cover lead: the rate decision (four outlets), then the summit (two).
    assert r.preheader == (
        "Press review: Central bank raises its key rate for the third time this year, citing "
        "persistent… and Summit ends with a joint statement"
    )
    assert len(r.preheader) <= 140
    assert r.subject.startswith("Press Review — January 16, 2026: Central bank")  # subject = "headline"
    assert Renderer(language="ru").render(rich_edition(language="ru")).preheader.startswith("Обзор прессы: ")
    assert '<div class="preheader" style="display:none' in r.html


def test_the_footer_has_visible_unsubscribe_and_preferences_links() -> None:
    r = Renderer().render(rich_edition())
    assert f'<a href="{PLACEHOLDER_UNSUBSCRIBE_URL}"' in r.html and f'<a href="{PLACEHOLDER_PREFERENCES_URL}"' in r.html
    assert f"Unsubscribe: {PLACEHOLDER_UNSUBSCRIBE_URL}" in r.text
    assert f"Choose your sections: {PLACEHOLDER_PREFERENCES_URL}" in r.text


def test_the_text_part_wraps_at_78_columns_except_for_links() -> None:
    text = Renderer().render(rich_edition()).text
    long_lines = [line for line in text.splitlines() if len(line) > 78]
    assert all(re.fullmatch(r"(\[\d+\] |.*: )?\S*https?://\S+", line) for line in long_lines), long_lines
    assert "Central bank raises its key rate for the third time this year, citing\n  persistent" in text
    # The heading is the subject, wrapped, and underlined as wide as its longest line.
    assert "World\n-----\n" in text and text.startswith("Press Review — January 16, 2026: Central bank raises")
    assert "\nthird time this year, citing persistent inflation and a weaker currency\n" + "=" * 78 + "\n" in text


def test_text_links_are_numbered_and_listed_after_their_section() -> None:
    # From 1 in each section: a section reads the same in every section set's message (issue 12).
    text = Renderer().render(rich_edition()).text
    blocks = text.split("\n\n\n")[1:]
    numbered = 0
    for block in blocks:
        refs = [int(n) for n in re.findall(r"^\[(\d+)\] https?://", block, re.M)]
        cited = [int(n) for n in re.findall(r"\[(\d+)\](?! https?://)", block)]
        # Each listed once; a link cited twice (a headline and its lead's quote) keeps its number.
        assert refs == list(range(1, len(refs) + 1)) and sorted(set(cited)) == refs, block
        numbered += bool(refs)
    assert numbered >= 3
    assert "* Hockey: late goal settles the derby\n" in text  # no link: no number


# --------------------------------------------------------------------------- untrusted text (E4)


def hostile_edition(source: str, title: str, url: str | None = "https://example.org/x") -> Edition:
    story = Story(lead=item(1, title, source=source, url=url))
    return Edition(
        title="Press Review",
        day=date(2026, 1, 16),
        timezone="UTC",
        web_url=WEB_URL,
        sections=(
            SectionGroup(
                name="<b>World</b>", anchor="s-world", days=(DayGroup(date(2026, 1, 16), (story,)),), total=1, shown=1
            ),
        ),
    )


def test_R5_a_hostile_feed_name_is_escaped_in_html_and_verbatim_in_text() -> None:
    name = "<img src=x onerror=alert(1)>"
    r = Renderer().render(hostile_edition(name, "Fish & Chips <script>alert(2)</script>"))
    assert "<img src=x" not in r.html and "<script>alert" not in r.html and "<b>World" not in r.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.html
    assert "Fish &amp; Chips &lt;script&gt;alert(2)&lt;/script&gt;" in r.html
    assert "&amp;amp;" not in r.html  # escaped once, not twice
    assert name in r.text and "Fish & Chips <script>alert(2)</script>" in r.text and "&amp;" not in r.text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,x",
        "/relative",
        'https://example.org/"onmouseover="x',
    ],
)
def test_only_absolute_http_links_become_links(url: str) -> None:
    r = Renderer().render(hostile_edition("Feed", "A title", url=url))
    assert "alert(1)" not in r.html and "data:text" not in r.html and "onmouseover" not in r.html
    assert re.search(r"<h4 [^>]*>A title</h4>", r.html)  # shown, as plain text


def test_an_rtl_title_without_a_link_takes_its_direction_from_its_heading() -> None:
    # The <h4 dir="auto"> skips children that set dir: the title must not sit in one, linked or not.
    html = Renderer().render(hostile_edition("Feed", "שיחות השלום נמשכות", url=None)).html
    assert re.search(r'<h4 [^>]*dir="auto"[^>]*>שיחות השלום נמשכות</h4>', html)


def test_a_feed_cannot_plant_a_subscriber_link_marker() -> None:
    r = Renderer().render(
        hostile_edition(
            f"Feed {PLACEHOLDER_UNSUBSCRIBE_URL}",
            f"Click {PLACEHOLDER_PREFERENCES_URL}",
            url=f"https://example.org/{PLACEHOLDER_UNSUBSCRIBE_URL}",
        )
    )
    assert r.html.count(PLACEHOLDER_UNSUBSCRIBE_URL) == 1 and r.html.count(PLACEHOLDER_PREFERENCES_URL) == 1
    assert r.text.count(PLACEHOLDER_UNSUBSCRIBE_URL) == 1 and r.text.count(PLACEHOLDER_PREFERENCES_URL) == 1


def test_R6_templates_mark_only_the_sanitised_summary_safe() -> None:
    templates = list(builtin_templates_dir().rglob("*.j2"))
    assert len(templates) >= 4
    for path in templates:
        source = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\{\{(.*?)\}\}", source, re.S):
            expr = match.group(1)
            if "safe" in expr or "Markup" in expr:
                assert re.fullmatch(r"\s*story\.summary_html\s*\|\s*safe\s*", expr), f"{path.name}: {expr!r}"
        assert "autoescape false" not in source.lower(), path.name
    render_source = (Path(__file__).parents[1] / "digest" / "render.py").read_text(encoding="utf-8")
    assert "Markup(" not in render_source


# --------------------------------------------------------------------------- Gmail clipping


def huge_edition(*, sections: int = 6, per_section: int = 60, summary_chars: int = 1500) -> Edition:
    groups = []
    n = 0
    for s in range(sections):
        stories = []
        for _ in range(per_section):
            n += 1
            stories.append(
                Story(
                    lead=item(
                        n,
                        f"Story number {n} with a reasonably long headline about events",
                        summary=("word " * (summary_chars // 5)).strip(),
                        published=T0 - timedelta(minutes=n),
                    )
                )
            )
        groups.append(
            SectionGroup(
                name=f"Section {s}",
                anchor=f"s-section-{s}",
                days=(DayGroup(date(2026, 1, 16), tuple(stories)),),
                total=per_section + 5,
                shown=per_section,
            )
        )
    return Edition(
        title="Press Review", day=date(2026, 1, 16), timezone="Europe/Moscow", sections=tuple(groups), web_url=WEB_URL
    )


def test_a_huge_edition_is_trimmed_below_the_gmail_clip_and_says_so() -> None:
    edition = huge_edition()
    r = Renderer().render(edition)
    size = len(r.html.encode("utf-8"))
    assert size < GMAIL_CLIP_BYTES
    assert size > GMAIL_CLIP_BYTES // 2  # trimmed to fit, not emptied
    assert "This email was shortened to fit your mail app." in r.html and WEB_URL in r.html
    assert "word word" not in r.html  # summaries went first
    shown = len(re.findall(r'<h[34] class="title"', r.html))
    hidden = sum(int(n) for n in re.findall(r"(\d+) more in Section", r.html))
    assert shown + hidden == sum(s.total for s in edition.sections)  # every dropped story is counted
    assert f"{WEB_URL}#s-section-0" in r.html
    # The text part is not clipped by Gmail and keeps everything.
    assert r.text.count("\n* Story number") == 6 * 60


def test_summaries_are_shortened_before_any_story_is_dropped() -> None:
    edition = huge_edition(sections=2, per_section=60, summary_chars=1500)
    r = Renderer(excerpt_chars=1500).render(edition)  # long excerpts: the HTML would be clipped
    assert len(r.html.encode("utf-8")) < GMAIL_CLIP_BYTES
    titles = re.findall(r'<h[34] class="title"', r.html)
    assert len(titles) == 120 and "more in Section" in r.html  # 5 hidden each, from compose
    assert "Summaries were shortened to fit your mail app." in r.html
    assert re.search(r'<p class="summary"[^>]*>word( word)*…</p>', r.html)


def test_a_small_edition_is_not_trimmed() -> None:
    r = Renderer().render(rich_edition())
    assert "shortened" not in r.html and "what happened &amp; why it matters" in r.html


def test_a_smaller_html_budget_is_honoured() -> None:
    r = Renderer().render(rich_edition(), max_html_bytes=10_000)
    assert len(r.html.encode("utf-8")) < 10_000 and "shortened" in r.html


# --------------------------------------------------------------------------- templates and errors


def test_a_templates_dir_override_is_used_and_other_templates_fall_back(tmp_path: Path) -> None:
    (tmp_path / "_story.txt.j2").write_text("STORY: {{ story.title.text }}\n", encoding="utf-8")
    po = tmp_path / "i18n" / "en" / "LC_MESSAGES" / "digest.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid "Unsubscribe"\nmsgstr "Stop these emails"\n', encoding="utf-8")
    r = Renderer(templates_dir=str(tmp_path)).render(rich_edition())
    assert "STORY: Переговоры в Женеве продолжатся в понедельник" in r.text
    assert "Stop these emails: " in r.text and ">Stop these emails</a>" in r.html
    assert "Read this edition online" in r.html  # labels not overridden fall back to the built-in catalogue
    assert 'class="container"' in r.html  # the HTML template was not overridden


def test_a_missing_template_variable_raises_template_error_naming_template_and_variable(tmp_path: Path) -> None:
    (tmp_path / "_story.html.j2").write_text(
        "<h3>{{ story.title.text }} {{ headline_colour }}</h3>\n", encoding="utf-8"
    )
    with pytest.raises(TemplateError) as caught:
        Renderer(templates_dir=str(tmp_path)).render(rich_edition())
    assert "_story.html.j2" in caught.value.message and "headline_colour" in caught.value.message
    assert "templates_dir" in caught.value.hint


def test_a_built_in_template_newer_than_the_running_code_says_to_restart_not_to_drop_templates_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new release installed under a running daemon: its own templates on disk ask this process's
    code for what it lacks (an audit's workers failed every pass: "'StoryView' has no attribute
    'audio'"), and the hint told them to remove a templates_dir nobody had set."""
    import shutil

    from digest import render

    newer = tmp_path / "installed"
    shutil.copytree(builtin_templates_dir(), newer)
    story = newer / "_story.txt.j2"
    story.write_text(story.read_text(encoding="utf-8") + "{{ story.transcript.url }}\n", encoding="utf-8")
    monkeypatch.setattr(render, "builtin_templates_dir", lambda: newer)
    with pytest.raises(TemplateError) as caught:
        Renderer().render(rich_edition())
    assert "_story.txt.j2" in caught.value.message and "transcript" in caught.value.message
    assert "upgraded while it ran" in caught.value.hint and "templates_dir" not in caught.value.hint
    custom = tmp_path / "custom"  # an operator's own template keeps its hint
    custom.mkdir()
    (custom / "_story.txt.j2").write_text("{{ story.transcript.url }}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        Renderer(templates_dir=str(custom)).render(rich_edition())
    assert "templates_dir" in caught.value.hint


def test_a_missing_attribute_is_an_error_too(tmp_path: Path) -> None:
    (tmp_path / "digest.txt.j2").write_text("{{ title }} {{ story_count_typo.x }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"digest\.txt\.j2.*story_count_typo"):
        Renderer(templates_dir=str(tmp_path)).render(rich_edition())


def test_a_template_syntax_error_is_a_template_error(tmp_path: Path) -> None:
    (tmp_path / "digest.txt.j2").write_text("{% for x in %}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"digest\.txt\.j2 has a syntax error on line 1"):
        Renderer(templates_dir=str(tmp_path)).render(rich_edition())


def test_the_built_in_templates_are_found() -> None:
    folder = builtin_templates_dir()
    assert (folder / "digest.html.j2").is_file() and (folder / "digest.txt.j2").is_file()
    for language in ("en", "ru"):
        assert (folder / "i18n" / language / "LC_MESSAGES" / "digest.po").is_file()


@pytest.mark.parametrize(
    ("language", "old", "this_year", "old_meta", "this_year_meta"),
    [
        ("en", "Friday, January 6, 2017", "Friday, January 16", "January 6, 2017, 12:00", "January 16, 06:17"),
        ("ru", "Пятница, 6 января 2017 г.", "Пятница, 16 января", "6 января 2017 г., 12:00", "16 января, 06:17"),
    ],
)
def test_a_day_heading_carries_the_year_when_it_is_not_the_editions(
    language: str, old: str, this_year: str, old_meta: str, this_year_meta: str
) -> None:
    recent = Story(lead=item(1, "Recent story"))
    stale = Story(lead=item(2, "Story from an old feed", published=datetime(2017, 1, 6, 12, tzinfo=UTC)))
    group = SectionGroup(
        name="World",
        anchor="s-world",
        total=2,
        shown=2,
        days=(DayGroup(date(2026, 1, 16), (recent,)), DayGroup(date(2017, 1, 6), (stale,))),
    )
    edition = Edition(
        title="Press Review",
        day=date(2026, 1, 16),
        timezone="UTC",
        web_url=WEB_URL,
        sections=(group,),
        language=language,
    )
    r = Renderer(language=language).render(edition)
    assert f">{old}</h3>" in r.html and f">{this_year}</h3>" in r.html
    assert f"\n{old}\n" in r.text
    # A story's own date line says the year too where its heading does, and in the top stories,
    # which have no day headings.
    assert f"{old_meta} UTC" in r.text and f"{this_year_meta} UTC" in r.text
    top = Renderer(language=language).render(dataclasses.replace(edition, top_stories=(stale, recent)))
    top_block = top.text.split("\n\n\n")[1]
    assert f"{old_meta} UTC" in top_block and f"{this_year_meta} UTC" in top_block


def test_two_sentences_of_one_report_with_text_between_them_are_marked_as_a_cut_in_both_parts() -> None:
    # A press review never splices: "[…]" says the report has more between the two sentences.
    story = one_story_edition(Story(lead=item(1, "Rate rise"))).sections[0].days[0].stories[0]
    quote = Quote(
        source="Business Daily",
        url="https://example.org/news/1",
        item_id=1,
        sentences=("The bank raised its key rate on Friday.", "It was the third rise.", "Markets fell."),
        gaps=(2,),
    )
    other = Quote(source="Wire Service", url="https://example.org/news/2", item_id=2, sentences=("Analysts agreed.",))
    told = dataclasses.replace(story, also=(item(2, "Up again", source="Wire Service"),), synopsis=(quote, other))
    for language in ("en", "ru"):
        r = Renderer(language=language).render(one_story_edition(told, language=language))
        assert "on Friday. It was the third rise. […] Markets fell." in r.html, language
        assert re.search(r"on Friday\.\s+It\s+was\s+the\s+third\s+rise\.\s+\[…\]\s+Markets\s+fell\.", r.text), r.text
        assert "[…] Analysts" not in r.html and "rise. […] It was" not in r.html


def test_the_text_part_never_opens_a_line_with_a_closing_guillemet_or_french_punctuation() -> None:
    # Before: "... contre « le football moderne\n  »", Le Monde's headline in the audit's edition.
    for tail in (" « le football moderne »", " pourquoi ?", " Oui : non", " […] Markets fell"):
        for pad in range(60, 78):
            lines = wrap("x" * pad + tail, "  ").splitlines()
            assert not any(line.lstrip().startswith(("»", "?", ":")) for line in lines[1:]), lines
            assert not any(line.rstrip().endswith(("«", "[…]")) for line in lines), lines
            assert " ".join(line.strip() for line in lines) == "x" * pad + tail
