"""Our ROUGE-N agrees with rouge-score where rouge-score's tokenizer applies, and also reads Cyrillic."""

from __future__ import annotations

import pytest
from rouge import rouge_n, tokens
from rouge_score import rouge_scorer

PAIRS = [
    ("the cat sat on the mat", "the cat was on the mat"),
    ("police say the two men had been schoolmates", "the two men were schoolmates, police said"),
    ("a b c d e", "f g h"),
    ("five people were killed at the airport on friday", "a gunman killed five people at fort lauderdale airport"),
]


@pytest.mark.parametrize(("candidate", "reference"), PAIRS)
def test_rouge_n_matches_rouge_score_on_english(candidate: str, reference: str) -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=False)
    expected = scorer.score(reference, candidate)
    assert rouge_n(candidate, reference, 1) == pytest.approx(expected["rouge1"].fmeasure)
    assert rouge_n(candidate, reference, 2) == pytest.approx(expected["rouge2"].fmeasure)


def test_rouge_reads_cyrillic_that_rouge_score_drops() -> None:
    candidate, reference = "Пожар в гостинице Москвы", "В гостинице Москвы был пожар"
    assert tokens(candidate) == ["пожар", "в", "гостинице", "москвы"]
    assert rouge_n(candidate, reference, 1) == pytest.approx(8 / 9)  # 4 of 4 and 4 of 5 words: F1 = 8/9
    assert rouge_n(candidate, reference, 2) == pytest.approx(4 / 7)  # 2 of 3 and 2 of 4 bigrams
    assert rouge_scorer.RougeScorer(["rouge1"]).score(reference, candidate)["rouge1"].fmeasure == 0.0
