"""Word forms in any language: what two texts are compared on. Pure.

This module owns how running text becomes comparable units, for every module that matches words
(clustering stories, section keywords). It reads nothing but its arguments.

* `tokens`: Unicode words and numbers (NFKC first, so full-width letters and digits are ASCII). A word
  is a run of letters; a number keeps its decimal separator ("6,8" and "6.8" are one number).
* `language_of`: a cheap guess: the script (Cyrillic -> ru, Greek, Han, kana, Hangul, Arabic, ...),
  and for Latin script the language whose commonest function words the text uses most (en, fr, de,
  es, it, pt). No model, no data files. The feed's declared language (`declared_language`) is taken
  instead where the text says little of its own (`language_read`).
* `stem`: the Snowball stemmer of the language (snowballstemmer, pure Python), so "Путина" and
  "Путин", "shooting" and "shootings" meet. Languages without a stemmer keep the word as it is.
* `fold`: casefold and transliterate to ASCII (Unidecode), so "Трамп" becomes "tramp" and
  "Lauderdale" stays "lauderdale". Transliteration alone does not make "tramp" meet "trump":
  `skeleton` (the folded consonants) is the key on which names are compared across scripts.
* `word_forms`: the stems of a text's words in its language, folded; stopwords dropped; texts in
  scripts written without spaces (Chinese, Japanese) give character bigrams instead of words.
* `is_function_word`: a stopword or another of the language's function words ("do", "nous",
  "которые"): clustering leaves them all out; the stopword lists alone stay short, for the language
  guess and section keywords.

Stemming comes before folding because the stemmers work on the native script.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from functools import lru_cache

# The languages `language_of` tells apart; stemmers exist for more (see _SNOWBALL).
LANGUAGES = ("en", "ru", "fr", "de", "es", "it", "pt")

_SNOWBALL = {
    "en": "english",
    "ru": "russian",
    "fr": "french",
    "de": "german",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "sv": "swedish",
    "no": "norwegian",
    "nb": "norwegian",
    "da": "danish",
    "fi": "finnish",
    "hu": "hungarian",
    "ro": "romanian",
    "tr": "turkish",
    "ca": "catalan",
    "el": "greek",
    "ga": "irish",
    "hy": "armenian",
    "id": "indonesian",
    "lt": "lithuanian",
    "ne": "nepali",
    "sr": "serbian",
    "ta": "tamil",
    "ar": "arabic",
    "eu": "basque",
    "hi": "hindi",
    "yi": "yiddish",
}

# The commonest function words of each language: enough to guess the language of a headline and a
# summary, and words that say nothing about which story a text tells. Deliberately short lists.
_STOPWORD_TEXT = {
    "en": """the a an and or of to in on at for from with by as is are was were be been has have had it its
        this that these those he she they his her their we you not no after over into than then will would
        can could may says said about more up out who what when which while new""",
    "ru": """и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее её мне
        было вот от меня еще ещё нет о из ему теперь когда даже ну ли если уже или ни быть был была были
        будет него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо
        ней для мы тебя их чем сам чтобы без будто чего раз тоже себе под кто этот того потому этого какой
        совсем ним здесь этом один почти мой тем чтобы нее сейчас куда зачем всех никогда можно при наконец
        два об другой хоть после над больше тот через эти нас про всего них какая много разве три эту моя
        впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между
        также это эта году года""",
    "fr": """le la les un une des du de et en au aux dans pour par sur avec ses son sa sont est pas qui que
        ce il elle ils ne se plus ou mais a été être après d l qu n s c j leur leurs cette ces lors""",
    "de": """der die das den dem des ein eine einer eines einem einen und oder mit von vom zum zur bei aus
        auf für nach über unter ist sind war wird werden hat haben nicht auch sich im in zu an am als wie
        es er sie wir ihr sein seine dass noch nur nun""",
    "es": """el la los las un una unos unas del al en con por para sus su se es son tras como lo le les
        y que de a no ha han fue más pero este esta ese esa entre sobre sin""",
    "it": """il lo la i gli le un una uno del della dei delle degli dello al alla ai alle e ed o che di da
        in con su per tra fra non è sono ha hanno l nel nella nei nelle dal dalla sul sulla come più anche""",
    "pt": """o a os as um uma uns umas do da dos das ao aos no na nos nas em com por para pelo pela e ou
        que de não é são foi foram tem mais mas seu sua seus suas se como entre sobre após""",
}
STOPWORDS: dict[str, frozenset[str]] = {lang: frozenset(text.split()) for lang, text in _STOPWORD_TEXT.items()}

# The rest of each language's function words (pronouns, auxiliaries, conjunctions, prepositions,
# quantifiers; after the Snowball project's stop lists, and Russian's inflected pronouns), for
# clustering only: `STOPWORDS` stays short because `language_of` counts its words as votes, and
# section keywords keep them. As features they say nothing of a story, yet in a day's batch one of
# them can be rare and weigh most: The Indian Express's headline "Report on US election hacking says
# Russia plans to do more" had "do" (in no other item) as its heaviest feature, which held it under
# the bar with the New York Times' analysis of the same report. Left out: words that carry an event
# as a verb's particle ("off", "down": "break off", "step down"), and "us", which is also the US
# (none of those left is an acronym).
_MORE_FUNCTION_WORD_TEXT = {
    "en": """i me my myself our ours ourselves your yours yourself yourselves him himself hers herself itself
        them theirs themselves whom am being do does did doing having ought but if because until against
        between through during before above below again further once nor here there where why how all any
        both each few most other some such only own same so too very just should now also""",
    "fr": """je tu nous vous me te lui y on mon ma mes ton ta tes notre nos votre vos moi toi soi eux même
        ceci cela ça cet celui celle ceux celles dont où quoi quel quels quelle quelles si ni car donc puis
        aussi très tout tous toute toutes sans sous vers chez depuis pendant avant contre selon déjà encore
        ici là suis es sommes êtes serai sera serons seront serait seraient étais était étions étaient fut
        furent soit soient ayant eu ai as avons avez ont aura auront aurait auraient avais avait avaient""",
    "de": """aber alle allem allen aller alles also andere anderen anderer anderes bin bis bist da damit dann
        dazu dein deine deinem deinen deiner denn derer dessen dich dir du dies diese diesem diesen dieser
        dieses doch dort durch euer eure euch gegen gewesen habe hatte hatten hier hinter ich ihm ihn ihnen
        ihre ihrem ihren ihrer ihres jede jedem jeden jeder jedes jene jenem jenen jener jenes jetzt kann
        kein keine keinem keinen keiner keines können könnte man mein meine meinem meinen meiner mich mir
        muss musste nichts ob ohne sehr seinem seinen seiner seines selbst so solche soll sollte sondern
        sonst um uns unser unsere unserem unseren viel waren was weil welche welchem welchen welcher welches
        wenn werde will wir wirst wo wollen wollte würde würden zwar zwischen""",
    "es": """yo me mi mis tu te ti tú él ella ellos ellas nos nosotros vosotros os mí muy ya también hasta
        desde durante todo todos toda todas otro otra otros otras mismo misma mismos mismas cuando donde
        porque aunque si sí ni o u había hay habían he era eran ser será sido está están estaba estaban
        estar esto eso aquel aquella estos esos estas esas ante bajo contra hacia según cual cuales quien
        quienes qué cómo poco mucho muchos nada algo alguno algunos algunas""",
    "it": """io tu lui lei noi voi loro mi ti ci si vi ne mio mia miei mie tuo tua suo sua suoi sue nostro
        nostra vostro questo questa questi queste quello quella quelli quelle ma se dove quando perché mentre
        già ancora molto poco tutto tutti tutta tutte altro altri altra altre stesso stessa era erano essere
        stato stata stati sarà ho hai abbiamo avete aveva avevano fa fu dopo prima contro senza sotto sopra
        verso presso cui chi cosa quale quali così dunque però""",
    "pt": """tu ele ela eles elas nós vós me te lhe lhes meu minha meus minhas teu tua nosso nossa este esta
        estes estas esse essa esses essas isto isso aquilo aquele aquela já ainda também muito pouco todo
        toda todos todas outro outra outros outras mesmo mesma quando onde porque porém nem há havia era
        eram ser será sido está estão estava estavam estar ter tinha tinham sem sob até desde contra durante
        qual quais quem""",
    # The short list has the commonest forms; these are the inflections of its relative and
    # determining pronouns ("которые", "самой", "своих"), which Snowball's list leaves out too.
    "ru": """который которая которое которые которого которой котором которых которым которыми самый самая
        самое самые самой самых самого самом самым самыми самому свой своя своё свои своего своей своих своим
        своими своём своему вся всё весь всем всеми этих этим этими этому те та такая такое такие таких
        таким такими такую является являются""",
}
_MORE_FUNCTION_WORDS = {lang: frozenset(text.split()) for lang, text in _MORE_FUNCTION_WORD_TEXT.items()}

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
# Clustering's tokens keep a figure written with dashes or slashes whole: a date ("06-01-2009",
# "1/7/2017"), a score ("6-4"), a season ("2016/17"). As parts, two dates or two scores share most of
# theirs ("06", "2009"), so a podcast's episode of 1 June met the next day's, and a player's semifinal
# his final, as one story; whole, they are figures that differ.
_FIGURE = re.compile(r"\d+(?:[.,/-]\d+)*|[^\W\d_]+")
_ASCII_FIGURE = re.compile(r"[A-Za-z]+|\d+(?:[.,/-]\d+)*")  # the same tokens in ASCII text, found in 60% of the time
# Spellings that say a Latin-script language ("ç" says French or Portuguese), worth two function words each.
_MARKS = {
    "en": re.compile(r"^(?:the|of|and)$"),
    # "ç" and "ê" are Portuguese spellings too ("ameaça", "mês"): French's and Portuguese's both. A
    # final "è" is Italian ("è", "caffè"); French writes it before a consonant ("très", "problème").
    "fr": re.compile(r"(?:eaux?$|eux|ç|œ|è(?!$)|ê)"),  # "-eau" ends a word: English writes "beautiful" too
    "de": re.compile(r"(?:ß|ä|ö|ü|sch|tz)"),
    "es": re.compile(r"(?:ñ|ción|ó$)"),
    "it": re.compile(r"(?:zione|gli|ò|ù$|cch)"),
    "pt": re.compile(r"(?:ã|õ|ção|lh|nh|ç|ê)"),
}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_VOWELS = re.compile(r"(?<=.)[aeiouy']+|[^a-z0-9]+")
_REPEATS = re.compile(r"(.)\1+")
_NOT_ALNUM = re.compile(r"[^a-z0-9.]+")  # Unidecode writes soft signs and the like as ' and "

# Scripts written without spaces between words: Han (incl. extension A and compatibility), kana,
# Hangul syllables. Their runs give character bigrams, the usual unit of Chinese and Japanese search.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RUN = re.compile(f"([{_CJK}]+)")
_HIRAGANA = re.compile("[\u3040-\u309f]+")

# Script -> language, for texts whose script says it (first letter of the Unicode character name).
_SCRIPT_LANGUAGE = (
    ("CYRILLIC", "ru"),
    ("GREEK", "el"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("DEVANAGARI", "hi"),
    ("HANGUL", "ko"),
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("CJK", "zh"),
    ("KANNADA", "kn"),
    ("THAI", "th"),
    ("BENGALI", "bn"),
    ("TAMIL", "ta"),
)


# Letters of the Arabic script that Arabic does not write: Urdu's retroflexes, its nasal nun and its
# final ye say Urdu; Persian's pe, che, zhe, gaf and its own kaf and ye say Persian (Urdu writes them
# too, so Urdu's letters are looked for first). BBC Urdu's headlines were marked lang="ar" for a
# screen reader, which then read them in an Arabic voice.
_URDU_LETTERS = frozenset("ٹڈڑںےۓۂھ")
_PERSIAN_LETTERS = frozenset("پچژگکی")


def _arabic_script_language(text: str) -> str:
    letters = set(text)
    if not letters.isdisjoint(_URDU_LETTERS):
        return "ur"
    return "fa" if not letters.isdisjoint(_PERSIAN_LETTERS) else "ar"


def tokens(text: str) -> list[str]:
    """Words (runs of letters) and numbers (with their decimal separator), in order, case kept."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text))


def tokens_of_normalised(text: str, ascii: bool | None = None) -> list[str]:
    """Clustering's tokens of a text already in NFKC (normalising twice costs a pass over the text):
    `tokens`, but a figure written with dashes or slashes is one token. `ascii`: `text.isascii()`,
    when the caller knows it."""
    return _ascii_tokens(text) if (text.isascii() if ascii is None else ascii) else _FIGURE.findall(text)


def _blank_all_but(kept: str) -> bytes:
    """A table for `bytes.translate` that makes every byte but those of `kept` a blank: a loop in C,
    where `str.translate` looks each character up in a mapping, and raises and clears a LookupError
    for each one the mapping leaves as it is."""
    return bytes(c if chr(c) in kept else 32 for c in range(256))


_FIGURE_MARKS = ".,/-"
# Every ASCII character no token has (all but letters, digits and the ".,/-" inside a figure), to a blank.
_NOT_IN_TOKENS = _blank_all_but(string.ascii_letters + string.digits + _FIGURE_MARKS)


def _ascii_tokens(text: str) -> list[str]:
    """`_ASCII_FIGURE.findall(text)`, found a stretch at a time: no token spans a character of
    `_NOT_IN_TOKENS`, so the stretches between them are split off in C, and most are one word
    (or one word and the stop or comma after it), which needs no regex. The regex read the text a
    character at a time: it took a tenth of clustering's instructions."""
    tokens: list[str] = []
    for stretch in text.encode("ascii").translate(_NOT_IN_TOKENS).decode("ascii").split():
        if stretch.isalpha() or stretch.isdigit():
            tokens.append(stretch)
            continue
        word = stretch.strip(_FIGURE_MARKS)  # ".,/-" join digits only: around letters they part tokens
        if word.isalpha():
            tokens.append(word)
        else:
            tokens.extend(_ASCII_FIGURE.findall(stretch))
    return tokens


def is_number(token: str) -> bool:
    return _NUMBER.fullmatch(token) is not None


def primary_language(tag: str | None) -> str | None:
    """'en-US' -> 'en', 'ru_RU' -> 'ru'; None or an empty tag -> None."""
    if not tag:
        return None
    primary = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


# ISO 639-2 codes some feeds declare where BCP 47 wants the two-letter one, for the languages this
# module reads (`TOLD_LANGUAGES`); another three-letter code stays as it is (a language with no
# two-letter code, or one nothing here reads anyway).
_TWO_LETTER = {
    "eng": "en", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "spa": "es", "ita": "it", "por": "pt",
    "rus": "ru", "ell": "el", "gre": "el", "ara": "ar", "heb": "he", "hin": "hi", "kor": "ko", "jpn": "ja",
    "zho": "zh", "chi": "zh", "kan": "kn", "tha": "th", "ben": "bn", "tam": "ta", "urd": "ur", "fas": "fa",
    "per": "fa",
}  # fmt: skip
# BCP 47's codes that name no one language: undetermined, several, none, not coded; "i"/"x" open the
# grandfathered and private-use tags ("x-klingon").
_NO_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})
# A BCP 47 tag's shape (RFC 5646 section 2.1): a language subtag, then subtags of up to 8 letters or
# digits; an underscore as POSIX locales write it ("pt_BR") is taken as the hyphen.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*", re.ASCII)


def declared_language(tag: str | None) -> str | None:
    """A feed's declared language (RSS `<language>`, `dc:language`, Atom `xml:lang`) as the primary
    subtag the rest of digest compares: "en-US" -> "en", "pt_BR" -> "pt", "eng" -> "en"; None for
    none, a code that names no language ("und", "x-klingon") or words ("English", "fr FR")."""
    tag = (tag or "").strip()
    if not _LANGUAGE_TAG.fullmatch(tag):
        return None
    primary = tag[: tag.find("-") if "-" in tag else tag.find("_") if "_" in tag else len(tag)].lower()
    return None if primary in _NO_LANGUAGE else _TWO_LETTER.get(primary, primary)


def language_of(text: str, declared: str | None = None) -> str:
    """The language `text` is read in: `language_read`'s, without how much the text said it."""
    return language_read(text, declared)[0]


# A guess of this many points or fewer (`language_guess`: two function words, or one marked spelling)
# yields to the feed's declaration. Measured on the corpus's feeds that declare one (2,062 items;
# tests/test_feed_language.py prints each feed's before and after). Where an item's guess differs
# from its feed's declaration, the declaration is right but for a misdeclaring feed (the Kannada
# site's English headlines, which the script check below keeps). Read alone, the headlines of 97
# such items give way at 0, 1, 2, 3 points for 29, 75, 91, 95 of them; each point more also hands
# some 220 items whose guess was right to the declaration, which a misdeclaring feed (an English
# feed declaring "de") would get wrong. Two is where the gains stop paying for that risk.
DECLARATION_OUTWEIGHS = 2
# The languages a text must write some letter of to be read in them (script -> language as
# `_script_language` names it): a Kannada site's English headlines under its feed's "kn" are English.
_SCRIPT_LANGUAGES = frozenset(lang for _, lang in _SCRIPT_LANGUAGE)
_SAME_SCRIPT = {"fa": "ar", "ur": "ar"}


def language_read(text: str, declared: str | None = None) -> tuple[str, int]:
    """The language `text` is read in and how much the text itself said it (`language_guess`'s points).

    A text that says its language clearly keeps its guess, whatever its feed declares (a feed can
    misdeclare: a CMS's default "en-US" on a Portuguese site); a text that says little ("Paraná
    apresenta zagueiro e atacante": Italian on "e" alone) is read in the feed's `declared` language
    (a BCP 47 tag, `declared_language`), unless that language's script is one the text never writes.
    """
    return _read_as_declared(text, language_guess(text), declared)


def _read_as_declared(text: str, guess: tuple[str, int], declared: str | None) -> tuple[str, int]:
    if not declared:  # no declaration (`declared_language` would read None or "" as none)
        return guess
    lang, said = guess
    declared = declared_language(declared)
    if declared is None or declared == lang or said > DECLARATION_OUTWEIGHS:
        return lang, said
    script = _SAME_SCRIPT.get(declared, declared)
    if script in _SCRIPT_LANGUAGES:
        found = {_script_language(ch) for ch in _NON_LATIN.findall(text[:400])}
        if script not in found and not (script == "ja" and "zh" in found):
            return lang, said
    return declared, said


SCRIPT_SAYS = 1000  # what `language_guess` counts for a language its script tells


def language_guess(text: str) -> tuple[str, int]:
    """`language_of`'s guess and how much said it: the points of the language's function words (1
    each) and spellings (2) in the text, or `SCRIPT_SAYS` where its script tells; 0 where nothing did
    (then "en"). A headline of one function word says little ("... bin Laden son": French "son")."""
    text = text[:400]
    clitics = 0
    if "'" in text or "’" in text:
        # "Obama’s", "don't": English spellings, whose letters are no French elisions ("s’", "d’")
        text, clitics = _ENGLISH_CLITIC.subn(" ", text)
    if not text.isascii() and (others := _NON_LATIN.findall(text)):
        scripts: dict[str, int] = {}
        for ch in others:
            lang = _script_language(ch)
            if lang:
                scripts[lang] = scripts.get(lang, 0) + 1
        letters = sum(map(str.isalpha, text))
        if scripts:
            lang, count = max(scripts.items(), key=lambda kv: kv[1])
            if count * 2 >= letters:
                # Japanese mixes kanji with kana; any kana says Japanese rather than Chinese.
                if lang == "zh" and "ja" in scripts:
                    return "ja", SCRIPT_SAYS
                if lang == "ar":
                    return _arabic_script_language(text), SCRIPT_SAYS
                return lang, SCRIPT_SAYS
    folded = text.casefold()
    found = _latin_words(folded)
    # A lone letter (or "qu") is a French or Italian word only elided before an apostrophe ("l’",
    # "d’", "qu’"): the "S" a podcast writes before a season's number is no "s’".
    found -= _ELIDED
    if clitics or "'" in text or "’" in text:
        found.update(_ELISION.findall(folded))
    return _guess_of_words(found, clitics)


def _guess_of_words(found: set[str], clitics: int) -> tuple[str, int]:
    if unseen := found - _SEEN:
        if len(_SEEN) > _WORDS_JUDGED:  # a long-running daemon must not grow them forever
            _forget_words()
            unseen = found
        _SEEN.update(unseen)
        for word in unseen:
            _judge(word)
    # Most words are neither function words nor marked: skipped in C.
    return _guess_of_telling(found & _POINTFUL, clitics)


def _guess_of_telling(telling: set[str], clitics: int) -> tuple[str, int]:
    """The guess from the words of a text that say something (`_word_points`), each once."""
    hits = [clitics] + [0] * (len(_LATIN) - 1)  # "en" first
    for word in telling:
        said = _POINTS.get(word)
        if said is None:  # forgotten since `telling_form` judged it (`_forget_words`)
            said = _word_points(word)
        for k, points in said:
            hits[k] += points
    best = max(range(len(_LATIN)), key=hits.__getitem__)  # the first of equals: "en" when nothing scores
    return (_LATIN[best] if hits[best] else "en"), hits[best]


_WORDS_JUDGED = 262144  # words `_SEEN` (or `_POINTS`, which `telling_form` fills) holds before all three start again


def _forget_words() -> None:
    _SEEN.clear()
    _POINTS.clear()
    _POINTFUL.clear()


def _judge(word: str) -> tuple[tuple[int, int], ...]:
    """`_word_points(word)`, kept in `_POINTS` and `_POINTFUL` when it says something."""
    said = _word_points(word)
    if said:
        _POINTS[word] = said
        _POINTFUL.add(word)
    return said


def telling_form(token: str) -> str:
    """A token (as `tokens_of_normalised` gives it) in lower case when that says something of a
    Latin-script language (a function word, a marked spelling: `_word_points`), else "". A caller
    that keeps it per token (`digest.cluster.features`) guesses a text's language from the telling
    forms of its tokens (`language_read_of_telling`) without judging or looking up any word again."""
    word = token.lower()
    if word in _ELIDED:  # a lone letter says nothing without its apostrophe (`language_guess`)
        return ""
    if word in _POINTS:
        return word
    if len(_POINTS) > _WORDS_JUDGED:
        _forget_words()
    return word if _judge(word) else ""


def language_read_of_telling(telling: set[str], text: str, declared: str | None = None) -> tuple[str, int]:
    """`language_read` of an ASCII `text` of 400 characters at most without an apostrophe, from the
    telling forms (`telling_form`) of its tokens (`tokens_of_normalised`), "" left out: what
    `_latin_words` would find in it that says something. Clustering has the tokens already: the
    text is not read again."""
    return _read_as_declared(text, _guess_of_telling(telling, 0), declared)


_LATIN = ("en", "fr", "de", "es", "it", "pt")
# Every language `language_of` can answer: by function words in Latin script, else by script.
TOLD_LANGUAGES = frozenset([*_LATIN, *(lang for _, lang in _SCRIPT_LANGUAGE)])
LATIN_LANGUAGES = frozenset(_LATIN)  # those it tells by function words: its guesses among them may be weak
_NON_LATIN = re.compile("[^\\W\\d_\u0000-\u024f]")  # letters beyond Latin Extended-B


_LATIN_WORD = re.compile(r"[^\W\d_]+")
# An English clitic after a word: "’s", "n’t", "’ll", "’re", "’ve", "’d", "’m". The Indian Express's
# title-only headlines "Pakistan’s former army chief joins ..." and "Obama’s final jobs report ..." were
# guessed French on the "s" alone (French elides "s’", "d’", "l’") and stemmed as French.
_ENGLISH_CLITIC = re.compile(r"(?<=[^\W\d_])['\u2019](?:s|t|d|ll|re|ve|m)(?![^\W\d_])", re.IGNORECASE)
# The French and Italian words that are a letter (or "qu"), elided before an apostrophe and a word.
_ELIDED = frozenset(["d", "l", "qu", "n", "s", "c", "j", "m", "t"])
_ELISION = re.compile(r"(?<![^\W\d_])(d|l|qu|n|s|c|j|m|t)['\u2019](?=[^\W\d_])")
# Every ASCII character but a-z, to a blank: the words of casefolded ASCII text are what `split` leaves.
_NOT_A_TO_Z = _blank_all_but(string.ascii_lowercase)


def _latin_words(folded: str) -> set[str]:
    """The words (runs of letters) of casefolded text. In ASCII text, the runs of a-z left when every
    other character is a blank, split off in C: a fifth of `language_guess`'s time on the bench's
    items, whose regex ran on every item clustered."""
    if folded.isascii():
        return set(folded.encode("ascii").translate(_NOT_A_TO_Z).decode("ascii").split())
    return set(_LATIN_WORD.findall(folded))


_SEEN: set[str] = set()  # every word `language_of` has seen
_POINTS: dict[str, tuple[tuple[int, int], ...]] = {}  # those that say something -> their `_word_points`
_POINTFUL: set[str] = set()  # the keys of _POINTS, as a set (set operations in C)


# Any language's function word, any language's marked spelling: most words are neither, told in one test.
_ANY_STOPWORD = frozenset().union(*(STOPWORDS[lang] for lang in _LATIN))
_ANY_MARK = re.compile("|".join(f"(?:{_MARKS[lang].pattern})" for lang in _LATIN))


def _word_points(word: str) -> tuple[tuple[int, int], ...]:
    """What a casefolded word says of each Latin-script language (by its place in `_LATIN`): a point
    for a function word, two for a spelling only that language uses (ç, ß, ñ, ã, -zione)."""
    if word not in _ANY_STOPWORD and not _ANY_MARK.search(word):
        return ()
    points = []
    for k, lang in enumerate(_LATIN):
        p = (word in STOPWORDS[lang]) + (2 if _MARKS[lang].search(word) else 0)
        if p:
            points.append((k, p))
    return tuple(points)


@lru_cache(maxsize=4096)
def _script_language(ch: str) -> str | None:
    if ord(ch) <= 0x24F:  # Latin, up to Latin Extended-B
        return None
    name = unicodedata.name(ch, "")
    for prefix, lang in _SCRIPT_LANGUAGE:
        if name.startswith(prefix):
            return lang
    return None


@lru_cache(maxsize=64)
def _stemmer(lang: str) -> Callable[[str], str] | None:
    import snowballstemmer  # here, not at the top: config imports this module and `digest poll` stems nothing

    algorithm = _SNOWBALL.get(lang)
    if not algorithm:
        return None
    stemmer = snowballstemmer.stemmer(algorithm)
    if hasattr(stemmer, "maxCacheSize"):
        # PyStemmer's own cache of stems: `stem` keeps one already, and filling this one took three
        # quarters of the C stemmer's time on a batch's new words.
        stemmer.maxCacheSize = 0
    return stemmer.stemWord  # type: ignore[no-any-return]


@lru_cache(maxsize=262144)
def stem(word: str, lang: str) -> str:
    """The Snowball stem of a casefolded `word`; the word itself where `lang` has no stemmer."""
    stemmer = _stemmer(lang)
    word = word.casefold()
    return stemmer(word) if stemmer is not None else word


@lru_cache(maxsize=262144)
def fold(word: str) -> str:
    """Casefold and transliterate to ASCII: 'Трамп' -> 'tramp', 'Müller' -> 'muller'."""
    if word.isascii() and word.isalnum():  # ASCII letters and digits: nothing to transliterate or drop
        return word.lower()
    from unidecode import unidecode  # cheap once imported; the cache above makes it rare

    return _NOT_ALNUM.sub("", unidecode(word.casefold()).casefold())


# Spellings of one sound, as Latin scripts write a name and as transliterated Cyrillic does
# ("Macron" / "Макрон" -> "Makron", "Washington" / "Вашингтон" -> "Vashington", "Hamas" / "Хамас" ->
# "Khamas", "Renzi" / "Ренци" -> "Rentsi", "Jackson" / "Джексон" -> "Dzhekson"): each is written one
# way, in this order ("dzh" before "z"; "tz" ends as "ts"; a "c" before e, i, y is an "s": "Pence" /
# "Пенс"; "ch" stays: "Chicago" / "Чикаго").
_SOUNDS: tuple[tuple[str, str], ...] = (
    ("sch", "sh"),
    ("dzh", "j"),
    ("kh", "h"),
    ("ph", "f"),
    ("th", "t"),
    ("ck", "k"),
    ("q", "k"),
    ("x", "ks"),
    ("w", "v"),
    ("z", "ts"),
)
_SOFT_C = re.compile(r"c(?=[eiy])")
_HARD_C = re.compile(r"c(?!h)")


@lru_cache(maxsize=262144)
def sounds(word: str) -> str:
    """A word folded (`fold`) with each sound spelt one way (`_SOUNDS`): 'Cuba' and 'Куба' -> 'kuba'."""
    return sounds_of(word)


def _folded(word: str) -> str:
    """`fold`, with ASCII letters and digits lower-cased without a look in its cache (a miss for most
    of the new words a batch brings, each then kept in the cache for nothing)."""
    return word.lower() if word.isascii() and word.isalnum() else fold(word)


def sounds_of(word: str) -> str:
    """`sounds` without its cache, for callers that keep what they make of a word themselves
    (clustering's token entries, `digest.cluster.features`): a cache's miss and its entry cost a
    batch's new tokens more than the work."""
    folded = _folded(word)
    for spelt, sound in _SOUNDS:
        if spelt in folded:
            folded = folded.replace(spelt, sound)
    if "c" in folded:
        folded = _HARD_C.sub("k", _SOFT_C.sub("s", folded))
    return folded


@lru_cache(maxsize=262144)
def skeleton(word: str) -> str:
    """A word's consonants as `sounds` spells them (first letter kept, doubles collapsed): the key of
    a name across scripts and spellings.

    'Trump' and 'Трамп' -> 'trmp'; 'Lauderdale' and 'Лодердейл' -> 'ldrdl'; 'Путин' and 'Poutine' ->
    'ptn'; 'Macron' and 'Макрон' -> 'mkrn'; 'Washington' and 'Вашингтон' -> 'vshngtn'.
    """
    return skeleton_of_sounds(sounds(word))


def skeleton_of_sounds(sounded: str) -> str:
    """`skeleton` of a word from its `sounds`."""
    return _REPEATS.sub(r"\1", _VOWELS.sub("", sounded))


def is_stopword(word: str, lang: str) -> bool:
    words = STOPWORDS.get(lang)
    return words is not None and word.casefold() in words


def is_function_word(token: str, lang: str) -> bool:
    """A stopword, or another of the language's function words (`_MORE_FUNCTION_WORDS`), in any case
    ("HOW DO THEY DO IT"): what says nothing of which story a text tells."""
    folded = token.casefold()
    return folded in STOPWORDS.get(lang, ()) or folded in _MORE_FUNCTION_WORDS.get(lang, ())


@lru_cache(maxsize=262144)
def word_form(token: str, lang: str) -> str | None:
    """The comparable form of one token (from `tokens`): a number, or a folded stem; None for a stopword."""
    return word_form_of(token, lang)


def word_form_of(token: str, lang: str) -> str | None:
    """`word_form` without its cache, for callers that keep what they make of a token themselves
    (clustering's token entries, `digest.cluster.features`): the 70,000 new tokens of a batch of
    50,000 items each missed it and filled an entry kept for nothing. The stem's cache stays: the
    tokens of one word ("Attack", "attack") share it."""
    if token[0].isdigit():
        return token.replace(",", ".")  # "6,8" (ru/de/fr/es) and "6.8" are one number
    word = token.casefold()
    if len(word) < 2 or is_stopword(word, lang):
        return None
    return _folded(stem(word, lang)) or word


def word_forms(text: str, lang: str) -> list[str]:
    """The comparable units of `text` in `lang`, in order: folded stems, numbers, CJK bigrams.

    Stopwords and one-letter words are dropped. Runs of Han, kana or Hangul give character bigrams
    within each stretch of one script, with one- and two-character hiragana stretches (Japanese
    particles: が, に, を, の) left out.
    """
    out: list[str] = []
    for token in tokens(text):
        if _CJK_RUN.search(token):
            for i, part in enumerate(_CJK_RUN.split(token)):
                if not part:
                    continue
                if i % 2:  # re.split with a group puts the matched runs at odd positions
                    out.extend(cjk_bigrams(part))
                elif (form := word_form(part, lang)) is not None:
                    out.append(form)
        elif (form := word_form(token, lang)) is not None:
            out.append(form)
    return out


def cjk_bigrams(run: str) -> list[str]:
    """Character bigrams within each stretch of one script of a Han/kana/Hangul run."""
    out: list[str] = []
    for stretch in script_stretches(run):
        if _HIRAGANA.fullmatch(stretch) and len(stretch) <= 2:
            continue
        if len(stretch) == 1:
            out.append(stretch)
        out.extend(stretch[j : j + 2] for j in range(len(stretch) - 1))
    return out


def script_stretches(run: str) -> list[str]:
    """Split a CJK run where the script changes (hiragana / katakana / Han and Hangul)."""
    stretches: list[str] = []
    for ch in run:
        kind = _script(ch)
        if stretches and _script(stretches[-1][-1]) == kind:
            stretches[-1] += ch
        else:
            stretches.append(ch)
    return stretches


def is_katakana(ch: str) -> bool:
    return _script(ch) == "katakana"


def _script(ch: str) -> str:
    if "\u3040" <= ch <= "\u309f":
        return "hiragana"
    if "\u30a0" <= ch <= "\u30ff" or "\u31f0" <= ch <= "\u31ff":
        return "katakana"
    return "han"  # Han and Hangul: Hangul is spaced, so its stretches are words already


def has_cjk(text: str) -> bool:
    return _CJK_RUN.search(text) is not None
