"""Synopsis selection on small hand-written stories: quotation, attribution, no repeats, several outlets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from digest.synopsis import quotable, synopsis


@dataclass(frozen=True)
class It:
    id: int
    source: str
    title: str
    summary_text: str
    url: str | None = None
    summary_html: str = ""


HARBOUR = [
    It(
        1,
        "Harbour Post",
        "Storm closes the harbour",
        "A winter storm closed the city harbour on Monday morning. Ferries to the islands were cancelled until "
        "further notice. The port authority said winds reached 120 km/h.",
        "https://post.example/1",
    ),
    It(
        2,
        "Daily Tide",
        "Harbour shut as storm hits",
        "The city harbour was closed on Monday morning by a winter storm. Fishermen said they had lost a week of "
        "work. Forecasters expect the storm to ease on Wednesday ...",
        "https://tide.example/2",
    ),
    It(
        3,
        "Coast Radio",
        "Ferries cancelled in storm",
        "All ferries to the islands were cancelled as the storm closed the harbour. Schools on the islands will "
        "stay shut on Tuesday.",
        "https://radio.example/3",
    ),
]


def sentences_of(quotes: tuple) -> list[str]:  # type: ignore[type-arg]
    return [s for q in quotes for s in q.sentences]


def test_one_outlet_gives_no_synopsis_unless_asked() -> None:
    assert synopsis(HARBOUR[:1]) == ()
    again = It(9, "Harbour Post", "Again", "The harbour stays closed today, officials said.")
    assert synopsis([HARBOUR[0], again]) == ()
    assert synopsis(HARBOUR[:1], min_outlets=1, limit=1)[0].source == "Harbour Post"


def test_sentences_are_quoted_attributed_and_linked() -> None:
    quotes = synopsis(HARBOUR)
    assert 1 <= len(sentences_of(quotes)) <= 3
    by_id = {i.id: i for i in HARBOUR}
    for q in quotes:
        assert q.source == by_id[q.item_id].source and q.url == by_id[q.item_id].url
        assert all(s in by_id[q.item_id].summary_text for s in q.sentences)


def test_three_outlets_are_all_quoted_and_near_duplicates_are_not() -> None:
    quotes = synopsis(HARBOUR, limit=3)
    assert {q.source for q in quotes} == {"Harbour Post", "Daily Tide", "Coast Radio"}
    chosen = sentences_of(quotes)
    # "A winter storm closed the city harbour on Monday morning." and Daily Tide's rewording say the same.
    assert not (
        "A winter storm closed the city harbour on Monday morning." in chosen
        and "The city harbour was closed on Monday morning by a winter storm." in chosen
    )


def test_a_cut_sentence_is_never_quoted() -> None:
    assert not quotable("Forecasters expect the storm to ease on Wednesday ...")
    assert not quotable("Forecasters expect the storm to ease on …")
    assert not quotable("and then the ferries stopped running for the day.")  # starts mid-way
    assert not quotable("Read more about the storm here.")
    for limit in (1, 2, 3, 5):
        assert all("Wednesday" not in s for s in sentences_of(synopsis(HARBOUR, limit=limit)))


def test_a_sentence_that_sends_the_reader_elsewhere_is_never_quoted() -> None:
    promotions = [
        "Read our explainer on how cargo flights are planned.",
        "Watch the full briefing here: the minister spoke for an hour.",
        "Listen to this week's episode to find out more.",
        "Sign up for our newsletter to get the morning briefing.",
        "Subscribe now and don't miss the first episode on Monday.",
        "Find out what protections you have with this state-by-state guide.",
        "Lire aussi : comment la tempête a fermé le port de la ville.",
        "Lesen Sie auch: Wie der Sturm den Hafen der Stadt schloss.",
        "Читайте также: как шторм закрыл городской порт в понедельник.",
        "Leia também: como a tempestade fechou o porto da cidade.",
        "«Suscríbete a nuestro boletín para recibir las noticias del día.",
    ]
    assert [p for p in promotions if quotable(p)] == []
    # News that opens with one of those words: a noun, or the verb with no pointer to elsewhere.
    news = [
        "Watchdog fines the port authority over the closure.",
        "Watch sales fell by a fifth in December, the federation said.",
        "Follow-up talks between the two ports are planned for Friday.",
        "Readers of the paper raised money for the fishermen.",
        "Subscribers to the ferry pass will get a refund, the operator said.",
        "Escuchas telefónicas revelaron el plan, según la fiscalía.",
    ]
    assert [n for n in news if not quotable(n)] == []
    # An outlet whose only complete sentence is a promotion is not quoted at all.
    plug = It(4, "Bay Courier", "Storm closes the harbour", "Read our explainer on how a harbour is closed in storms.")
    quotes = synopsis([*HARBOUR, plug], limit=5)
    assert "Bay Courier" not in {q.source for q in quotes}
    assert not any(s.startswith("Read our") for s in sentences_of(quotes))


def test_the_limit_is_kept_and_the_second_sentence_brings_a_second_outlet() -> None:
    assert len(sentences_of(synopsis(HARBOUR, limit=1))) == 1
    two = synopsis(HARBOUR, limit=2)
    assert len(sentences_of(two)) == 2 and len({q.source for q in two}) == 2
    assert synopsis(HARBOUR, limit=0) == ()


def test_an_outlet_can_be_put_first_and_plural_names_are_marked() -> None:
    quotes = synopsis(HARBOUR, limit=2, first_outlet="Coast Radio", plural={"Coast Radio"})
    assert quotes[0].source == "Coast Radio" and quotes[0].plural
    assert not any(q.plural for q in quotes[1:])


def test_an_outlets_sentences_keep_their_order_in_its_text() -> None:
    long_one = It(
        5,
        "Harbour Post",
        "Storm closes the harbour",
        "Ferries to the islands were cancelled on Monday. The storm closed the city harbour with winds "
        "of 120 km/h. Officials closed the harbour and cancelled ferries until the storm ends.",
    )
    quotes = synopsis([long_one, It(6, "Other", "Unrelated words", "Nothing in common here at all, truly.")], limit=3)
    post = [q for q in quotes if q.source == "Harbour Post"][0]
    positions = [long_one.summary_text.index(s) for s in post.sentences]
    assert positions == sorted(positions)


def test_the_same_input_gives_the_same_synopsis() -> None:
    assert synopsis(HARBOUR) == synopsis(list(HARBOUR))


def test_sentences_of_one_report_that_are_not_next_to_each_other_mark_the_cut() -> None:
    """Before, The Verge's first two sentences and its fifth were quoted as one passage, the two
    between them silently left out: a quote the report does not have."""
    long_one = It(
        7,
        "Harbour Post",
        "Storm closes the harbour",
        "A winter storm closed the city harbour on Monday morning. It was bad. Port officials said the storm "
        "would keep the city harbour closed until Wednesday. Ferries to the islands were cancelled by the storm.",
    )
    other = It(8, "Daily Tide", "Harbour shut", "Fishermen said they lost a week of work to the storm in the harbour.")
    quotes = synopsis([long_one, other], limit=4)
    post = next(q for q in quotes if q.source == "Harbour Post")
    assert post.sentences == (
        "A winter storm closed the city harbour on Monday morning.",
        "Port officials said the storm would keep the city harbour closed until Wednesday.",
        "Ferries to the islands were cancelled by the storm.",
    ), post.sentences
    assert post.gaps == (1,)  # "It was bad." (too short to quote) is left out before the second; the third follows it
    assert next(q for q in quotes if q.source == "Daily Tide").gaps == ()
    assert all(q.gaps == () for q in synopsis(HARBOUR))


def test_an_item_is_read_in_its_feeds_language_where_its_text_says_little() -> None:
    # "e" alone reads as Italian; the feed's declared Portuguese wins, as it does for sections and
    # clustering (`words.language_read`), so the synopsis splits and stems the item as Portuguese.
    from datetime import UTC, datetime

    from digest.model import Item
    from digest.synopsis import item_language

    when = datetime(2026, 12, 7, tzinfo=UTC)
    text = "Paraná apresenta zagueiro e atacante"
    item = Item(1, 1, "Tribuna", text, None, "", "", when, when)
    assert item_language(item) == "it"
    assert item_language(replace(item, language="pt")) == "pt"
    assert item_language(replace(item, language="pt", title="The club presents a defender and a striker")) == "en"
