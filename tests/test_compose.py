"""compose is pure: stories in configured section order, by local day, newest first, capped."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from digest.compose import ComposeOptions, build_stories, compose, section_anchor
from digest.model import Item

T0 = datetime(2026, 1, 16, 20, 0, tzinfo=UTC)
ORDER = ("World", "Business & Economy", "Sport")


def item(
    n: int, title: str, *, hours: float = 0, source: str = "Wire", url: str | None = None, published: bool = True
) -> Item:
    when = T0 - timedelta(hours=hours)
    return Item(
        id=n,
        feed_id=1,
        source=source,
        title=title,
        url=url or f"https://n.example/{n}",
        summary_html="",
        summary_text="",
        published=when if published else None,
        first_seen=when if published else T0,
    )


def opts(**kw: object) -> ComposeOptions:
    return ComposeOptions(title="Review", section_order=ORDER, **kw)  # type: ignore[arg-type]


def test_sections_follow_the_configured_order_and_the_subscriber_choice() -> None:
    pairs = [
        (item(1, "Cup final tonight in Kazan"), "Sport"),
        (item(2, "Oil prices fall as output rises"), "Business & Economy"),
        (item(3, "Summit opens in Geneva"), "World"),
    ]
    stories = build_stories(pairs, options=opts())
    full = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts(), web_url="u")
    assert [s.name for s in full.sections] == list(ORDER)
    mine = compose(
        stories, day=date(2026, 1, 16), timezone="UTC", chosen={"Sport", "World"}, options=opts(), web_url="u"
    )
    assert [s.name for s in mine.sections] == ["World", "Sport"]
    nothing = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen={"Other"}, options=opts(), web_url="u")
    assert nothing.is_empty


def test_days_are_the_subscribers_local_days_newest_first() -> None:
    # 20:00 UTC on the 16th is 23:00 in Moscow; 22:30 UTC is already the 17th there.
    late = Item(
        id=9,
        feed_id=1,
        source="Wire",
        title="Late night vote in parliament",
        url="https://n.example/9",
        summary_html="",
        summary_text="",
        published=T0 + timedelta(hours=2.5),
        first_seen=T0 + timedelta(hours=2.5),
    )
    pairs = [(item(1, "Morning briefing on the budget", hours=10), "World"), (late, "World")]
    moscow = compose(
        build_stories(pairs, options=opts()),
        day=date(2026, 1, 17),
        timezone="Europe/Moscow",
        chosen=None,
        options=opts(),
        web_url="u",
    )
    assert [d.day for d in moscow.sections[0].days] == [date(2026, 1, 17), date(2026, 1, 16)]
    utc = compose(
        build_stories(pairs, options=opts()),
        day=date(2026, 1, 16),
        timezone="UTC",
        chosen=None,
        options=opts(),
        web_url="u",
    )
    assert [d.day for d in utc.sections[0].days] == [date(2026, 1, 16)]
    assert [s.lead.id for s in utc.sections[0].days[0].stories] == [9, 1]


def test_a_section_is_capped_and_says_how_many_more() -> None:
    pairs = [(item(n, f"Distinct headline number {n} about topic {n * 7}", hours=n), "World") for n in range(1, 8)]
    ed = compose(
        build_stories(pairs, options=opts()),
        day=date(2026, 1, 16),
        timezone="UTC",
        chosen=None,
        options=opts(max_per_section=3),
        web_url="u",
    )
    world = ed.sections[0]
    assert (world.total, world.shown, world.hidden) == (7, 3, 4)
    assert [s.lead.id for d in world.days for s in d.stories] == [1, 2, 3]


def test_the_same_story_from_two_sources_is_shown_once_under_the_earliest() -> None:
    pairs = [
        (item(1, "Central bank raises key rate to 18 percent", hours=1, source="B"), "Business & Economy"),
        (item(2, "Central bank raises key rate to 18 percent", hours=3, source="A"), "Business & Economy"),
        (item(3, "Football: Zenit beat Spartak 2-1", source="C"), "Sport"),
    ]
    stories = build_stories(pairs, options=opts())
    leads = {s.story.lead.id: s.story for s in stories}
    assert set(leads) == {2, 3}
    assert [i.source for i in leads[2].also] == ["B"]
    ed = compose(stories, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts(top_stories=3), web_url="u")
    assert [s.lead.id for s in ed.top_stories] == [2]
    assert all(st.lead.id != 2 for sec in ed.sections for d in sec.days for st in d.stories)


def test_section_anchors_are_stable_ids_even_without_latin_letters() -> None:
    assert section_anchor("Business & Economy") == "s-business-economy"
    assert section_anchor("Спорт") == section_anchor("Спорт")
    assert section_anchor("Спорт").startswith("s-") and section_anchor("Спорт") != section_anchor("Наука")


# --------------------------------------------------------------------------- order, outlets, boilerplate


def _feed_item(n: int, title: str, *, feed: int, source: str, hours: float = 0) -> Item:
    when = T0 - timedelta(hours=hours)
    return Item(
        id=n,
        feed_id=feed,
        source=source,
        title=title,
        url=f"https://n.example/{n}",
        summary_html="",
        summary_text="",
        published=when,
        first_seen=when,
    )


def test_within_a_section_more_outlets_come_first_then_the_newest() -> None:
    pairs = [
        (_feed_item(1, "Parliament passes the budget law", feed=1, source="A"), "World"),
        (_feed_item(2, "Gunman kills five at Fort Lauderdale airport", feed=1, source="A", hours=5), "World"),
        (_feed_item(3, "Gunman kills five at Fort Lauderdale airport", feed=2, source="B", hours=4), "World"),
        (_feed_item(4, "Storm closes the valley road", feed=3, source="C", hours=1), "World"),
    ]
    ed = compose(
        build_stories(pairs, options=opts()),
        day=date(2026, 1, 16),
        timezone="UTC",
        chosen=None,
        options=opts(),
        web_url="u",
    )
    assert [s.lead.id for s in ed.sections[0].days[0].stories] == [2, 1, 4]


def test_one_outlet_shows_at_most_max_per_source_stories_and_the_rest_are_counted() -> None:
    pairs = [
        (_feed_item(n, f"Distinct headline {n} about subject {n * 13}", feed=1, source="ORF", hours=n), "World")
        for n in range(1, 10)
    ]
    pairs.append((_feed_item(20, "A different outlet reports the weather", feed=2, source="Other", hours=30), "World"))
    ed = compose(
        build_stories(pairs, options=opts()),
        day=date(2026, 1, 16),
        timezone="UTC",
        chosen=None,
        options=opts(max_per_source=3),
        web_url="u",
    )
    world = ed.sections[0]
    shown = [s for d in world.days for s in d.stories]
    assert [s.lead.source for s in shown].count("ORF") == 3 and any(s.lead.source == "Other" for s in shown)
    assert (world.total, world.shown, world.hidden) == (10, 4, 6)


def test_a_feeds_title_boilerplate_is_learned_and_removed_but_not_a_titles_own_words() -> None:
    words = ["Budget vote passes", "Storm hits coast", "Central bank holds rates", "Election date set"]
    reuters = [f"{w} - Reuters" for w in words]
    prefixed = [f"World › {w}" for w in ("Ferry sinks off island", "Museum reopens", "Miners strike", "Zoo panda born")]
    own = ["Football : Zidane equals the record", "Football : a century of the cup", "Ski : a new victory"]
    pairs = [(_feed_item(i, t, feed=1, source="R", hours=i), "World") for i, t in enumerate(reuters)]
    pairs += [(_feed_item(10 + i, t, feed=2, source="P", hours=i), "World") for i, t in enumerate(prefixed)]
    pairs += [(_feed_item(20 + i, t, feed=3, source="L", hours=i), "Sport") for i, t in enumerate(own)]
    titles = {s.story.lead.title for s in build_stories(pairs, options=opts())}
    assert {"Budget vote passes", "Museum reopens"} <= titles
    assert set(own) <= titles  # a colon is a headline's own grammar; fewer than half share "Football :"
    assert not any(t.endswith("Reuters") or t.startswith("World ›") for t in titles)
