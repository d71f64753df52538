"""What two items are compared on: an item's features, weighed by kind. Pure.

`digest.words` makes the word forms:

* **Words**: the title's and the summary's words, stemmed in the item's language (declared or
  guessed) and folded to ASCII, without stopwords; a title word weighs twice a summary word. An
  English demonym is stemmed as its place ("Russian" as "Russia", `_place_of`).
* **Numbers** ("43", "6.8"), weighed up: the death toll, the magnitude, the score.
* **Names**: capitalised words that do not start a sentence (in French, Spanish, Italian and Russian
  a colon ends none unless direct speech follows it), and acronyms, keyed by their consonant skeleton
  (`words.skeleton`), so "Trump" meets "Трамп" and "Lauderdale" meets "Лодердейл". Names
  and numbers are what two languages share, so they are how items in two languages are compared.
  In a title-case headline ("Hate Crime Charges Brought") capitals are a style: its words are
  neither names nor capitalised, so they count as event words (`digest.cluster.stories`) as another
  outlet's do.

A feature is a string whose first letter says its kind: "w:" a word (or CJK bigram), "d:" a number,
"n:" a name's key.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import chain, repeat
from typing import Protocol

from digest import words

SUMMARY_CHARS = 600  # what of a summary is compared: the lead paragraph says what the story is

TITLE_WEIGHT = 1.0
SUMMARY_WEIGHT = 0.5
NAME_WEIGHT = 1.6
NUMBER_WEIGHT = 1.4

_ENTRY_CACHE = 262144  # tokens remembered per language


class ClusterInput(Protocol):
    """What clustering needs of an item; `digest.model.Item` fits as it is."""

    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def source(self) -> str: ...
    @property
    def when(self) -> datetime: ...
    @property
    def summary_text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A plain ClusterInput, for callers (and the bench) that have no Item."""

    title: str
    url: str | None
    source: str
    when: datetime
    summary_text: str = ""
    language: str | None = None  # the feed's declared language, when known
    via: str | None = None  # the aggregator's feed that carried it, when `source` is the outlet it names


def normalise_title(title: str) -> str:
    """NFKC, casefold, punctuation and symbols to spaces, whitespace collapsed; decimals kept."""
    text = unicodedata.normalize("NFKC", title).casefold()
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch.isalnum() or (ch in ".," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()):
            out.append(ch)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


@lru_cache(maxsize=8192)
def title_shingles(title: str) -> frozenset[str]:
    """The word forms of a title in its guessed language (stems, numbers, CJK bigrams)."""
    return frozenset(words.word_forms(title, words.language_of(title)))


def _is_title_case(tokens: list[str]) -> bool:
    # "Putin Led a Complex Cyberattack Scheme": capitals there mark a style, not names.
    # Words of four letters or more (a number's first character is a digit, below every letter).
    initials = "".join([t[0] for t in tokens if len(t) > 3 and t[0] > "9"])
    return len(initials) >= 3 and sum(map(str.isupper, initials)) >= 0.8 * len(initials)


_CAPITAL_LETTERS = bytes(range(ord("A"), ord("Z") + 1))


def _capitals(text: str) -> int:
    """How many capital letters an ASCII text has."""
    data = text.encode("ascii")
    return len(data) - len(data.translate(None, _CAPITAL_LETTERS))


def _name_key(token: str) -> str:
    # No cache of its own, nor through `words.skeleton`'s and `words.sounds`'s: `_entries` keeps what
    # `_add_text` needs of a token.
    sounded = words.sounds_of(token)
    key = words.skeleton_of_sounds(sounded)
    # A key of two letters or less is ambiguous ("kb" is Cuba and Kobe): such a name is keyed by its
    # whole spelling ("kuba" for Cuba and Куба).
    return "n:" + (key if len(key) >= 3 else sounded)


def _ties_languages(feature: str) -> bool:
    """Whether a name or figure two languages share can say they tell one story: not a name keyed by
    two letters. A two-letter acronym names something else in each language ("PM": a prime minister
    in English, the military police in Brazilian Portuguese; "US" is also the pronoun; the EU is "UE"
    in French), while a figure or a longer name ("FBI", "Lauderdale") is the same everywhere."""
    return feature[0] != "n" or len(feature) > 4


# The languages whose names of countries `country_names` reads, besides English: those the clustering
# has rules for (stemmers, sentence starts).
_COUNTRY_LANGUAGES = ("fr", "de", "es", "it", "pt", "ru")


# The one-word names of the world's continents and regions (the UN's numeric area codes: "150" is
# Europe) as CLDR writes them in English and the languages of `_COUNTRY_LANGUAGES`: Babel's
# `Locale(lang).territories`, written out here because loading seven locales' data to read these
# names cost every process that clusters 13 MB. `tests/test_cluster.py` checks the table against Babel.
REGION_NAMES: dict[str, str] = {  # each language's names, one word each, separated by spaces
    "en": "Africa Americas Asia Australasia Caribbean Europe Melanesia Oceania Polynesia world",
    "fr": "Afrique Amériques Asie Australasie Caraïbes Europe Monde Mélanésie Océanie Polynésie",
    "de": (
        "Afrika Amerika Asien Australasien Europa Karibik Lateinamerika Melanesien Mittelamerika Nordafrika "
        "Nordamerika Nordeuropa Ostafrika Ostasien Osteuropa Ozeanien Polynesien Südamerika Südasien "
        "Südeuropa Südostasien Welt Westafrika Westasien Westeuropa Zentralafrika Zentralasien"
    ),
    "es": (
        "América Asia Australasia Caribe Centroamérica Europa Latinoamérica Melanesia Mundo Norteamérica "
        "Oceanía Polinesia Sudamérica África"
    ),
    "it": "Africa Americhe Asia Australasia Caraibi Europa Melanesia Mondo Nordafrica Oceania Polinesia",
    "pt": "Américas Australásia Caribe Europa Melanésia Mundo Oceania Polinésia África Ásia",
    "ru": "Австралазия Азия Америка Африка Европа Карибы Меланезия Микронезия Океания Полинезия",
}


@lru_cache(maxsize=1)
def country_names() -> frozenset[tuple[str, str]]:
    """(name key, word feature) of the world's countries as one-word names write them in English and
    in the languages of `_COUNTRY_LANGUAGES`, each read as an item in that language reads it
    ("France": ("n:frns", "w:franc"), "Francia", "Frankreich", "Франция"), from pycountry's ISO 3166
    names and their translations: what `_Profile.names` holds for an item that names a country.

    A country is a subject that many of a day's stories share, not a story's own name: one that two
    languages' reports share does not say they tell one story (`digest.cluster.stories`), while a
    person's or a town's name does ("Putin", "Lauderdale"). Names of several words ("Ivory Coast")
    are left out: their words ("Coast") name other things too.

    The world's continents and regions are read too (`REGION_NAMES`: "Europe", "Europa", "Европа",
    "Afrique", "Karibik"): a continent is a wider subject still. Le Monde's outage of Visa
    cards "en Europe" and CNN's travel piece on a lake of "Southern Europe" were one story on it."""
    import gettext

    import pycountry  # imported here: read once, for the first batch clustered

    translations = {
        lang: gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
        for lang in _COUNTRY_LANGUAGES
    }
    pairs: set[tuple[str, str]] = set()
    for country in pycountry.countries:
        english = {country.name, getattr(country, "common_name", country.name)}
        written = [(name, "en") for name in english]
        written += [(t.gettext(name), lang) for lang, t in translations.items() for name in english]
        for name, lang in written:
            _add_place(pairs, name, lang)
    for lang, names in REGION_NAMES.items():
        for name in names.split():
            _add_place(pairs, name, lang)
    return frozenset(pairs)


def _add_place(pairs: set[tuple[str, str]], name: str, lang: str) -> None:
    """Add a place's one-word name as `_Profile.names` holds it for an item in `lang` that names it."""
    feats = _token_features(name, lang) if name.isalpha() else ()
    if feats and feats[0][0][0] == "w":
        pairs.add((_name_key(name), feats[0][0]))


# A figure with its scale word ("$6 million", "6 millions de dollars", "6 млн") is one figure, its value:
# alone, "6" is a day of the month to `vectors._weak_number` and tells no story apart, while "6 million"
# says which one (The Indian Express's two reports of Israel's "$6 million" cut to the UN, 14 hours apart).
_SCALES = {
    "thousand": 1e3,
    "thousands": 1e3,
    "mil": 1e3,
    "тыс": 1e3,
    "тысяч": 1e3,
    "тысячи": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "millionen": 1e6,
    "mio": 1e6,
    "millones": 1e6,
    "milioni": 1e6,
    "milhões": 1e6,
    "mln": 1e6,
    "млн": 1e6,
    "миллион": 1e6,
    "миллиона": 1e6,
    "миллионов": 1e6,
    "billion": 1e9,
    "billions": 1e9,
    "milliard": 1e9,
    "milliards": 1e9,
    "milliarden": 1e9,
    "mrd": 1e9,
    "mil millones": 1e9,
    "miliardi": 1e9,
    "bilhões": 1e9,
    "млрд": 1e9,
    "миллиард": 1e9,
    "миллиарда": 1e9,
    "миллиардов": 1e9,
    "trillion": 1e12,
    "трлн": 1e12,
}
# Longest first, so "mil millones" is read before "mil".
_SCALED = re.compile(
    r"(?<![\d.,])(\d+(?:[.,]\d+)*)\s+(" + "|".join(sorted(_SCALES, key=len, reverse=True)) + r")(?!\w)",
    re.IGNORECASE,
)
# The scale words as tokens may write them ("Millionen", "MILLION"): a set test on an item's tokens, in
# C, tells the few texts that carry one, and only those are searched (the search cost a sixth of the
# time it takes to read 50,000 items' features).
_SCALE_TOKENS = frozenset(
    form for word in _SCALES for part in word.split() for form in (part, part.capitalize(), part.upper())
)
# A sum with its scale abbreviated, as business and technology headlines write it: "$7.5B", "£2bn",
# "€100m", "$250K". Read only after a currency sign: alone, "5m" is five metres and "B" a letter.
_ABBREVIATED_SCALES = {
    word: value
    for value, words_of in ((1e3, "k"), (1e6, "m mn mln"), (1e9, "b bn"), (1e12, "t tn trn"))
    for word in words_of.split()
}
_CURRENCY_SCALED = re.compile(
    r"[$€£¥₽]\s?(\d+(?:[.,]\d+)*)\s?(" + "|".join(sorted(_ABBREVIATED_SCALES, key=len, reverse=True)) + r")(?![\w])",
    re.IGNORECASE,
)
_CURRENCY = re.compile(r"[$€£¥₽]")
_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:([.,])\d{3})(?:\1\d{3})*")  # "0.375" is a decimal


def _grouped(number: str) -> bool:
    """Whether a figure's commas or points group its thousands ("6,000", "1.500.000") rather than
    mark its decimals ("6.45", "2,5"): groups of three digits, one separator throughout."""
    return ("," in number or "." in number) and _THOUSANDS.fullmatch(number) is not None


def _figure(number: str) -> str:
    """A figure's feature, one for one value however its thousands are written: "6,000", "6.000" and
    "6000" (and "6 000", `_SPACE_GROUPED`) are "d:6000"; a decimal's comma is a point ("2,5": "d:2.5")."""
    return "d:" + (number.replace(",", "").replace(".", "") if _grouped(number) else number.replace(",", "."))


# French, Russian and most languages but English group a figure's thousands with a space ("6 000
# manifestants", "16 417 человек"; NFKC has made no-break and thin spaces plain ones). Read as two
# figures, "6" and "000", such a figure met neither the English "6,000" nor the same outlet's "6000",
# and two reports of one event seemed to give figures that all differ (`stories._number_mismatch`).
# Not in English text, where "Chapter 3 100 years on" is two figures; a year is never the first group.
_SPACE_GROUPED = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?: \d{3})+(?![.,]?\d)")


def _joined(match: re.Match[str]) -> str:
    return match.group().replace(" ", "")


def _scaled_figure(number: str, scale: str, scales: Mapping[str, float] = _SCALES) -> str:
    """The feature of a figure and its scale word: "1,500 million" and "1.500 Millionen" (groups of
    three: thousands) are 1500000000, "2,5 milliards" and "2.5 billion" (a decimal) 2500000000."""
    separators = number.count(",") + number.count(".")
    if _grouped(number):
        value = float(number.replace(",", "").replace(".", ""))
    elif separators <= 1:
        value = float(number.replace(",", "."))
    else:  # "1.2.3": no figure
        return ""
    return "d:" + format(value * scales[scale.lower()], ".0f")


# "President-elect", "senator-elect": a title, not an election; as two words its "elect" was the
# event word every report on the president-elect shared with every report on an election. ("Voters
# re-elect the mayor" is an election.)
_ELECT = re.compile(r"(?<=[^\W\d_])(?<!\bre)-elect\b", re.IGNORECASE)
# A time of day ("12:30 PM PT", "11:45", "18:00 Uhr", "14h30") says when a report was written or
# updated, not what happened: TMZ's live post on Kate Spade's death opened its updates with "12:30
# PM PT --" and "11:45 AM PT --", whose "45" was a rare figure of the batch and whose clock took a
# sixth of the post's weight, so its follow-up two hours later (same outlet, same note, same
# daughter) scored under its bar. Not a time with seconds ("2:03:23", a marathon's), a score ("2:1",
# "98:95"), a ratio ("16:9") or a decimal ("6.45"). The pattern begins with a digit (the regex engine
# then skips to digits) and is tried only on a text with a colon, or an "h" in the languages that
# write "14h30": a search of every text cost a twentieth of clustering's time.
_ZONES = "GMT|UTC|BST|CET|CEST|EST|EDT|CST|CDT|MST|MDT|PST|PDT|PT|ET|CT|MT|MSK|Uhr|uhr|мск|МСК"
_CLOCK = re.compile(
    r"\d(?<![\d.,:/]\d)(?:(?<=[01])\d|(?<=2)[0-3])?"  # an hour, 0-23, not a part of a longer figure
    r"(?::|h ?)[0-5]\d(?![:.,/]?\d)"  # its minutes, not followed by seconds
    rf"(?:\s*[AaPp]\.?\s?[Mm]\b\.?)?(?:\s*(?:{_ZONES})\b)?"
)
_CLOCK_WITH_H = frozenset({"fr", "pt", "es", "it"})
_SENTENCE_END = re.compile(r"[.!?:;]\s+")
# French, Spanish, Italian and Russian write the word after a colon in lower case ("Syrie : un
# attentat ...", "Roma, freddo: aperte le stazioni"), so a capital there is a name ("Piratage
# imputé à la Russie : Poutine mis en cause"), not a sentence's first word; direct speech after a
# colon still opens with one (Макрон: «Ситуация ...»). English and German headlines capitalise
# after a colon ("Report: Putin ...", "USA: Der ..."), and Portuguese outlets differ.
_SENTENCE_END_LOWER_AFTER_COLON = re.compile(r"[.!?;]\s+|:\s+(?=[\"'«“‘„(\[])")
_LOWER_AFTER_COLON = frozenset({"fr", "es", "it", "ru"})
# A sentence's first word, after any opening quotes or brackets (French puts a space inside « »).
_LEAD_WORD = re.compile(r"(?:[\"'«“‘„(\[¿¡]\s*)*([^\W\d_]+)")


# In ASCII text, each sentence end mark as "." and each blank as " " (a table for `bytes.translate`):
# `_SENTENCE_END` (and its colon variant) can match only where the text so written has ". ", a
# substring test in C. Most headlines and leads have none; the regex's search of them cost twice the
# whole loop over their tokens.
_ENDS_AS_DOTS = bytes(46 if chr(c) in ".!?:;" else 32 if chr(c).isspace() else c for c in range(256))


def _sentence_starts(text: str, lang: str, ascii: bool | None = None) -> set[str]:
    """The first word of each sentence (and of the text): capitalised whatever the word. `ascii`:
    `text.isascii()`, when the caller knows it."""
    ends = _SENTENCE_END_LOWER_AFTER_COLON if lang in _LOWER_AFTER_COLON else _SENTENCE_END
    if (text.isascii() if ascii is None else ascii) and b". " not in text.encode("ascii").translate(_ENDS_AS_DOTS):
        found = None
    else:
        found = ends.search(text)
    if found is None:  # one sentence (most headlines and leads): no split, no set comprehension
        m = _LEAD_WORD.match(text)
        return {m.group(1)} if m else set()
    return {m.group(1) for part in ends.split(text) if (m := _LEAD_WORD.match(part))}


def _token_features(token: str, lang: str) -> tuple[tuple[str, float, bool], ...]:
    """(feature, weight factor, is a capitalised word's) for one token; names are added by the caller."""
    if not token.isascii() and words.has_cjk(token):  # CJK is never ASCII: no search of most tokens
        forms = words.word_forms(token, lang)
        # A run of k characters gives k-1 bigrams: together they weigh about one word, so that a shared
        # four-character prefix ("最近在听", "recently listening to") is not three shared words.
        bigrams = sum(1 for f in forms if words.has_cjk(f)) or 1
        out = [("w:" + f, 1 / math.sqrt(bigrams) if words.has_cjk(f) else 1.0, False) for f in forms]
        # Japanese writes foreign and company names in katakana (トヨタ, マイナス): those are its names.
        for stretch in words.script_stretches(token):
            if len(stretch) > 1 and words.is_katakana(stretch[0]):
                katakana = {"w:" + f for f in words.cjk_bigrams(stretch)}
                out = [(f, w, f in katakana) for f, w, _ in out] + [("n:" + stretch, NAME_WEIGHT, True)]
        return tuple(out)
    if token[0].isdigit():
        return ((_figure(token), NUMBER_WEIGHT, False),)
    if words.is_function_word(token, lang):
        return ()
    form = words.word_form_of(token, lang)  # no cache: `_entries` keeps the token's entry
    if form is None:
        return ()
    if lang == "en" and token[0].isupper():
        form = _place_of(form)
    return (("w:" + form, 1.0, token[0].isupper()),)


def _place_of(form: str) -> str:
    """An English demonym's stem as its place's: 'russian' -> 'russia', 'syrian' -> 'syria', 'korean' ->
    'korea', so "Russian hackers" meets "Russia hacked". Only -ian and -ean: places that end in -an
    themselves (Iran, Taiwan) are left alone, and dropping the -i of 'iraqi' or 'pakistani' also turned
    names into common words ('Hindi' into 'hind') and cost precision on the bench's invented names.
    Where a country's stem is cut otherwise ('haitian' -> 'haiti', 'egyptian' -> 'egypt', 'italian' ->
    'itali', 'canadian' -> 'canada'), that country's is taken: 'Haitian senator-elect' meets 'ex-Haiti
    coup leader'."""
    if len(form) > 5 and form.endswith(("ian", "ean")):
        countries = _english_country_forms()
        for place in (form[:-1], form[:-2], form[:-3], form[:-3] + "a"):
            if place in countries:
                return place
        return form[:-1]
    return form


@lru_cache(maxsize=1)
def _english_country_forms() -> frozenset[str]:
    """The English stems of the one-word names of the world's countries ("haiti", "itali", "egypt")."""
    import pycountry  # imported here: read once, by the first English demonym met

    names = {name for c in pycountry.countries for name in (c.name, getattr(c, "common_name", c.name))}
    return frozenset(form for name in names if name.isalpha() and (form := words.word_form(name, "en")))


# Words English and German write with a capital that name no one: days, months, a clock's marks
# ("on Tuesday", "12:30 PM PT"). As names, seven celebrity and technology items of 4-6 June 2018
# shared "Tuesday" as if it were a person they all wrote about. "March" stays a name (a march, a
# Ms March); "May" is an English stopword already.
_CALENDAR_TEXT = (
    "monday tuesday wednesday thursday friday saturday sunday january february april june july august "
    "september october november december jan feb apr jun jul aug sep sept oct nov dec "
    "am pm gmt utc bst cet cest est edt cst cdt pst pdt pt et msk "
    "montag dienstag mittwoch donnerstag freitag samstag sonnabend sonntag januar februar märz juni juli "
    "oktober dezember"
)
_CALENDAR = frozenset(_CALENDAR_TEXT.split())


def _token_entry(token: str, lang: str) -> tuple[tuple[tuple[str, float, bool], ...], str | None, bool]:
    """A token's features, its name key when written like a name (None otherwise), and whether it is
    a short acronym (a name wherever it stands): what `_add_text` needs of it, worked out once."""
    feats = _token_features(token, lang)
    if (
        len(token) > 1
        and token[0].isupper()
        and not words.is_function_word(token, lang)
        and token.casefold() not in _CALENDAR
    ):
        return feats, _name_key(token), token.isupper() and len(token) <= 6
    return feats, None, False


_Entry = tuple[tuple[tuple[str, float, bool], ...], str | None, bool]
# Per language, token -> what `_add_text` needs of it, worked out once: a plain word (one feature at
# weight 1, no capital, no name; "" for a stopword) in the first dict, any other in the second.
_PLAIN: dict[str, dict[str, str]] = {}
_ENTRIES: dict[str, dict[str, _Entry]] = {}


# What a token (as `words.tokens_of_normalised` gives it) is to the language guess and, in the language
# it was last read in, to `_add_text`, found with one lookup for both: (its telling form, `words.telling_form`;
# that language, "" until it is read; what `_PLAIN[language]` has for it, `_IN_ENTRIES` where it is not
# plain). A title and summary read from their tokens (`_guessed_from_tokens`, most items) looked each
# token up twice, in the guess's words and in `_PLAIN`, two tables too large for the cache.
# A tuple of strings, replaced in `_TOKENS` when read in another language: a thread never sees one
# language's answer under another's name, and the collector, which untracks such tuples, never walks them.
# Typed as a tuple of any length: compiled, a tuple of three typed items is unpacked into a C struct
# wherever it is read and made anew wherever it is stored, two million times at 50,000 items.
_Token = tuple[str, ...]
_TOKENS: dict[str, _Token] = {}
_IN_ENTRIES = "\x00"  # a `_Token`'s third item for a token that is no plain word in its language (`_ENTRIES`)


def _tokens(tokens: list[str]) -> list[_Token]:
    """Each token's `_Token`."""
    known = _TOKENS
    if len(known) > _ENTRY_CACHE:  # a long-running daemon must not grow it forever
        known.clear()
    out: list[_Token] = []
    for token in tokens:
        record = known.get(token)
        if record is None:
            # "Said" tells what "said" tells, judged already if "said" was met: `words.telling_form`
            # searches a word with a long regex, and most words are met in two cases.
            lower = token.lower()
            met = known.get(lower) if lower != token else None
            record = known[token] = (met[0] if met is not None else words.telling_form(token), "", "")
        out.append(record)
    return out


def _entries(lang: str) -> tuple[dict[str, str], dict[str, _Entry]]:
    plain, entries = _PLAIN.get(lang), _ENTRIES.get(lang)
    if plain is None or entries is None or len(plain) + len(entries) > _ENTRY_CACHE:
        plain, entries = _PLAIN[lang], _ENTRIES[lang] = {}, {}  # a long-running daemon must not grow them forever
    return plain, entries


def _add_text(
    features: dict[str, float],
    capitals: set[str],
    others: dict[str, None],
    text: str,
    lang: str,
    weight: float,
    names: list[tuple[str, str]] | None = None,
    pairs: _Pairs | None = None,
    known: list[str] | None = None,
    records: list[_Token] | None = None,
) -> bool:
    """Add one text's features at `weight` (a feature keeps its largest weight); True when the text
    is a title-case headline (its capitals are a style).

    Texts are added lightest first: no word feature in `features` weighs more than `weight` already
    (a word's factor is 1 at most), so a plain word is set at `weight` without reading its weight.
    `capitals` collects the word features of capitalised tokens: what is left are the event words.
    `others` collects the features that are not words (numbers, names' keys) in their order in `features`.
    `names`, when given, collects (name key, word feature) of each name found by capitals alone (not
    an acronym's), for `common_nouns`. `pairs`, when given, collects the text's two-word names
    (`_name_pairs`). `known`, when given, is the tokens of the text as written (ASCII), read by the
    language guess already, and `records` what each one is (`_Token`): they are the tokens unless a
    rule below rewrites the text.
    """
    written = text
    text = unicodedata.normalize("NFKC", text)
    if "-elect" in text or "-Elect" in text or "-ELECT" in text:  # the regex only where it can match
        text = _ELECT.sub("", text)
    if ":" in text or (lang in _CLOCK_WITH_H and "h" in text):
        text = _CLOCK.sub(" ", text)
    if lang != "en":
        text = _SPACE_GROUPED.sub(_joined, text)
    ascii = text.isascii()
    if known is None or text != written:
        tokens, records = words.tokens_of_normalised(text, ascii), None
    else:
        tokens = known
    found = _SCALED.findall(text) if not _SCALE_TOKENS.isdisjoint(tokens) else []
    # Of the currency signs, ASCII has "$" alone: a substring test instead of the regex's scan.
    abbreviated = _CURRENCY_SCALED.findall(text) if ("$" in text if ascii else _CURRENCY.search(text)) else []
    if found or abbreviated:  # a few texts: the loop's iterators are not made for the others
        scaled = chain(zip(found, repeat(_SCALES)), zip(abbreviated, repeat(_ABBREVIATED_SCALES)))
        for (number, scale), scales in scaled:
            figure = _scaled_figure(number, scale, scales)
            if figure and weight * NUMBER_WEIGHT > features.get(figure, 0.0):
                features[figure] = weight * NUMBER_WEIGHT
                others[figure] = None
    # Title case wants three capitalised words: ASCII text with fewer than three capital letters (most
    # summaries and sentence-case headlines) is none, told by deleting its capitals in C.
    title_case = _is_title_case(tokens) if not ascii or _capitals(text) >= 3 else False
    # A text in capitals ("KARNATAKA BANK BAGS MSME BANKING EXCELLENCE AWARDS") writes every word as
    # an acronym: its capitals are a style, as a title-case headline's are, and name no one.
    shouted = text.isupper()
    starts = _sentence_starts(text, lang, ascii)
    name_weight = weight * NAME_WEIGHT
    get = features.get
    plain, entries = _entries(lang)
    capitalised: list[str] = []  # tokens written like names, in order: two side by side may be a whole name
    # A repeated token changes nothing (a feature keeps its largest weight; sets and `others` keep
    # one of each); only `names` takes it again, which `common_nouns` reads as a set. So tokens are
    # not deduplicated first, and their plain forms are looked up as the loop reaches them (a token
    # met for the first time is in `plain` for its next occurrence, and in `_TOKENS` for the next
    # text). Compiled (`hatch_build.py`), a loop over a list with a lookup in it is native code: 5%
    # fewer instructions for an item's features than `zip(tokens, map(plain.get, tokens))`, which is
    # faster in pure Python. A token whose record (`_Token`) was last read in this language needs no
    # lookup at all.
    for k in range(len(tokens)):
        token = tokens[k]
        telling = ""  # what the token's record tells the guess, when it has one
        remember = False  # whether its record is to say what it is in this language
        feature: str | None = None
        if records is not None:
            record = records[k]
            telling = record[0]
            if record[1] == lang:
                feature = record[2]
                if feature == _IN_ENTRIES:
                    feature = None
            else:
                feature = plain.get(token)
                if feature is not None:
                    _TOKENS[token] = (telling, lang, feature)
                else:
                    remember = True
        else:
            feature = plain.get(token)
        if feature is not None:  # most tokens: one pass through this loop is all they cost
            if feature:
                features[feature] = weight
            continue
        entry = entries.get(token)
        if entry is None:
            entry = _token_entry(token, lang)
            feats, key, _ = entry
            if key is None and (not feats or (len(feats) == 1 and feats[0][1] == 1.0 and not feats[0][2])):
                # A plain token: a stopword (no feature) or one word at weight 1, no capital, no name.
                feature = feats[0][0] if feats else ""
                plain[token] = feature
                if remember:
                    _TOKENS[token] = (telling, lang, feature)
                if feature:
                    features[feature] = weight
                continue
            entries[token] = entry
        if remember:
            _TOKENS[token] = (telling, lang, _IN_ENTRIES)
        feats, key, acronym = entry
        if shouted:
            acronym = False
        if key is not None and feats and not acronym:
            capitalised.append(token)
        for feature, factor, capital in feats:
            w = weight * factor
            if w > get(feature, 0.0):
                features[feature] = w
                if feature[0] != "w":
                    others[feature] = None
            if capital and not title_case:  # in "Hate Crime Charges Brought", capitals are a style
                capitals.add(feature)
        if key is not None and (acronym or (not title_case and token not in starts)):
            if name_weight > get(key, 0.0):
                features[key] = name_weight
                others[key] = None
            if names is not None and not acronym and feats:
                names.append((key, feats[0][0]))
    if pairs is not None and len(capitalised) >= 2:
        _name_pairs(text, capitalised, entries, features, weight * NAME_WEIGHT, *pairs)
    return title_case


# Not frozen: a frozen dataclass's `__init__` sets each field through `object.__setattr__`, five times the
# cost of plain slots (0.11 s against 0.02 s for 50,000 items). Nothing changes a profile once made.
@dataclass(slots=True)
class _Profile:
    lang: str
    features: dict[str, float]  # kind weights, before document frequencies
    # The word features of capitalised tokens (`_add_text`): `events` are the others. Kept instead of
    # the events themselves: a set of a few where `events` has thirty (made and freed for every item),
    # and clustering needs only an item's rare events (its rare words less these and `others`).
    capitals: set[str]
    others: list[str]  # the features that are not words (numbers, names' keys), in their order in `features`
    # (name key, word feature) of the names found by their capital alone; empty for most items
    names: tuple[tuple[str, str], ...] = ()
    styled: bool = False  # a title-case text: its lower-case words are not evidence of lower case
    # A person's whole name ("Kate Spade"): (word, word) of two adjacent capitalised words that are both
    # names where they stand; and (key, word, key, word, weight) of two that are not taken for names,
    # in a title-case headline or opening a sentence, which the batch makes names if another item
    # writes the pair as a name (`vectors._whole_names`)
    name_pairs: tuple[tuple[str, str], ...] = ()
    latent_pairs: tuple[tuple[str, str, str, str, float], ...] = ()
    said: int = words.SCRIPT_SAYS  # how much its text said its language (`words.language_read`)

    @property
    def events(self) -> set[str]:
        """The word features not written with a capital: a new set at each call."""
        events = self.features.keys() - self.others
        events -= self.capitals
        return events


def _guessed_from_tokens(title: str, summary: str) -> bool:
    """Whether `words.language_read_of_telling` answers for a title and summary as `language_read` of
    the two joined does: ASCII (their tokens are what `_latin_words` finds, and NFKC leaves them as
    they are), no apostrophe (clitics and elisions), 400 characters at most (the guess reads no more)."""
    return (
        len(title) + len(summary) < 400
        and title.isascii()
        and summary.isascii()
        and "'" not in title
        and "'" not in summary
    )


def _profile(item: ClusterInput, lang: str | None = None) -> _Profile:
    """An item's features, read in `lang`, else in the one its text says (its feed's declared one where
    the text says little)."""
    summary = (getattr(item, "summary_text", "") or "")[:SUMMARY_CHARS]
    said = words.SCRIPT_SAYS
    title = item.title
    title_tokens: list[str] | None = None
    summary_tokens: list[str] | None = None
    title_records: list[_Token] | None = None
    summary_records: list[_Token] | None = None
    if lang is None:
        hint = getattr(item, "language", None)  # the feed's declaration: taken where the text says little
        declared = hint if isinstance(hint, str) else None
        if _guessed_from_tokens(title, summary):
            # The guess from the tokens `_add_text` reads (one pass over the text instead of two).
            title_tokens = words.tokens_of_normalised(title, True)
            summary_tokens = words.tokens_of_normalised(summary, True)
            title_records, summary_records = _tokens(title_tokens), _tokens(summary_tokens)
            telling = {r[0] for r in chain(title_records, summary_records)}
            telling.discard("")
            lang, said = words.language_read_of_telling(telling, f"{title} {summary}", declared)
        else:
            lang, said = words.language_read(f"{title} {summary}", declared)
    features: dict[str, float] = {}
    capitals: set[str] = set()
    others: dict[str, None] = {}
    names: list[tuple[str, str]] = []
    pairs: _Pairs | None = None if lang in _EVERY_NOUN_CAPITALISED else ([], [])
    name_pairs, latent_pairs = pairs or ((), ())
    # The lighter text first (`_add_text`).
    styled = bool(summary) and _add_text(
        features, capitals, others, summary, lang, SUMMARY_WEIGHT, names, pairs, summary_tokens, summary_records
    )
    styled = (
        _add_text(features, capitals, others, title, lang, TITLE_WEIGHT, names, pairs, title_tokens, title_records)
        or styled
    )
    return _Profile(
        lang, features, capitals, list(others), tuple(names), styled, tuple(name_pairs), tuple(latent_pairs), said
    )


_WEAK_GUESS = 1  # points: a guess one function word makes
_SOURCE_SURE = 3  # items of a source sure of one language, and more than half of its sure ones


def in_sources_languages(items: Sequence[ClusterInput], profiles: Sequence[_Profile]) -> list[_Profile]:
    """The profiles, with an item whose text says too little of its language (one function word at
    most) read in the language its source's other items are surely in, in this batch, where there is
    one: The Indian Express's title-only "US imposes terrorism-related sanctions against Osama bin
    Laden son" was French on "son" alone, and so never one story with its "US designates Osama’s son
    Hamza bin Laden as ‘global terrorist’". A source's language is learned from its items, as its
    boilerplate is (`vectors`); an item it cannot say much of keeps its guess."""
    sure: dict[str, Counter[str]] = {}
    for item, p in zip(items, profiles, strict=True):
        if p.said > _WEAK_GUESS:
            sure.setdefault(item.source, Counter())[p.lang] += 1
    out = list(profiles)
    for k, (item, p) in enumerate(zip(items, profiles, strict=True)):
        langs = sure.get(item.source) if p.said <= _WEAK_GUESS else None
        if not langs:
            continue
        ((lang, n),) = langs.most_common(1)
        if lang != p.lang and n >= _SOURCE_SURE and 2 * n > langs.total():
            out[k] = _profile(item, lang)
    return out


# German capitalises every noun: two side by side are no more a name than one.
_EVERY_NOUN_CAPITALISED = frozenset({"de"})
# What `_name_pairs` collects: (word, word) of whole names, (key, word, key, word, weight) of latent ones.
_Pairs = tuple[list[tuple[str, str]], list[tuple[str, str, str, str, float]]]


def _name_pairs(
    text: str,
    capitalised: list[str],
    entries: Mapping[str, _Entry],
    features: Mapping[str, float],
    weight: float,
    name_pairs: list[tuple[str, str]],
    latent_pairs: list[tuple[str, str, str, str, float]],
) -> None:
    """Collect a text's two-word names (`_Profile.name_pairs`, `latent_pairs`): two tokens written like
    names, one after the other, that the text writes side by side ("Kate Spade", "Kate Spade's")."""
    for first, second in zip(capitalised, capitalised[1:], strict=False):
        if first + " " + second not in text:
            continue
        (feats1, k1, _), (feats2, k2, _) = entries[first], entries[second]
        if k1 is None or k2 is None:
            continue
        w1, w2 = feats1[0][0], feats2[0][0]
        if k1 in features and k2 in features:  # both names where they stand (here, or elsewhere in the text)
            name_pairs.append((w1, w2))
        else:
            latent_pairs.append((k1, w1, k2, w2, weight))


# A title's place in a series: "Day One", "Day 01", "Part 2", "Episode #12", "Tag 3", "día 2", "часть 2".
# One outlet's "Game of the Year 2013: Day One" and "...: Day Two", a podcast's "Update: Day 01" and
# "Update: Day 02", are two episodes, worded alike because they are a series.
_SERIES_MARKERS = (
    "day|part|episode|ep|chapter|round|week|stage|game|volume|vol|season|"
    "jour|épisode|partie|chapitre|manche|étape|tag|teil|folge|kapitel|runde|etappe|"
    "día|dia|parte|capítulo|capitulo|episodio|jornada|etapa|giorno|puntata|giornata|"
    "день|часть|серия|выпуск|глава|тур|этап"
)
_ORDINALS = {
    word: k
    for k, words_of in enumerate(
        (
            "one first i",
            "two second ii",
            "three third iii",
            "four fourth iv",
            "five fifth v",
            "six sixth vi",
            "seven seventh vii",
            "eight eighth viii",
            "nine ninth ix",
            "ten tenth x",
        ),
        start=1,
    )
    for word in words_of.split()
}
_SERIES = re.compile(rf"\b({_SERIES_MARKERS})\s*#?\s*(\d{{1,3}}|{'|'.join(_ORDINALS)})\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def series_places(title: str) -> tuple[tuple[str, int], ...]:
    """Where a title says it stands in a series: ("day", 1) for "... Day One" and for "Day 01"."""
    return tuple(
        (marker.casefold(), int(place) if place.isdigit() else _ORDINALS[place.casefold()])
        for marker, place in _SERIES.findall(title)
    )


COMMON_NOUN_USES = 2  # items of a batch that write a capitalised word in lower case: then it names nothing


# What `lower_case_uses` counts: the batch's (name key, word) pairs of names found by capitals, and
# how many items write each of those words in lower case.
LowerCaseUses = tuple[set[tuple[str, str]], dict[str, int]]


def lower_case_words(counted: LowerCaseUses) -> set[str]:
    """The words of the batch's names that some item writes in lower case (`counted`: the batch's
    `lower_case_uses`)."""
    return {w for w, k in counted[1].items() if k >= 1}


def common_nouns(counted: LowerCaseUses) -> frozenset[str]:
    """The name keys that, wherever the batch has them, come from words it also writes in lower case.

    A capital is how a headline writes "Police" in "...: Chicago Police", and how Portuguese writes
    the institution in "Polícia não tem dúvidas". Both are keyed "plc", and as the one name two
    languages shared they merged a Chicago beating with a murder in Curitiba. A word that items of
    the batch write in lower case ("police", "polícia") is a common noun: its key stays in the
    vectors (dropping it would make an item's other names weigh more), but it anchors no merge of
    two languages (`digest.cluster.stories`). A key that only words never written in lower case give
    (Trump, Lauderdale, German nouns) is a name. A key that a common noun gives is none, though a
    name gives it too: keys are skeletons, and "Pelosi" is keyed as "Police" is; in the whole corpus
    as one batch an item naming her kept "Police" a name, and the Chicago beating met the Curitiba
    murder again. Lower case is counted in items' event words, not in title-case headlines', where
    every word is an event word by style. `counted` is the batch's `lower_case_uses`.
    """
    pairs, uses = counted
    common = {w for w, k in uses.items() if k >= COMMON_NOUN_USES}
    if not common:
        return frozenset()
    return frozenset({k for k, w in pairs if w in common})


def lower_case_uses(profiles: Sequence[_Profile], df: Mapping[str, int]) -> LowerCaseUses:
    """The batch's (name key, word) pairs of names found by capitals, and how many items write each
    of those words in lower case: counted once for both `lower_case_words` and `common_nouns`, which
    `vectors._batch` asks for (each count cost ~0.09 s at 50,000 items). `df` is the batch's
    document frequencies (in how many of `profiles` each feature is)."""
    pairs = set(chain.from_iterable([p.names for p in profiles]))  # (key, word), each once
    if not pairs:
        return pairs, {}
    wanted = frozenset([w for _, w in pairs])
    # The unstyled items that have a wanted word as an event word (not capitalised; the wanted are words,
    # never among `others`): all items that have it (df), less those that capitalise it (an item's
    # capitals are among its features), less the styled ones that have it otherwise. Counted over the
    # items' few capitals and the few styled items, not over every feature of every item again.
    capitalised = Counter(chain.from_iterable([p.capitals for p in profiles]))
    styled = Counter(chain.from_iterable([wanted.intersection(p.features) - p.capitals for p in profiles if p.styled]))
    return pairs, {w: df[w] - capitalised[w] - styled[w] for w in wanted}
