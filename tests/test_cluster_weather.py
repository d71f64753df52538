"""digest.cluster.weather: a place's weather told in words that barely meet is one story; two places'
weather, the weather a week later, and what merely sounds like weather are not.

The headlines are invented (the corpus's real ones are measured by test_cluster_corpus.py: Moscow's
frost and Rome's cold of 7 January 2017). Each batch is padded with unrelated invented items so that
document frequencies count, as in an edition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_cluster import _unrelated_day

from digest.cluster import Candidate, cluster
from digest.cluster.features import _profile
from digest.cluster.weather import COLD, HEAT, headline_weather

T0 = datetime(2027, 1, 7, 6, 0, tzinfo=UTC)


def report(title: str, source: str, hours: float, summary: str = "") -> Candidate:
    return Candidate(title, f"https://{source}/{abs(hash(title))}", source, T0 + timedelta(hours=hours), summary)


def groups_of(reports: list[Candidate]) -> list[set[int]]:
    """The groups of the reports (their indices), clustered within an edition-sized batch."""
    batch = reports + _unrelated_day(60, seed=11)
    found = []
    for g in cluster(batch):
        mine = {i for i in g if i < len(reports)}
        if mine:
            found.append(mine)
    return sorted(found, key=min)


# Four outlets on one city's cold, each telling another side of it: their words barely meet.
MOSCOW_COLD = [
    report("Сильный мороз: в Москве открыли пункты обогрева у вокзалов", "first.example", 0),
    report("В Москве из-за холодов отменили занятия в школах", "second.example", 3),
    report("Морозы задержали электрички на трёх направлениях в Москве", "third.example", 5),
    report("Над Москвой после морозной ночи взошло два солнца", "fourth.example", 9),
]


def test_one_citys_cold_told_four_ways_by_four_outlets_is_one_story() -> None:
    assert groups_of(MOSCOW_COLD) == [{0, 1, 2, 3}]


def test_one_outlets_reports_on_its_citys_cold_are_one_story() -> None:
    rome = [
        report("Roma sotto zero, i tombini si ghiacciano in periferia", "city.example", 0),
        report("Contro il gelo coperte in più per i cavalli della polizia", "city.example", 2, "Il freddo a Roma."),
        report("Freddo a Roma: aperte le palestre per chi dorme in strada", "city.example", 6),
    ]
    assert groups_of(rome) == [{0, 1, 2}]


def test_two_cities_cold_the_same_day_stays_two_stories() -> None:
    novosibirsk = [
        report("Сильный мороз в Новосибирске: закрыты катки", "fifth.example", 1),
        report("Новосибирск: морозы заморозили трамваи", "sixth.example", 4),
    ]
    found = groups_of(MOSCOW_COLD + novosibirsk)
    assert {0, 1, 2, 3} in found
    assert not any(g & {0, 1, 2, 3} and g & {4, 5} for g in found)


def test_the_same_citys_cold_a_week_later_is_another_story() -> None:
    later = [report("Новые морозы в Москве: снова открыты пункты обогрева", "fifth.example", 24 * 7)]
    found = groups_of(MOSCOW_COLD + later)
    assert {4} in found


def test_what_only_sounds_like_weather_is_not_the_weather() -> None:
    others = [
        report("Эксперты в Москве вспомнили уроки холодной войны", "fifth.example", 2),
        report("Дед Мороз приехал в Москву на открытие ёлки", "sixth.example", 4),
    ]
    found = groups_of(MOSCOW_COLD + others)
    assert {4} in found and {5} in found
    for title, lang in [
        ("Эксперты в Москве вспомнили уроки холодной войны", "ru"),
        ("Uma nova guerra fria em Lisboa", "pt"),
        ("Jon Snow returns to London stage", "en"),
        ("Hiring freeze hits cold storage firms in Leeds", "en"),
    ]:
        assert headline_weather(_profile(report(title, "x.example", 0), lang)) == frozenset(), title


def test_a_story_about_something_else_is_not_joined_through_its_frosty_report() -> None:
    service = [
        report("Патриарх провёл рождественскую службу в храме Христа Спасителя в Москве", "fifth.example", 1),
        report("Рождественская служба в храме Христа Спасителя в Москве прошла в мороз", "sixth.example", 2),
    ]
    found = groups_of(MOSCOW_COLD + service)
    assert not any(g & {0, 1, 2, 3} and g & {4, 5} for g in found)


def test_a_heat_wave_and_a_snowfall_are_two_kinds_of_weather() -> None:
    assert headline_weather(_profile(report("Ola de calor en Sevilla", "x.example", 0), "es")) == {HEAT}
    assert headline_weather(_profile(report("Heavy snowfall closes roads", "x.example", 0), "en")) == {COLD}
    seville = [
        report("Ola de calor: Sevilla roza los 45 grados", "first.example", 0),
        report("Sevilla abre sus piscinas de noche por el calor", "second.example", 4),
        report("Nieve en Sevilla: la primera en cuarenta años", "third.example", 5),
    ]
    found = groups_of(seville)
    assert {0, 1} in found and {2} in found
