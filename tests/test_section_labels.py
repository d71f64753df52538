"""The shipped section rules on real items: >= 85% where a newsroom editor would put them.

tests/data/section_labels.csv lists real items of ../shared/corpus/feeds/news (feed file, the
item's link as the parser gives it, the section an editor chose by reading the item; no publisher
text). The labels were decided by hand before the rules were written, never from their output.
The test parses each feed with the real parser, applies the rules `digest init` ships, prints the
accuracy and every miss, and fails below the target.

tests/data/section_labels_it_pt.csv does the same for every item of the corpus's Italian and
Portuguese news feeds (RomaToday, Massa News, Jornal de Notícias, UOL), labelled the same way (a
Moscow newsroom's sections: another country's crime, weather and city politics are World) before
the rules learned those languages; it has its own, lower floor.

tests/data/section_labels_tech.csv does the same for every item of five technology feeds (heise
online, heise developer, TechCrunch, Habr; XDA Developers' since session 21), where a newsroom files
technology under Science & Space.
tests/data/section_labels_june2018.csv, for every item of 4-6 June 2018 (the feeds of the second
labelled clustering set: technology, celebrity and environment news in English).
tests/data/section_labels_heldout.csv, for every item of the news feeds no other set had labelled
(CNN International's 50 of 24-25 July 2018, Le Monde's 21 of 1-2 June 2018, and the single items of
HuffPost Canada, the Daily Mail, il Giornale and the Bank of Russia): labelled in session 30 before
their placements were looked at, to see how the rules do on news they were not written from.
"""

from __future__ import annotations

import csv
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir

from digest import config as cfg
from digest.errors import DigestError
from digest.model import ParsedItem
from digest.parse import parse_feed
from digest.sections import Classification, classify

LABELS = Path(__file__).parent / "data" / "section_labels.csv"
TARGET = 0.85
LABELS_IT_PT = Path(__file__).parent / "data" / "section_labels_it_pt.csv"
# Session 14: 21.5% before the rules had Italian and Portuguese labels, paths and words; 81.5% after.
# Session 16: 83.8%, "opera" looked for only in en, fr, de and es (a rule's languages).
FLOOR_IT_PT = 0.80
LABELS_TECH = Path(__file__).parent / "data" / "section_labels_tech.csv"
# Session 15: 20.5% before the rules had technology words (most items fell to "Other"); 56.2% after.
# Session 16: 66.1%: German product reviews ("im Test"), game genres, plant closures, "Ausstellung", "Raketenstart".
# heise's newsticker has neither categories nor topical paths: its gadgets and products by name are
# what is left. An operator files such a feed whole with its own `section = "Science & Space"`.
# Session 32: 68.9%: "AI" and "Samsung Galaxy" take three of XDA's "News" posts out of World.
FLOOR_TECH = 0.65
LABELS_JUNE_2018 = Path(__file__).parent / "data" / "section_labels_june2018.csv"
# Session 19: 39.7%. Every item of 4-6 June 2018 (TMZ, PerezHilton, Boing Boing, TreeHugger, Hacker
# News, kottke.org, Medium, Hacker Noon, a16z), labelled by a reader who never saw the rules' answers.
# Most misses fall to "Other": Hacker News gives headlines only ("TypeScript 2.9 is now available"),
# gossip names people, not topics. Tried and not kept: a feed's usual section for its items no rule
# places (half of the items it moved, on the four sets, went to a wrong section). An operator files
# such feeds whole with `section = ...`. Then 50.4%: a technology desk's words in English
# (encryption, data centre, Kubernetes, "Show HN"...) and lifestyle's (recipe, memoir, makeup...),
# chosen from this set's misses, so a training figure; the technology set, held out, is unchanged.
FLOOR_JUNE_2018 = 0.50
LABELS_HELDOUT = Path(__file__).parent / "data" / "section_labels_heldout.csv"
# Session 30: 71.4% held out (55 of 77), against 86.9% on the set the rules were written from: the
# rules' own-set figure flatters them. Most misses are CNN's, whose "/health/" files wellness and
# celebrity as often as medicine, and Le Monde's, whose sub-desks' paths ("/m-gastronomie/",
# "/bande-dessinee/", "/police-justice/", "/roland-garros/") no rule knew. Then 79.2% with those paths,
# 80.5% with "space agency" a strong Science word: training figures for those seven items, no other
# corpus item moved. 81.8% with a health desk's items Society's but for those with science words.
FLOOR_HELDOUT = 0.75
LABELS_HELDOUT_JT_BCN = Path(__file__).parent / "data" / "section_labels_heldout_jt_bcn.csv"
# Session 32: every item of the Japan Times' feed (news, sport, community, life, culture, opinion) and
# 20minutos' Catalan edition, labelled before the rules were measured on them (a look at the January
# edition had shown where the rules put about twenty Japan Times items): 69.9% held out (93 of 133).
# The Japan Times labels every item "News", which the general-news rule reads as World: its community
# and life desks' 25 items went there. Then 87.2% with its desks' paths ("/life/", "/community/",
# "/science-health/"): a training figure; no other corpus item moved.
FLOOR_HELDOUT_JT_BCN = 0.80
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # after every item of the corpus: no date is "in the future"


def _labels(path: Path = LABELS) -> dict[str, dict[str, str]]:
    by_feed: dict[str, dict[str, str]] = defaultdict(dict)
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            by_feed[row["feed"]][row["link"]] = row["section"]
    return by_feed


def test_the_labels_name_only_newsroom_sections_and_cover_enough_items() -> None:
    labels = _labels()
    sections = Counter(s for feed in labels.values() for s in feed.values())
    assert set(sections) <= set(cfg.DEFAULT_SECTIONS)
    assert sum(sections.values()) >= 150
    assert all(sections[s] >= 10 for s in cfg.DEFAULT_SECTIONS), sections


def test_the_shipped_rules_put_real_items_where_an_editor_would() -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    accuracy = _accuracy(corpus, _labels())
    assert accuracy >= TARGET, f"{accuracy:.1%} < {TARGET:.0%}"


@pytest.mark.parametrize(
    ("labels_file", "items", "floor"),
    [
        # Every item of those feeds, not a chosen few.
        pytest.param(LABELS_IT_PT, 120, FLOOR_IT_PT, id="italian-and-portuguese-feeds"),
        # Every item of heise online, heise developer, TechCrunch and Habr: labelled by a second reader
        # who never saw the rules' answers, before the rules learned technology words; and XDA
        # Developers' ten, added when its "News" label put nine of them in World.
        pytest.param(LABELS_TECH, 120, FLOOR_TECH, id="technology-feeds"),
        # Every item of 4-6 June 2018: technology, celebrity and environment feeds in English.
        pytest.param(LABELS_JUNE_2018, 141, FLOOR_JUNE_2018, id="june-2018-feeds"),
        # Every item of the news feeds the other sets leave out, labelled before the rules saw them.
        pytest.param(LABELS_HELDOUT, 77, FLOOR_HELDOUT, id="held-out-news-feeds"),
        pytest.param(LABELS_HELDOUT_JT_BCN, 130, FLOOR_HELDOUT_JT_BCN, id="held-out-japan-times-and-barcelona"),
    ],
)
def test_the_shipped_rules_on_whole_feeds_each_set_above_its_floor(labels_file: Path, items: int, floor: float) -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    labels = _labels(labels_file)
    assert sum(map(len, labels.values())) >= items
    accuracy = _accuracy(corpus, labels)
    assert accuracy >= floor, f"{accuracy:.1%} < {floor:.0%}"


def _placed(
    settings: cfg.Settings, item: ParsedItem, feed_names: tuple[str, str], language: str | None = None
) -> Classification:
    """A parsed item placed by `settings`' rules, as an edition would place it from its feed (which
    declares `language`)."""
    return classify(
        title=item.title,
        url=item.url,
        categories=item.categories,
        feed_section=None,
        sections=settings.sections,
        fallback=settings.digest.fallback_section,
        summary=item.summary_text,
        feed_names=feed_names,
        language=language,
    )


def _accuracy(corpus: Path, labels: dict[str, dict[str, str]]) -> float:
    """The share of labelled items the shipped rules put in the editor's section; prints it, by
    section, and every miss with the rules' reason."""
    settings = cfg.from_mapping(tomllib.loads(cfg.example_toml()), env={})
    total = right = 0
    misses: list[str] = []
    per_section: dict[str, Counter[str]] = defaultdict(Counter)
    for feed_file, wanted in labels.items():
        url = f"https://feeds.example/{feed_file}"
        feed = parse_feed(
            (corpus / "feeds" / "news" / feed_file).read_bytes(),
            url=url,
            content_type=None,
            now=NOW,
            excerpt_chars=settings.digest.excerpt_chars,
        )
        # Labelled by the link the feed gives; an aggregator's item links its article now, and its
        # key is still the feed's link.
        items = {link: item for item in feed.items for link in (item.key, item.url)}
        assert set(wanted) <= set(items), f"{feed_file}: labelled links the parser no longer gives"
        for link, section in wanted.items():
            item = items[link]
            got = _placed(settings, item, (feed.title or "", url), feed.language)
            total += 1
            per_section[section]["items"] += 1
            if got.section == section:
                right += 1
                per_section[section]["right"] += 1
            else:
                misses.append(
                    f"  {feed_file}: {item.title[:70]!r}\n    editor: {section}; rules: {got.section}"
                    f" ({got.reason[:160]})"
                )
    accuracy = right / total
    print(f"\nsection accuracy on {total} labelled real items: {accuracy:.1%} ({right} right)")
    for section in cfg.DEFAULT_SECTIONS:
        c = per_section[section]
        print(f"  {section:30} {c['right']:3}/{c['items']:3}")
    print(f"misses ({len(misses)}):")
    print("\n".join(misses))
    return accuracy


def test_the_rules_keyword_index_changes_no_placement_of_any_corpus_item(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each item looks only for the keywords its words could begin (sections._KeywordIndex), and a
    # rule none of whose keywords could occur is ruled out by one set test: bench/sections.py
    # 0.94 -> 0.37 ms an item. Every news item of the corpus must get the same section and the same
    # reason as when every keyword of every rule is looked for.
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    from digest import sections

    settings = cfg.from_mapping(tomllib.loads(cfg.example_toml()), env={})
    items = []
    for path in sorted((corpus / "feeds" / "news").iterdir()):
        url = f"https://feeds.example/{path.name}"
        try:
            feed = parse_feed(path.read_bytes(), url=url, content_type=None, now=NOW)
        except DigestError:
            continue
        items += [(item, (feed.title or "", url), feed.language) for item in feed.items]

    def placements() -> list[Classification]:
        return [_placed(settings, item, names, language) for item, names, language in items]

    indexed = placements()
    monkeypatch.setattr(sections._KeywordIndex, "possible", lambda self, text: None)
    assert placements() == indexed
    assert len(indexed) > 2500 and sum(c.rule != "fallback" for c in indexed) > 1500


def shipped(
    title: str, summary: str = "", *, url: str | None = None, categories: tuple[str, ...] = ()
) -> Classification:
    """An item placed by the rules `digest init` ships."""
    settings = cfg.from_mapping(tomllib.loads(cfg.example_toml()), env={})
    return classify(
        title=title,
        url=url,
        categories=categories,
        feed_section=None,
        sections=settings.sections,
        fallback=settings.digest.fallback_section,
        summary=summary,
    )


@pytest.mark.parametrize(
    ("title", "summary", "business"),
    [
        # RomaToday's "Ladro acrobata si arrampica sul tubo del gas" went to Business on "gas" alone.
        ("Ladro si arrampica sul tubo del gas e svaligia un appartamento", "È salito fino al terzo piano.", False),
        ("Fuga di gas in una palazzina, evacuate dieci famiglie", "I vigili del fuoco sono intervenuti.", False),
        ("Natural gas prices jump as the cold spell grips Europe", "Traders expect supplies to tighten.", True),
        ("Цены на газ в Европе выросли на 10%", "Биржевые цены на газ выросли.", True),
        # "shares" is the stock when it moves, the verb otherwise (PerezHilton, a marketing blog).
        ("Tesla shares fell 5% on Monday", "", True),
        ("Shares of the carmaker slumped after the recall", "", True),
        ("Kim Kardashian shares a photo from her holiday", "The star shares her favourite moments.", False),
        ("Social network confirms data-sharing deals", "The deals shared users' data with phone makers.", False),
    ],
)
def test_the_shipped_business_rule_wants_trade_not_a_pipe_or_a_shared_post(
    title: str, summary: str, business: bool
) -> None:
    got = shipped(title, summary)
    assert (got.section == "Business & Economy") is business, got


@pytest.mark.parametrize(
    ("title", "summary", "section"),
    [
        # "goal" is an aim as often as a score: a score is sport beside it.
        ("Kane's late goal sinks the leaders", "The striker scored in the 89th minute.", "Sport"),
        ("Rashford goal earns a draw at Anfield", "", "Sport"),
        ("fortify-headers 2.0", "The goal of this release is to support more libcs.", "Other"),
        # A word of one language that another language's stemmer reads as its own ("truce" as the
        # French "trucs", "imports" as "importante", "livre" as the Portuguese "free").
        ("Truce holds along the front line", "", "Military & Defense"),
        ("Firefox : deux thèmes sombres", "Des trucs pour lire la nuit sans se fatiguer.", "Other"),
        ("China's imports slump in March", "", "Business & Economy"),
        ("Une mise à jour importante pour Windows", "", "Other"),
        ("Le livre de la rentrée", "Un premier roman salué par la critique.", "Society & Culture"),
        ("Entrada livre no parque neste domingo", "", "Other"),
        # The club, not the city; the English "band" is not the Spanish "bandas" (gangs).
        ("Los Mossos investigan un tiroteo en Barcelona", "Creen que fue una venganza entre bandas.", "World"),
        ("El Barça gana al Eibar con dos goles de Messi", "", "Sport"),
        ("The band's new album is out on Friday", "", "Society & Culture"),
        ("Un voyage au pays des volcans", "", "Other"),  # "pays": a country, not pay
        ("Teachers strike over pay", "", "Business & Economy"),
        # A technology desk's words, not their everyday look-alikes: the source code, not a penal
        # code or a dress code (no "coding", which English inflection keys make "code").
        ("Show HN: a tiny grep written in Rust", "", "Science & Space"),
        ("Vendor leaks source code of its router firmware", "", "Science & Space"),
        ("A new dress code for the parade", "", "Other"),
        ("The penal code turns 150 this year", "", "Other"),
        ("Seven recipes for the first rhubarb", "", "Society & Culture"),
        # A report's or a table's column is no opinion column (two items of a developer blog went to
        # the press review on "new columns in the report"); a columnist still writes one.
        ("Updates to reporting", "Two new columns show the share of clicks in each report.", "Other"),
        ("Why this plan will fail", "Our columnist says it goes too far.", "Press Review"),
        # A match alone is no game: an advertising tool's "Customer Match" and a games podcast's
        # "fighting game match-ups" and "we match three" went to Sport, the only three corpus items
        # "match" alone placed; a sport's words beside it still make it one.
        ("Reach your best customers with Customer Match", "Upload a list and match it to signed-in users.", "Other"),
        ("This week's show", "Puzzle games, odd match-ups and your questions.", "Other"),
        ("Rovers come back to win the match 3-2", "The striker scored twice after the break.", "Sport"),
        ("Le match de football reporté à samedi", "", "Sport"),
        # Nor is a defense alone the military's: a trial's, an essay's "In defense of boredom" and an
        # actor's "jumped to Tambor's defense" went to Military & Defense, the only four corpus items
        # "defense" or "défense" alone placed; a defence minister or secretary still goes there.
        ("In defense of slow mornings", "", "Other"),
        ("Episode 4: The case for the defense", "The defense calls its first witness.", "Other"),
        ("La défense du climat au cœur du débat", "", "Other"),
        ("Defense Secretary to meet allies in Brussels", "", "Military & Defense"),
        ("Le ministre de la Défense en visite à Brest", "", "Military & Defense"),
        ("El ministro de Defensa visita la base de Rota", "", "Military & Defense"),
        # "AI" and "Samsung Galaxy" are names: Italian's "Ai" opening a title, a galaxy of stars and a
        # game studio are not technology (session 32).
        ("Samsung Galaxy S10 may launch with triple cameras", "", "Science & Space"),
        ("This week's show", "We talk to Iron Galaxy's founder about fighting games.", "Other"),
        ("The assistant that makes your calls", "Google's AI now phones the hairdresser for you.", "Science & Space"),
        ("Ai domiciliari il sindaco, la giunta si dimette", "", "World"),
        ("A galaxy of stars turns out for the gala", "", "Other"),
    ],
)
def test_the_shipped_rules_on_words_of_two_meanings(title: str, summary: str, section: str) -> None:
    got = shipped(title, summary)
    assert got.section == section, got


@pytest.mark.parametrize(
    ("title", "section"),
    [
        # Words the rules had in English only, in the other languages they read (as corpus items of
        # 20minutos, Inovação Tecnológica and Le Monde use them, which went to "Other").
        ("La gripe sigue al alza y llena las urgencias de los hospitales", "Science & Space"),
        ("Los médicos alertan de una epidemia de gripe en la región", "Science & Space"),
        ("Una nueva tecnología reduce el consumo de combustible de los aviones", "Science & Space"),
        ("A tecnologia dos novos ecrãs chega às lojas", "Science & Space"),
        ("Ouverture du procès de l'ancien maire à Lyon", "World"),
        # The US president's news is World's; with Russia, it is relations, Russian Politics'.
        ("Trump blasts his former lawyer over a recording", "World"),
        ("Trump and Putin to meet in Helsinki, Russia says", "Russian Politics & Diplomacy"),
    ],
)
def test_the_shipped_rules_know_their_words_in_the_languages_they_read(title: str, section: str) -> None:
    got = shipped(title)
    assert got.section == section, got


@pytest.mark.parametrize(
    ("title", "summary", "section"),
    [
        # A suspect described as an army veteran is no military news: the Japan Times' report of the
        # Fort Lauderdale shooting ("An army veteran who complained ...", labelled "News") went to
        # Military & Defense on "army" beside its label, the only corpus item "veteran" takes out of it.
        ("Gunman kills three at a shopping mall", "The suspect, an Army veteran, was arrested at the scene.", "World"),
        ("Army veteran opens a bakery", "", "World"),
        ("Army chief visits troops on the border", "", "Military & Defense"),
    ],
)
def test_a_veteran_is_no_military_news(title: str, summary: str, section: str) -> None:
    got = shipped(title, summary, categories=("News",))
    assert got.section == section, got


@pytest.mark.parametrize(
    ("categories", "section"),
    [
        # The Guardian files its Larry Nassar reports under /us-news/, labelled "Sport" among others.
        (("Gymnastics", "US news", "US sports", "Sport"), "Sport"),
        (("US news", "Michigan"), "World"),
    ],
)
def test_a_topic_label_beats_a_general_news_path(categories: tuple[str, ...], section: str) -> None:
    got = shipped(
        "Investigation into the team doctor was dropped in 2004",
        url="https://www.theguardian.com/us-news/2018/jan/31/doctor-investigation",
        categories=categories,
    )
    assert got.section == section, got


@pytest.mark.parametrize(
    ("title", "summary", "url", "categories", "section"),
    [
        # A health desk files its readers' lives as often as medicine: CNN's "/health/" carried sexual
        # fantasies and a climate lawsuit, TreeHugger's wellness practices, WNYC's "Health" a podcast
        # on swimsuits and bodies. Without a science word, the desk's item is Society's.
        ("What your sexual fantasies say about you", "", "https://e.example/2018/07/24/health/fantasies/", (), None),
        ("10 wellness practices from around the world", "", "https://e.example/health/relax.html", (), None),
        ("#18: The Swimsuit Issue", "Bodies, summer and the beach.", None, ("Health",), None),
        ("Кому полезна утренняя зарядка", "Советы тренера.", None, ("Здоровье",), None),
        # With one, it is medicine: Science & Space, by the rule of both conditions.
        (
            "Owners think their dogs are smart",
            "Scientists are smarter.",
            "https://e.example/2017/01/07/well/dogs/",
            (),
            "S",
        ),
        (
            "Un nuovo farmaco contro l'emicrania",
            "Gli scienziati lo hanno provato su mille pazienti.",
            None,
            ("Salute",),
            "S",
        ),
    ],
)
def test_a_health_desk_is_society_but_for_its_science(
    title: str, summary: str, url: str | None, categories: tuple[str, ...], section: str | None
) -> None:
    got = shipped(title, summary, url=url, categories=categories)
    assert got.section == ("Science & Space" if section == "S" else "Society & Culture"), got
