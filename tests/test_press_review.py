"""The press review: synopses in both parts, the agency-style headline, the Press Review section, clipping order."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import date, timedelta

import pytest
from test_render import T0, WEB_URL, huge_edition, item, rich_edition

from digest import config as cfg
from digest.compose import ComposeOptions, PlacedStory, build_stories, compose
from digest.errors import ConfigError
from digest.model import Edition, Quote, Story
from digest.render import GMAIL_CLIP_BYTES, Renderer

# Three outlets on one story, one of them only on another; our own text.
RATE = [
    item(
        21,
        "Central bank raises key rate to 18 percent",
        source="Kommersant",
        published=T0 - timedelta(hours=3),
        summary="The central bank raised its key rate to 18 percent on Friday. Banks expect loans to cost more.",
    ),
    item(
        22,
        "Central bank raises its key rate to 18 percent",
        source="Vedomosti",
        published=T0 - timedelta(hours=2),
        summary="The central bank raised its key rate to 18 percent. Importers welcomed a stronger rouble.",
    ),
    item(
        23,
        "Bank raises key rate to 18 percent",
        source="Izvestia",
        published=T0 - timedelta(hours=1),
        summary="Economists say the key rate decision will slow inflation by the summer.",
    ),
]
OTHER = item(
    24,
    "Theatre festival opens in Kazan",
    source="Kommersant",
    summary="The theatre festival opened in Kazan with twelve productions from six countries.",
)


def options(**kw: object) -> ComposeOptions:
    base = ComposeOptions(
        title="Press Review",
        section_order=("World",),
        top_stories=1,
        press_outlets=("Kommersant", "Vedomosti"),
        plural_outlets=frozenset({"Vedomosti"}),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def placed(opts: ComposeOptions) -> list[PlacedStory]:
    return build_stories([(i, "World") for i in (*RATE, OTHER)], options=opts)


def edition(opts: ComposeOptions, chosen: tuple[str, ...] | None = None) -> Edition:
    return compose(placed(opts), day=date(2026, 1, 16), timezone="UTC", chosen=chosen, options=opts, web_url=WEB_URL)


def test_a_multi_outlet_story_carries_its_synopsis_and_a_single_one_does_not() -> None:
    stories = {p.story.lead.title: p.story for p in placed(options())}
    rate = stories["Central bank raises key rate to 18 percent"]
    assert {q.source for q in rate.synopsis} == {"Kommersant", "Vedomosti", "Izvestia"}
    assert stories["Theatre festival opens in Kazan"].synopsis == ()
    assert all(not p.story.synopsis for p in placed(options(synopsis_sentences=0)))


def test_the_press_review_lists_each_outlets_leading_stories_quoting_it_first() -> None:
    ed = edition(options())
    assert [g.outlet for g in ed.press] == ["Kommersant", "Vedomosti"]
    kommersant = ed.press[0]
    # The rate story is shared with two other outlets, so it leads; the festival is Kommersant's own.
    assert [s.lead.title for s in kommersant.stories] == [
        "Central bank raises key rate to 18 percent",
        "Theatre festival opens in Kazan",
    ]
    for group in ed.press:
        for story in group.stories:
            assert story.lead.source == group.outlet and story.synopsis[0].source == group.outlet
            assert 1 <= sum(len(q.sentences) for q in story.synopsis) <= 2
    assert ed.press[1].stories[0].synopsis[0].plural  # Vedomosti is declared plural


def test_the_press_review_honours_the_subscribers_sections() -> None:
    assert edition(options(), chosen=("World",)).press == ()
    assert edition(options(), chosen=("Press Review",)).press
    only_press = edition(options(), chosen=("Press Review",))
    assert only_press.sections == () and not only_press.is_empty


def test_both_parts_carry_the_synopsis_and_the_press_review_section() -> None:
    r = Renderer().render(edition(options()))
    for part in (r.html, " ".join(r.text.split())):
        assert "Press Review" in part and "The central bank raised its key rate to 18 percent" in part
        assert "Economists say the key rate decision will slow inflation by the summer." in part
    assert '<a href="https://example.org/news/23" dir="auto"' in r.html  # the outlet links to its item
    assert " adds: " in r.text


def test_russian_connecting_words_agree_with_the_outlets_number() -> None:
    r = Renderer(language="ru").render(dataclasses.replace(edition(options()), language="ru"))
    assert "Vedomosti</a></strong> пишут:" in r.html or "Vedomosti</a></strong> добавляют:" in r.html
    assert "Kommersant</a></strong> пишет:" in r.html
    assert "Vedomosti пишет" not in r.text and "Vedomosti добавляет" not in r.text


def test_subject_lead_reads_like_an_agencys_press_review_and_is_header_safe() -> None:
    ed = dataclasses.replace(edition(options(subject_style="lead")))
    r = Renderer().render(ed)
    assert r.subject == "Press review: Central bank raises key rate to 18 percent and Theatre festival opens in Kazan"
    assert r.preheader == r.subject
    long = dataclasses.replace(rich_edition(), subject_style="lead")
    subject = Renderer().render(long).subject
    assert subject.startswith("Press review: Central bank raises") and " and Summit ends" in subject
    assert len(subject) <= 150 and "\n" not in subject and "\r" not in subject
    hostile = Story(
        lead=item(31, "Line one\r\nBcc: victim@example.org", source="A"), also=(item(32, "Line one", source="B"),)
    )
    r = Renderer().render(
        Edition(
            title="T",
            day=date(2026, 1, 16),
            timezone="UTC",
            sections=(),
            web_url=WEB_URL,
            top_stories=(hostile,),
            subject_style="lead",
        )
    )
    assert "\r" not in r.subject and "\n" not in r.subject


def test_gmail_clipping_keeps_the_top_stories_synopses_last() -> None:
    sentence = "The summit closed with a joint statement on trade and on the border."
    top = Story(
        lead=item(900, "Summit ends", source="Wire"),
        also=(item(901, "Summit over", source="Post"),),
        synopsis=(Quote(source="Wire", url="https://example.org/news/900", item_id=900, sentences=(sentence,)),),
    )
    big = huge_edition()
    section_story = big.sections[0].days[0].stories[0]
    marked = dataclasses.replace(
        section_story,
        synopsis=(
            Quote(
                source="Example News",
                url=None,
                item_id=section_story.lead.id,
                sentences=("A section story's own quoted sentence, dropped before the top stories' ones.",),
            ),
        ),
    )
    day0 = dataclasses.replace(big.sections[0].days[0], stories=(marked, *big.sections[0].days[0].stories[1:]))
    sec0 = dataclasses.replace(big.sections[0], days=(day0,))
    ed = dataclasses.replace(big, sections=(sec0, *big.sections[1:]), top_stories=(top,))
    r = Renderer().render(ed)
    assert len(r.html.encode()) < GMAIL_CLIP_BYTES
    assert sentence in r.html  # kept while section stories were dropped
    assert "dropped before the top stories" not in r.html
    text = " ".join(r.text.split())
    assert sentence in text and "dropped before the top stories" in text  # the text part keeps all


def test_config_press_feeds_need_a_name_and_add_the_section() -> None:
    raw = tomllib.loads("""
[digest]
subject = "lead"
synopsis_sentences = 2
[[feeds]]
url = "https://kommersant.example/rss"
name = "Kommersant"
press = true
[[feeds]]
url = "https://vedomosti.example/rss"
name = "Ведомости"
press = true
plural = true
[[subscribers]]
email = "a@example.org"
sections = ["Press Review"]
""")
    settings = cfg.from_mapping(raw, env={})
    assert settings.digest.subject == "lead" and settings.digest.synopsis_sentences == 2
    assert "Press Review" in settings.section_names
    assert [f.press for f in settings.feeds] == [True, True] and settings.feeds[1].plural
    del raw["feeds"][0]["name"]
    with pytest.raises(ConfigError, match=r"feeds #1\.press = true needs feeds #1\.name"):
        cfg.from_mapping(raw, env={})
    with pytest.raises(ConfigError, match="subject"):
        cfg.from_mapping({"digest": {"subject": "title"}}, env={})
    raw["feeds"][0]["name"] = "Kommersant"
    raw["sections"] = [{"name": "World"}, {"name": "Press Review", "keywords": ["editorial"]}]
    # The newsroom's own "Press Review" section is the one the press outlets are shown in: not a second one.
    assert cfg.from_mapping(raw, env={}).section_names == ("World", "Press Review", "Other")


def test_undated_and_dated_items_order_an_outlets_own_stories_newest_first() -> None:
    older = dataclasses.replace(
        OTHER,
        id=25,
        title="Older Kommersant story",
        url="https://example.org/news/25",
        published=T0 - timedelta(hours=5),
        first_seen=T0 - timedelta(hours=5),
    )
    opts = options(press_outlets=("Kommersant",))
    stories = build_stories([(i, "World") for i in (*RATE, OTHER, older)], options=opts)
    ed = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts, web_url=WEB_URL)
    assert [s.lead.title for s in ed.press[0].stories] == [
        "Central bank raises key rate to 18 percent",
        "Theatre festival opens in Kazan",
        "Older Kommersant story",
    ]


def test_the_outlets_go_into_the_newsrooms_own_press_review_section_first() -> None:
    # The newsroom's eight sections include "Press Review" (commentary, agencies' press reviews): the
    # press outlets are shown in it, before its own stories, in its configured place.
    opts = options(section_order=("World", "Press Review"), top_stories=0)
    column = item(
        40,
        "Editorial: what the rate decision means",
        source="Gazette",
        published=T0,
        summary="Our view on the central bank decision.",
    )
    stories = build_stories([*((i, "World") for i in (*RATE, OTHER)), (column, "Press Review")], options=opts)
    ed = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts, web_url=WEB_URL)
    r = Renderer().render(ed)
    text = r.text
    assert text.count("\nPress Review\n") == 1  # one section, not two
    press = text.index("\nPress Review\n")
    assert (
        text.index("\nWorld\n")
        < press
        < text.index("Kommersant", press)
        < text.index("Vedomosti", press)
        < text.index("Editorial: what the rate decision means", press)
    )
    assert "Press Review (4)" in text  # the outlets' stories (Kommersant 2, Vedomosti 1) and the column


def test_an_aggregators_items_are_cited_by_the_sites_that_wrote_them() -> None:
    # The rate story as one aggregator's feed carries it: each link names the paper's own article.
    feed = "News Aggregator"
    site = {21: "kommersant.example", 22: "vedomosti.example", 23: "izvestia.example"}
    carried = [
        dataclasses.replace(i, source=feed, url=f"https://news.agg.example/r?url={site[i.id]}%2Fnews%2F{i.id}")
        for i in RATE
    ]
    opts = options(press_outlets=(feed,), plural_outlets=frozenset())
    stories = build_stories([(i, "World") for i in (*carried, OTHER)], options=opts)
    rate = next(p.story for p in stories if p.story.lead.id == 21)
    assert [i.source for i in (rate.lead, *rate.also)] == list(site.values())
    assert {i.via for i in (rate.lead, *rate.also)} == {feed}
    assert {q.source for q in rate.synopsis} == set(site.values())  # three outlets, not one feed
    ed = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts, web_url=WEB_URL)
    # The Press Review still finds the feed it names, and quotes the site first.
    assert [g.outlet for g in ed.press] == [feed]
    assert ed.press[0].stories[0].synopsis[0].source == "kommersant.example"
    r = Renderer().render(ed)
    for part in (r.html, " ".join(r.text.split())):
        assert "kommersant.example" in part and "izvestia.example" in part
    assert f"{feed} adds" not in r.text and f"{feed} reports" not in r.text


def test_an_outlet_quoted_from_two_of_its_reports_also_reports_instead_of_adding_to_itself() -> None:
    # Kommersant tells the story twice, Vedomosti once with one quotable sentence: the third
    # sentence comes from Kommersant's second report.
    reports = [
        item(
            31,
            "Grain port strike halts exports",
            source="Kommersant",
            published=T0 - timedelta(hours=4),
            summary="Dock workers at the grain port stopped work on Friday over unpaid wages.",
        ),
        item(
            32,
            "Grain port strike halts exports again",
            source="Vedomosti",
            published=T0 - timedelta(hours=3),
            summary="The grain port strike halted exports for a second day.",
        ),
        item(
            33,
            "Grain port strike halts exports, costs mount",
            source="Kommersant",
            published=T0 - timedelta(hours=1),
            summary="Grain exporters said the port strike had cost them two shiploads of wheat.",
        ),
    ]
    opts = options(press_outlets=(), top_stories=0)
    stories = build_stories([(i, "World") for i in reports], options=opts)
    assert len(stories) == 1, "the three reports are one story"
    quotes = stories[0].story.synopsis
    assert sorted(q.source for q in quotes) == ["Kommersant", "Kommersant", "Vedomosti"]
    second = [q for q in quotes if q.source == "Kommersant"][1].sentences[0]
    ed = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts, web_url=WEB_URL)
    flat = " ".join(Renderer().render(ed).text.split())
    assert f"] also reports: {second}" in flat, flat
    assert flat.count(" adds: ") == 1 and "Vedomosti [" in flat, flat  # the outlet not yet quoted adds
    ru = " ".join(Renderer(language="ru").render(dataclasses.replace(ed, language="ru")).text.split())
    assert f"] также сообщает: {second}" in ru
