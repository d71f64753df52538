"""digest.sections: feed beats category beats URL beats keyword beats fallback, each with a reason."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from digest.config import Section
from digest.sections import Classification, classify

SECTIONS = (
    Section("Russian Politics & Diplomacy", categories=("Politics", "Политика"), keywords=("Kremlin", "Лавров")),
    Section("World", categories=("World", "International"), url_patterns=(r"^/world/",), keywords=("UN",)),
    Section(
        "Business & Economy",
        categories=("Business",),
        url_patterns=(r"/business/", r"/markets?/"),
        keywords=("central bank", "ставка", "inflation"),
    ),
    Section("Sport", categories=("Sport", "Спорт"), url_patterns=(r"^/sport/",), keywords=("football", "хоккей")),
    Section("Science & Space", keywords=("NASA", "Роскосмос", "宇宙")),
)


def place(
    title: str = "A headline",
    url: str | None = None,
    categories: Sequence[str] = (),
    feed_section: str | None = None,
) -> Classification:
    return classify(
        title=title, url=url, categories=categories, feed_section=feed_section, sections=SECTIONS, fallback="Other"
    )


def test_the_feed_section_beats_every_rule() -> None:
    c = place("Kremlin says", url="https://x.example/sport/1", categories=["Business"], feed_section="World")
    assert (c.section, c.rule) == ("World", "feed")
    assert "World" in c.reason


def test_a_category_beats_a_keyword_whatever_the_section_order() -> None:
    # The keyword belongs to the first section, the category to the fourth.
    c = place("Kremlin comments on the match", categories=["Sport"])
    assert (c.section, c.rule) == ("Sport", "category")
    assert c.reason == ("category 'Sport' matches section 'Sport'; it outranks section 'Russian Politics & Diplomacy'")


def test_a_category_and_a_url_are_equal_evidence_so_more_agreeing_rules_win() -> None:
    # Sport has the category; World has the URL; Sport's keyword agrees with its category.
    c = place("A football final", url="https://x.example/world/2", categories=["Sport"])
    assert (c.section, c.rule) == ("Sport", "category")
    # Without the keyword the two tie and the configured order decides.
    c = place("A final", url="https://x.example/world/2", categories=["Sport"])
    assert c.section == "World" and "comes later in the configured order" in c.reason


@pytest.mark.parametrize(
    ("patterns", "path", "first"),
    [
        # A rule's patterns are searched at once, then asked in their order: the first listed that
        # matches is the one named, not the one that matches leftmost in the path.
        ((r"/world/", r"/news/"), "/news/world/a-1", "/world/"),
        ((r"/news/", r"/world/"), "/news/world/a-1", "/news/"),
        ((r"/sport/", r"/golf/"), "/news/a-1", None),
        # Patterns that cannot be joined into one regex unchanged are asked one by one.
        ((r"/(\w+)/\1/", r"/golf/"), "/golf/golf/a", r"/(\w+)/\1/"),
        ((r"/golf/", r"(?i)/TENNIS/"), "/tennis/a", r"(?i)/TENNIS/"),
        ((r"/(?P<x>golf)/", r"/(?P<x>tennis)/"), "/tennis/a", r"/(?P<x>tennis)/"),
    ],
)
def test_a_rules_url_patterns_name_the_first_listed_that_matches(
    patterns: tuple[str, ...], path: str, first: str | None
) -> None:
    rules = (Section("Sport", url_patterns=patterns),)
    url = f"https://x.example{path}"
    got = classify(title="A headline", url=url, categories=(), feed_section=None, sections=rules, fallback="Other")
    if first is None:
        assert got.section == "Other"
    else:
        # One verb: not "URL path '...' matches pattern '...' matches section 'Sport'".
        assert got.reason.startswith(f"URL pattern '{first}' (in the path '{path}') matches section 'Sport'"), got


def test_a_url_pattern_beats_a_keyword() -> None:
    c = place("Kremlin and football", url="https://x.example/business/7?id=1")
    assert (c.section, c.rule) == ("Business & Economy", "url")
    assert "'/business/7'" in c.reason and "Business & Economy" in c.reason


def test_within_one_rule_kind_the_first_configured_section_wins() -> None:
    c = place("Kremlin reacts to the football final")
    assert (c.section, c.rule) == ("Russian Politics & Diplomacy", "keyword")
    c = place(categories=["Sport", "Politics"])  # the item's category order does not matter
    assert c.section == "Russian Politics & Diplomacy"


def test_categories_match_case_insensitively_and_in_cyrillic() -> None:
    assert place(categories=["  POLITICS "]).section == "Russian Politics & Diplomacy"
    assert place(categories=["СПОРТ"]).section == "Sport"


def test_url_patterns_match_the_path_only_and_ignore_case() -> None:
    assert place(url="https://news.example/SPORT/42").section == "Sport"
    # "sport" in the host or the query is not the path
    assert place(url="https://sport.example/a?s=/sport/").rule == "fallback"


def test_keywords_match_whole_words_only() -> None:
    assert place("UNESCO adds three sites").rule == "fallback"  # "UN" inside a word
    assert place("UN votes on a resolution").section == "World"
    assert place("The central  bank holds").section == "Business & Economy"  # any run of spaces
    assert place("Central-banking history").section == "Business & Economy"  # word forms: banking ~ bank


def test_keywords_match_cyrillic_words_case_insensitively() -> None:
    c = place("ЛАВРОВ встретился с коллегой")
    assert c == Classification(
        "Russian Politics & Diplomacy",
        "keyword",
        "keyword 'Лавров' in the title matches section 'Russian Politics & Diplomacy'",
    )
    assert place("Ставка ЦБ осталась прежней").section == "Business & Economy"
    # Keywords match word forms: the inflected forms of a keyword match, a longer word does not.
    assert place("Торговля ставками на спорт").section == "Business & Economy"  # "ставка" ~ "ставками"
    assert place("Чемпионат по хоккею").section == "Sport"  # "хоккей" ~ "хоккею"
    assert place("Ставрополь принимает гостей").rule == "fallback"


def test_a_keyword_in_a_script_without_spaces_matches_inside_the_title() -> None:
    assert place("日本の宇宙開発が新段階へ").section == "Science & Space"


def test_full_width_letters_match_their_ascii_keyword() -> None:
    assert place("ＮＡＳＡ launches a probe").section == "Science & Space"


def test_nothing_matches_gives_the_fallback_with_a_reason() -> None:
    c = place("Local bakery wins award", url="https://x.example/life/1", categories=["Lifestyle"])
    assert c == Classification("Other", "fallback", "no rule matched, so the fallback section 'Other'")


def test_an_empty_configuration_always_falls_back() -> None:
    c = classify(
        title="UN votes",
        url="https://x.example/world/1",
        categories=["World"],
        feed_section=None,
        sections=(),
        fallback="Misc",
    )
    assert (c.section, c.rule) == ("Misc", "fallback")


@pytest.mark.parametrize("url", [None, "", "not a url", "https://[::1/broken"])
def test_a_missing_or_odd_url_is_not_an_error(url: str | None) -> None:
    assert place("Nothing here", url=url).rule == "fallback"


# --------------------------------------------------------------------------- word forms and combined rules

from digest.config import Rule  # noqa: E402

RU = Section(
    "Russian Politics & Diplomacy",
    keywords=("Путин", "Кремль", "Лавров", "Kremlin"),
    rules=(Rule(categories=("Politics",), keywords=("Russia", "Putin", "Kremlin")),),
)
WORLD = Section("World", categories=("World", "Politics"), url_patterns=(r"^/world/",))
MILITARY = Section(
    "Military & Defense",
    keywords=("army", "troops", "missile", "армия"),
    not_keywords=("Army of Lovers",),
    rules=(Rule(categories=("World",), keywords=("army", "troops", "missile")),),
)
SPORT = Section("Sport", categories=("Sport",), keywords=("football", "футбол"), not_keywords=("fantasy football",))
NEWSROOM = (RU, WORLD, MILITARY, SPORT)


def room(
    title: str, *, summary: str = "", categories: Sequence[str] = (), url: str | None = None, feeds: Sequence[str] = ()
) -> Classification:
    return classify(
        title=title,
        url=url,
        categories=categories,
        feed_section=None,
        sections=NEWSROOM,
        fallback="Other",
        summary=summary,
        feed_names=feeds,
    )


def placed_in(sections: Sequence[Section], title: str, summary: str = "") -> Classification:
    """An item of `title` and `summary` classified among `sections` alone, "Other" the fallback."""
    return classify(
        title=title, url=None, categories=(), feed_section=None, sections=sections, fallback="Other", summary=summary
    )


@pytest.mark.parametrize(
    "title",
    [
        "Встреча Путина с послами",
        "Заявление в Кремле",
        "Слова Лаврова о Сирии",
        "Путину доложили",
        "The Kremlin's answer",
    ],
)
def test_keywords_match_inflected_forms(title: str) -> None:
    assert room(title).section == "Russian Politics & Diplomacy"


def test_a_twice_stemmed_match_wants_the_word_to_begin_as_the_keywords_stem() -> None:
    # Read with the German stemmer, "servicemen" is "servicem" and then "servic", as "Services" is:
    # finanzen.net's analyst notes on "Total System Services" went to Military & Defense. The second
    # stemming is there for a Russian name's nominative ("Лавров" -> "лавр", "Лаврова" -> "лавров")
    # and for cognates ("refugiado" meeting "refugees"), whose words begin as the keyword's stem.
    military = Section("Military & Defense", keywords=("servicemen", "troops"))
    world = Section("World", keywords=("refugees", "Pakistan"))

    def placed(title: str, summary: str) -> str:
        return placed_in((military, world), title, summary).section

    note = "Der Analyst hat die Einstufung für Total System Services Inc. auf Outperform belassen."
    assert placed("Total System Services Outperform", note) == "Other"
    assert placed("Servicemen return from the front", "") == "Military & Defense"
    asylum = "O fundador do WikiLeaks, refugiado na embaixada do Equador, chegou a renunciar ao asilo."
    assert placed("Assange chegou a renunciar a asilo do Equador", asylum) == "World"
    assert placed("“Cruzada verde” en Pakistán busca sembrar árboles", "") == "World"
    assert room("Слова Лаврова о Сирии").section == room("Лавров прибыл в Анкару").section == RU.name


@pytest.mark.parametrize(
    ("keyword", "word", "matches"),
    [
        ("sanction", "sanctions", True),
        ("election", "elections", True),
        ("army", "armies", True),
        ("tax", "taxes", True),
        ("Путин", "Путиным", True),
        ("санкция", "санкциями", True),
        ("militaire", "militaires", True),
        # Snowball stems these alike, but each is another word, not a form of the keyword.
        ("commentators", "comments", False),
        ("opinion", "opinionated", False),
        ("privatization", "private", False),
        ("deployment", "deploying", False),
        ("business", "busy", False),
        # English words whose derived words Snowball stems alike too, each seen deciding a corpus item:
        # a hubspot post that is "important" is not about imports, a "Physical Altercation" not physics.
        ("imports", "important", False),
        ("imports", "importance", False),
        ("physics", "physical", False),
        ("inflation", "inflatable", False),
        ("markets", "marketers", False),
        ("season", "seasonal", False),
        ("opposition", "opposite", False),
        ("consumers", "consume", False),
        # ... and the English inflections that still meet: plurals, pasts, gerunds, possessives.
        ("company", "companies", True),
        ("movie", "movies", True),
        ("shares", "sharing", True),
        ("killed", "kills", True),
        ("shooting", "shootings", True),
        ("travel", "travelled", True),
        ("study", "studied", True),
        ("défense", "defense", True),  # accents aside, one word
    ],
)
def test_a_keyword_matches_its_word_forms_not_the_words_derived_from_it(keyword: str, word: str, matches: bool) -> None:
    c = placed_in((Section("Press Review", keywords=(keyword,)),), word)
    assert (c.section == "Press Review") is matches, c.reason


@pytest.mark.parametrize(
    ("keyword", "title", "summary", "matches"),
    [
        # Massa News: "no evidence of a crime": read in Portuguese, "Crimea" and "crime" share a stem.
        ("Crimea", "Polícia afirma não haver indícios de crime em morte de rapaz", "", False),
        ("Crimea", "Russia moves more troops to Crimea", "", True),
        ("Turkey", "Giant Bombcast", "We talk about the turkey we ate on Thursday.", False),
        ("Turkey", "Flooding in southern Turkey", "", True),
        ("Turkey", "Why Turkey Matters Now", "", True),  # a title-case headline capitalises every word
        ("turkey", "Turkey Day recipes", "", True),  # a keyword in lower case meets any case
        ("Japan", "Japanese exports rise", "", True),  # a name meets the words derived from it
    ],
)
def test_a_keyword_written_with_a_capital_is_a_name(keyword: str, title: str, summary: str, matches: bool) -> None:
    c = placed_in((Section("World", keywords=(keyword,)),), title, summary)
    assert (c.section == "World") is matches, c.reason


def test_a_keyword_in_the_summary_counts_when_the_title_has_none() -> None:
    c = room("Посол вручил грамоты", summary="Церемония прошла в Кремле.")
    assert c.section == "Russian Politics & Diplomacy"
    assert "'Кремль' in the summary" in c.reason


def test_a_combined_rule_beats_a_one_condition_rule_of_an_earlier_section() -> None:
    # "World" matches by category alone; Military's rule needs the category *and* a keyword.
    c = room("Troops take up positions in the north", categories=["World"])
    assert (c.section, c.rule) == ("Military & Defense", "rule")
    assert "category 'World' and keyword 'troops' in the title match section 'Military & Defense'" in c.reason
    assert "outranks section 'World'" in c.reason


def test_a_category_alone_no_longer_wins_by_section_order() -> None:
    # The Mirror case: a "Politics" label on a story about Obama and Syria is no reason for the
    # Russian politics section, whose rule wants Russia named as well.
    c = room("Obama warns on Syria", categories=["Politics", "World news"])
    assert c.section == "World"
    c = room("Obama warns Putin on Syria", categories=["Politics"])
    assert (c.section, c.rule) == ("Russian Politics & Diplomacy", "rule")


def test_not_keywords_rule_a_section_out() -> None:
    assert room("Army of Lovers reunite for a tour").rule == "fallback"
    assert room("Fantasy football tips").rule == "fallback"
    assert room("Football final tonight").section == "Sport"


def test_a_rule_naming_feeds_matches_the_feed_name_or_url() -> None:
    sections = (Section("Press Review", feeds=("https://press.example/feed.xml",)), WORLD)
    c = classify(
        title="What the papers say",
        url=None,
        categories=["World"],
        feed_section=None,
        sections=sections,
        fallback="Other",
        feed_names=("Press Example", "https://press.example/feed.xml"),
    )
    assert (c.section, c.rule) == ("Press Review", "source")


def test_more_keywords_found_win_a_tie_of_rule_kinds() -> None:
    sections = (Section("A", keywords=("bank",)), Section("B", keywords=("match", "goal")))
    c = classify(
        title="A late goal wins the match at the bank holiday",
        url=None,
        categories=(),
        feed_section=None,
        sections=sections,
        fallback="Other",
    )
    assert c.section == "B"


def test_a_rule_needs_a_condition() -> None:
    from digest.config import from_mapping
    from digest.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sections #1.rules #1 has no condition"):
        from_mapping({"sections": [{"name": "A", "rules": [{"not_keywords": ["x"]}]}]})
    settings = from_mapping(
        {"sections": [{"name": "A", "not_keywords": ["x"], "rules": [{"categories": ["c"], "keywords": ["k"]}]}]}
    )
    assert settings.sections[0].rules == (Rule(categories=("c",), keywords=("k",)),)


def test_a_rule_with_keyword_lists_needs_a_word_of_each() -> None:
    from digest.config import from_mapping

    settings = from_mapping(
        {
            "sections": [
                {
                    "name": "Russian Politics & Diplomacy",
                    "rules": [{"keywords": [["Russia", "Россия"], ["Trump", "Brexit"]]}],
                },
                {"name": "Society & Culture", "keywords": ["Russia", "museum"]},
            ]
        }
    )
    rules = settings.sections[0].rules
    assert rules[0].keyword_groups == (("Russia", "Россия"), ("Trump", "Brexit"))

    def where(title: str) -> str:
        return classify(
            title=title, url=None, categories=(), feed_section=None, sections=settings.sections, fallback="Other"
        ).section

    assert where("Russia and Trump: what next") == "Russian Politics & Diplomacy"
    assert where("A museum opens in Russia") == "Society & Culture"
    from digest.errors import ConfigError

    with pytest.raises(ConfigError, match="belong in a"):
        from_mapping({"sections": [{"name": "A", "keywords": [["a"], ["b"]]}]})


SHORT_STEMS = (Section("Sport", keywords=("tennis",)), Section("World", keywords=("war",)))


@pytest.mark.parametrize(
    ("title", "section"),
    [
        # Read in French, "tennis" stems to "ten", as "tenir" does: the words must begin alike too.
        ("Le procès doit se tenir dimanche à Bagdad", "Other"),
        ("Le tennis français en deuil", "Sport"),
        ("Deux joueurs de tennis suspendus", "Sport"),
        ("Fears of wars to come", "World"),  # a short stem's own inflection still matches
        ("A warning from the harbour", "Other"),
    ],
)
def test_a_short_stem_matches_only_words_that_begin_as_the_keyword(title: str, section: str) -> None:
    c = classify(title=title, url=None, categories=(), feed_section=None, sections=SHORT_STEMS, fallback="Other")
    assert c.section == section, c.reason


def test_the_keyword_index_finds_exactly_what_a_scan_of_every_position_finds() -> None:
    # An item is tested against every keyword of every rule, so its words are indexed by stem and a
    # keyword is looked for only where its first word could match (bench/sections.py: 23 ms -> 1 ms
    # an item with the shipped rules). This compares the index with the plain scan on random texts and
    # keywords of inflected words, acronyms, phrases and repeats, in English, Russian and French.
    import random

    from digest.sections import _Form, _forms, _keyword_forms, _same, _Text

    vocab = {
        lang: text.split()
        for lang, text in (
            (
                "en",
                "war wars warning tax taxes tennis ten bank banks central Bank of Russia US us UN un sanctions "
                "sanction talks talk Putin Putins election elections elected army armies the a of in",
            ),
            (
                "ru",
                "Путин Путина Путину Лавров Лаврова Кремль Кремле ставка ставки ставку банк банка Центробанк "
                "выборы выборах армия армии США в на и о",
            ),
            ("fr", "élection élections election ces CES guerre guerres banque banques taux la le de des Poutine"),
        )
    }
    rng = random.Random(12)

    def scan(forms: list[_Form], wanted: tuple[_Form, ...]) -> bool:
        n = len(wanted)
        return any(all(_same(forms[i + j], wanted[j]) for j in range(n)) for i in range(len(forms) - n + 1))

    checked = found = 0
    for _ in range(400):
        lang = rng.choice(list(vocab))
        title = " ".join(rng.choices(vocab[lang], k=rng.randint(0, 8)))
        summary = " ".join(rng.choices(vocab[lang], k=rng.randint(0, 30)))
        text = _Text(title, summary)
        for _ in range(12):
            keyword = " ".join(rng.choices(vocab[rng.choice(list(vocab))], k=rng.randint(1, 3)))
            wanted = _keyword_forms(keyword, text.keyword_lang(keyword))
            expected = None
            if wanted:
                if scan(_forms(title, text.lang, keep_stopwords=True), wanted):
                    expected = "title"
                elif scan(_forms(summary, text.lang, keep_stopwords=True), wanted):
                    expected = "summary"
            for _ in range(2):  # the second answer comes from the text's memory of the first
                assert text.where(keyword) == expected, (title, summary, keyword)
            checked += 1
            found += expected is not None
    assert checked == 4800 and found > 400  # a tenth of the keywords occur: both answers are tested


# --------------------------------------------------------------------------- a rule's languages

CULTURE = Section(
    "Society & Culture",
    rules=(
        Rule(keywords=("opera",), languages=("en", "fr")),
        Rule(categories=("World",), keywords=("opera",), languages=("en", "fr")),
    ),
)
GERMAN = Section("Deutschsprachige Presse", rules=(Rule(languages=("de",)),))


def by_language(title: str, summary: str = "", categories: Sequence[str] = ()) -> Classification:
    return classify(
        title=title,
        url=None,
        categories=categories,
        feed_section=None,
        sections=(WORLD, CULTURE, GERMAN),
        fallback="Other",
        summary=summary,
    )


@pytest.mark.parametrize(
    ("title", "summary", "section"),
    [
        ("Opera house reopens with a new season", "The company returns to its hall.", "Society & Culture"),
        ("L'opéra rouvre ses portes pour la nouvelle saison", "La troupe revient dans sa salle.", "Society & Culture"),
        # Italian and Portuguese stem these as they stem "opera": the rule is not read in them.
        ("L'operato del sindaco sul porto divide la città", "Il consiglio discute il piano.", "Other"),
        ("Polícia faz nova operação contra o tráfico no porto", "A operação começou de madrugada.", "Other"),
    ],
)
def test_a_rules_languages_narrow_it_to_items_written_in_them(title: str, summary: str, section: str) -> None:
    c = by_language(title, summary)
    assert c.section == section, c.reason
    if section == "Society & Culture":
        assert c.rule == "rule" and "keyword 'opera' in the title and language '" in c.reason


def test_languages_do_not_make_a_rule_more_specific() -> None:
    # A category and a keyword (and languages): two conditions, which beat World's category alone.
    c = by_language("Opera house reopens with a new season", categories=["World"])
    assert c.section == "Society & Culture" and "category 'World' and keyword 'opera'" in c.reason
    narrowed = classify(
        title="Opera house reopens with a new season",
        url=None,
        categories=["World"],
        feed_section=None,
        sections=(WORLD, Section("Society & Culture", rules=(Rule(keywords=("opera",), languages=("en",)),))),
        fallback="Other",
    )
    # A keyword narrowed to English is still one condition: World's category, the stronger kind,
    # beats it as it beats a plain keyword. Were languages a condition, the keyword would win.
    assert narrowed.section == "World", narrowed.reason


def test_a_rule_of_languages_alone_takes_what_no_other_rule_places() -> None:
    c = by_language("Polizei meldet einen Einbruch im Rathaus der Altstadt", "Die Täter sind noch nicht gefasst.")
    assert (c.section, c.rule) == ("Deutschsprachige Presse", "language")
    assert c.reason == "language 'de' matches section 'Deutschsprachige Presse'"
    # Any other rule outranks it, whatever the section order.
    c = by_language("Bund und Länder einigen sich über den Hafenausbau", categories=["World"])
    assert c.section == "World" and "outranks section 'Deutschsprachige Presse'" in c.reason
    assert by_language("Police report a break-in at the town hall").section == "Other"


@pytest.mark.parametrize(
    ("where", "entry", "message"),
    [
        ("rule", {"languages": ["uk"]}, r"sections #1.rules #1.languages: 'uk' is not a language digest tells"),
        ("rule", {"languages": []}, r"sections #1.rules #1.languages is empty"),
        ("rule", {"languages": "de", "keywords": ["x"]}, None),
        ("section", {"languages": ["de"]}, r"sections #1.languages belongs in a \[\[sections.rules\]\] table"),
    ],
)
def test_languages_in_the_config(where: str, entry: dict[str, object], message: str | None) -> None:
    from digest.config import from_mapping
    from digest.errors import ConfigError

    section: dict[str, object] = {"name": "A", **entry} if where == "section" else {"name": "A", "rules": [entry]}
    if message is None:
        settings = from_mapping({"sections": [section]})
        assert settings.sections[0].rules[0].languages == ("de",)
        return
    with pytest.raises(ConfigError, match=message):
        from_mapping({"sections": [section]})


def test_a_language_tag_is_read_as_its_primary_language() -> None:
    from digest.config import from_mapping

    settings = from_mapping({"sections": [{"name": "A", "rules": [{"languages": ["en-GB", "pt_BR", "EN"]}]}]})
    assert settings.sections[0].rules[0].languages == ("en", "pt")
