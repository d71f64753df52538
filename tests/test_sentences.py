"""Sentence splitting per language: abbreviations, initials, numbers and quotes stay inside a sentence."""

from __future__ import annotations

import pytest

from digest.sentences import split
from digest.words import language_of

CASES = {
    "en": (
        'The U.S. Senate met on Friday. Dr. Jane Smith, of St. Louis, said: "We will vote." '
        "J. R. R. Tolkien sold 1.5 million copies. Was it worth it? Yes!",
        [
            "The U.S. Senate met on Friday.",
            'Dr. Jane Smith, of St. Louis, said: "We will vote."',
            "J. R. R. Tolkien sold 1.5 million copies.",
            "Was it worth it?",
            "Yes!",
        ],
    ),
    "ru": (
        "Компания получила 1.5 млн руб., т. е. вдвое больше. «Это рекорд», — сказал А. С. Петров. "
        "Заседание прошло в 2017 г. в Москве. Что дальше?",
        [
            "Компания получила 1.5 млн руб., т. е. вдвое больше.",
            "«Это рекорд», — сказал А. С. Петров.",
            "Заседание прошло в 2017 г. в Москве.",
            "Что дальше?",
        ],
    ),
    "fr": (
        "M. Dupont est arrivé à Paris vers 9 h. Le président a déclaré : « Nous verrons. » "
        "La hausse atteint 2,5 %. C'est tout.",
        [
            "M. Dupont est arrivé à Paris vers 9 h.",
            "Le président a déclaré : « Nous verrons. »",
            "La hausse atteint 2,5 %.",
            "C'est tout.",
        ],
    ),
    "de": (
        "Dr. Müller kam am 7. Januar nach Berlin. Er sagte, z. B. sei das Wetter schlecht. "
        "Die Kosten stiegen um 1,5 Mio. Euro. Warum?",
        [
            "Dr. Müller kam am 7. Januar nach Berlin.",
            "Er sagte, z. B. sei das Wetter schlecht.",
            "Die Kosten stiegen um 1,5 Mio. Euro.",
            "Warum?",
        ],
    ),
    "es": (
        "El Sr. García llegó a EE. UU. el lunes. Dijo que las ventas serán de 4.000 millones. ¿Y ahora? "
        'Obama: "Putin no es de nuestro equipo". Nadie lo sabe.',
        [
            "El Sr. García llegó a EE. UU. el lunes.",
            "Dijo que las ventas serán de 4.000 millones.",
            "¿Y ahora?",
            'Obama: "Putin no es de nuestro equipo".',
            "Nadie lo sabe.",
        ],
    ),
    "it": (
        'Il sig. Rossi è arrivato a Roma. Il sindaco ha detto: "Siamo con loro." '
        "Le temperature sono scese a -5 gradi. Domani nevica.",
        [
            "Il sig. Rossi è arrivato a Roma.",
            'Il sindaco ha detto: "Siamo con loro."',
            "Le temperature sono scese a -5 gradi.",
            "Domani nevica.",
        ],
    ),
    "pt": (
        "O Dr. Silva chegou a Curitiba na sexta. O prefeito Rafael Greca está bem, diz o boletim. "
        "A obra custa R$ 1.5 milhão. Quando começa?",
        [
            "O Dr. Silva chegou a Curitiba na sexta.",
            "O prefeito Rafael Greca está bem, diz o boletim.",
            "A obra custa R$ 1.5 milhão.",
            "Quando começa?",
        ],
    ),
}


@pytest.mark.parametrize("language", sorted(CASES))
def test_sentences_split_with_each_languages_rules(language: str) -> None:
    text, expected = CASES[language]
    assert split(text, language) == expected
    assert split(text) == expected  # the language guessed from the text gives the same sentences


@pytest.mark.parametrize("language", sorted(CASES))
def test_every_sentence_is_a_verbatim_substring_in_order(language: str) -> None:
    text, _ = CASES[language]
    at = 0
    for sentence in split("  " + text + "\n", language):
        found = text.find(sentence, at)
        assert found >= 0
        at = found + len(sentence)


@pytest.mark.parametrize("language", sorted(CASES))
def test_the_language_is_read_as_clustering_reads_it(language: str) -> None:
    # A text split without a language is read by `words.language_of`, as sections and clustering read it.
    assert language_of(CASES[language][0]) == language


def test_empty_and_unpunctuated_text() -> None:
    assert split("") == []
    assert split("   ") == []
    assert split("no full stop at the end") == ["no full stop at the end"]


def test_a_block_separator_ends_a_sentence() -> None:
    # sanitize joins a list item or paragraph with no stop to the next with " · ": no quote spans both.
    text = "Ferry board says storms could close 40 piers · Nearly half of the piers are at risk, a study finds."
    assert split(text, "en") == [
        "Ferry board says storms could close 40 piers",
        "Nearly half of the piers are at risk, a study finds.",
    ]
