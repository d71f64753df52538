"""The starter section rules of the eight newsroom sections: what `digest init` writes.

Plain data, read by digest.config's `example_toml()`. The lists are what an editor would write:
the words that tell a section's stories apart, in English and Russian (with the commonest French,
German and Spanish ones), the path segments publishers file those stories under, and the labels
they give them. Keywords match word forms (digest.sections), so each word is written once, in any
of its forms. `tests/test_section_labels.py` measures these rules on real items labelled by hand.

A topical section also gets one combined rule: "a general-news label (World, Politics, News...) and
one of my keywords". Many feeds label everything "World" or "News"; that rule lets the topic beat
the label, since a rule with two conditions is more specific than a rule with one.
"""

from __future__ import annotations

Rules = dict[str, tuple[str, ...]]

# Labels and path segments that say "general news" rather than a topic.
GENERAL_CATEGORIES = (
    "World", "World news", "International", "News", "Politics", "US news", "UK news", "Europe", "Americas",
    "Asia", "Africa", "Middle East", "Middle East and North Africa", "Asia Pacific", "Australia news",
    "Мир", "В мире", "Новости", "Политика", "Происшествия", "Общество",
)

# Russia named as a country: the subject on a world-news page, mere context in a Russian paper.
RUSSIA_NAMED = ("Russia", "Russian", "Россия", "российский", "Rusia", "Russie", "Russland", "Moscow")

COUNTERPARTS = (
    "Trump", "Obama", "Biden", "Tillerson", "Kerry", "Washington", "White House", "Brexit", "NATO", "EU",
    "European Union", "Ukraine", "Kiev", "Kyiv", "Britain", "UK", "Germany", "France", "China", "Japan",
    "the West", "Western", "Трамп", "Байден", "Вашингтон", "Украина", "Киев", "Евросоюз", "НАТО", "Запад",
    "США", "Зеленский", "Макрон",
)

WORLD_PATHS = (
    r"/world/", r"/international/", r"/us-news/", r"/us/", r"/politics/", r"/politik/", r"/ameriques/",
    r"/afrique/", r"/europe/", r"/asie-pacifique/", r"/proche-orient/", r"/australia-news/",
    r"/election-presidentielle", r"/panorama/", r"/mundo/", r"/internacional/", r"/v-mire/", r"/world-news/",
)

RUSSIA = (
    "Kremlin", "Putin", "Lavrov", "Peskov", "Medvedev", "Mishustin", "Zakharova", "Shoigu", "Navalny", "Duma",
    "State Duma", "Federation Council", "Russian Foreign Ministry", "Russian diplomat", "Russian diplomats",
    "Russian lawmakers", "Russian parliament", "sanctions against Russia",
    "Кремль", "Путин", "Лавров", "Песков", "Медведев", "Мишустин", "Захарова", "Шойгу", "Навальный",
    "Госдума",
    "Государственная дума", "Совет Федерации", "Совфед", "МИД России", "МИД РФ", "депутаты", "законопроект",
    "Володин", "Матвиенко", "посол России", "российские дипломаты", "переговоры", "Зеленский",
    "Crimea", "Крым",
    "Poutine", "Kremlin", "Kreml", "Putins", "Moskau", "Rusia", "Russie", "Russland", "Rusos",
)

# Words of foreign news that no topical section claims. Heads of state and institutions named in
# most political stories (Trump, president, government) are left out: in a story that names Putin
# they are the context, not the subject.
WORLD = (
    "prime minister", "parliament", "opposition", "protest", "protesters", "UN", "United Nations", "EU",
    "European Union", "Brexit", "refugees", "migrants", "shooting", "gunman", "killed", "attack", "police",
    "storm", "snowstorm", "cold snap", "earthquake", "flood", "Erdogan", "Merkel", "Macron", "Xi Jinping",
    "Beijing", "Israel", "Palestinians", "Syria", "Iraq", "Turkey", "Iran", "Pakistan", "Mexico", "Africa",
    "премьер-министр", "парламент", "оппозиция", "протест", "ООН", "Евросоюз", "беженцы", "Сирия", "Турция",
    "Китай", "Германия", "Франция",
    "gouvernement", "élection", "Regierung", "Wahl", "gobierno", "elecciones", "Terror", "attentat",
    "atentado", "CIA", "snow", "blizzard", "neige", "tempête", "Schnee", "nieve", "policía", "Guardia Civil",
)

BUSINESS = (
    "economy", "economic", "business", "market", "markets", "stocks", "shares", "investors", "bank",
    "central bank",
    "interest rate", "inflation", "GDP", "oil prices", "oil", "gas", "Gazprom", "Rosneft", "Sberbank", "VTB",
    "budget", "tax", "taxes", "tariffs", "trade", "exports", "imports", "jobs", "unemployment", "wages",
    "pay",
    "company", "companies", "merger", "privatization", "loan", "debt", "bonds", "currency", "ruble",
    "dollar", "sales", "retail", "consumers", "prices", "cryptocurrency", "bitcoin", "counter sanctions",
    "экономика", "бизнес", "рынок", "акции", "инвесторы", "банк", "ЦБ", "Центробанк", "ключевая ставка",
    "ставка", "инфляция", "ВВП", "нефть", "газ", "бюджет", "налог", "пошлины", "тарифы", "торговля",
    "экспорт",
    "импорт", "зарплата", "безработица", "компания", "сделка", "кредит", "долг", "рубль", "курс", "цены",
    "Wirtschaft", "Versicherung", "Börse", "Unternehmen", "économie", "entreprises", "agriculture",
    "farmers", "éleveurs", "agriculteurs", "Landwirte",
    "agriculteurs", "economía", "rebajas", "ventas", "comercio", "empleo", "empresas",
)

MILITARY = (
    "military", "army", "troops", "soldiers", "soldier", "servicemen", "US Marines", "Marine Corps", "navy",
    "warship", "warships",
    "submarine", "naval", "aircraft carrier", "air force", "airstrike", "airstrikes", "missile", "missiles",
    "nuclear weapons", "weapons", "drone", "drones", "defense", "defence", "defense minister",
    "defence minister", "Pentagon", "NATO", "Ministry of Defense", "mutiny", "mutineers", "mutinied",
    "deployment", "offensive", "clashes", "ceasefire", "truce", "shelling", "front line",
    "армия", "военные", "войска", "военнослужащие", "солдаты", "флот", "корабль", "подводная лодка", "ракета",
    "ракеты", "ПВО", "беспилотник", "беспилотники", "дроны", "Минобороны", "министерство обороны", "НАТО",
    "оборона", "военный", "наступление", "обстрел", "фронт", "ВСУ",
    "armée", "militaires", "soldats", "mutinerie", "défense", "Bundeswehr", "Soldaten", "Militär",
    "ejército", "militares", "soldados",
)

SCIENCE = (
    "science", "scientists", "researchers", "research", "study", "physics", "biology", "astronomy", "space",
    "NASA", "ESA", "Roscosmos", "ISS", "International Space Station", "rocket launch", "satellite", "orbit",
    "astronaut", "astronauts", "cosmonaut", "cosmonauts", "moon", "lunar", "Mars", "planet", "telescope",
    "eclipse", "species", "fossils", "dinosaur", "dinosaurs", "whale", "whales", "orcas", "climate change",
    "technology", "tech", "CES", "smartphone", "app", "WhatsApp", "artificial intelligence", "AI", "robot",
    "patient", "medicine", "disease", "vaccine",
    "наука", "учёные", "ученые", "исследование", "космос", "Роскосмос", "МКС", "космонавт", "космонавты",
    "спутник", "ракета-носитель", "Луна", "Марс", "планета", "телескоп", "технологии", "смартфон",
    "искусственный интеллект",
    "Wissenschaft", "Forscher", "Patient", "Ärzte", "science", "chercheurs", "espace", "ciencia",
    "científicos", "investigadores",
)

CULTURE = (
    "culture", "arts", "art", "museum", "exhibition", "exhibit", "gallery", "theater", "theatre", "opera",
    "ballet", "concert", "festival", "music", "album", "band", "singer", "film", "movie", "cinema",
    "box office",
    "Oscar", "Oscars", "Grammys", "actor", "actress", "director", "TV series", "television", "book", "novel",
    "writer", "writers", "poet", "literature", "restaurant", "restaurants", "cuisine", "food", "fashion",
    "style", "travel", "church", "religion", "Christmas", "holiday", "family", "children", "women",
    "school", "students", "university", "health", "wellbeing", "yoga", "sex", "dogs", "pets", "jazz",
    "crossword", "weekend", "in pictures",
    "культура", "искусство", "музей", "выставка", "театр", "опера", "балет", "концерт", "фестиваль", "музыка",
    "группа", "певец", "певица", "фильм", "кино", "актёр", "актер", "режиссёр", "сериал", "книга", "писатель",
    "ресторан", "мода", "путешествия", "церковь", "Рождество", "праздник", "праздники", "семья", "дети",
    "школа", "студенты", "здоровье", "мороз", "морозы", "холод", "погода", "пожар", "гостиница", "ДТП",
    "авария", "пострадали", "задержаны", "уголовное дело", "полиция", "жители", "город", "улица", "метро",
    "квартира", "субсидии",
    "Kultur", "Kunst", "Museum", "Film", "Musik", "Buch", "Reise", "Familie", "Kinder",
    "culture", "musée", "cinéma", "livre", "famille", "cultura", "cine", "música", "libro", "familia",
    "niños", "Instagram", "Bilder", "Fotos", "детский сад", "детсад", "вокзал", "граждане",
)

SPORT = (
    "sport", "sports", "football", "soccer", "hockey", "NHL", "NFL", "NBA", "basketball", "tennis", "golf",
    "Olympics", "Olympic", "World Cup", "Premier League", "Champions League", "La Liga", "Bundesliga",
    "match", "playoffs", "quarterback", "coach", "goal", "goals", "season", "league", "tournament",
    "championship", "champion", "transfer", "striker", "midfielder", "FIFA", "UEFA", "ski", "skiing",
    "gymnastics", "athlete", "athletes", "boxing", "F1", "Formula One",
    "спорт", "футбол", "хоккей", "КХЛ", "баскетбол", "теннис", "Олимпиада", "чемпионат", "Кубок", "матч",
    "тренер", "сборная", "турнир", "гол", "РФПЛ",
    "Fußball", "Fussball", "WM", "Trainer", "Spiel", "football", "Coupe de France", "Ligue 1", "match",
    "fútbol", "Real Madrid", "Barcelona", "Liga", "partido",
)

PRESS = (
    "Op-Ed", "op-ed", "opinion", "column", "columnist", "editorial", "commentary", "commentators", "pundits",
    "press review", "what the papers say", "state TV", "state television",
    "обзор прессы", "обзор СМИ", "мнение", "колонка", "комментарий", "редакционная статья", "что пишут",
    "пропаганда", "госТВ", "Kolumne", "Kommentar", "éditorial", "tribune", "opinión", "columna",
)

# The words of each topic that rarely mean anything else: enough to beat a general-news label.
BUSINESS_STRONG = (
    "economy", "economic", "markets", "investors", "central bank", "interest rate", "inflation", "GDP",
    "oil prices", "tariffs", "exports", "unemployment", "wages", "cryptocurrency", "bitcoin", "ruble",
    "clean energy", "экономика", "инфляция", "ключевая ставка", "ВВП", "рубль", "économie", "Wirtschaft",
    "economía",
)
MILITARY_STRONG = (
    "military", "army", "troops", "soldiers", "servicemen", "US Marines", "Marine Corps", "navy", "warship",
    "warships",
    "submarine", "air force", "airstrike", "airstrikes", "missile", "missiles", "defense minister",
    "defence minister", "Pentagon", "NATO", "mutiny", "mutineers", "armed forces", "security forces", "армия",
    "войска", "военные",
    "Минобороны", "НАТО", "ракеты", "armée", "soldats", "mutinerie", "ejército", "clashes", "ceasefire",
)
SCIENCE_STRONG = (
    "NASA", "ESA", "Roscosmos", "ISS", "astronaut", "astronauts", "cosmonaut", "cosmonauts", "telescope",
    "physics", "biology", "astronomy", "fossils", "dinosaurs", "species", "climate change",
    "artificial intelligence", "smartphone", "vaccine", "Роскосмос", "МКС", "космонавты",
)
CULTURE_STRONG = (
    "museum", "exhibition", "theatre", "theater", "opera", "ballet", "concert", "festival", "album", "singer",
    "movie", "cinema", "box office", "Oscar", "Oscars", "Grammys", "TV series", "novel", "literature",
    "fashion", "in pictures", "late-night", "documentary", "photos", "dies at", "dies aged", "obituary",
    "музей", "выставка", "театр", "концерт", "фестиваль",
)
SPORT_STRONG = (
    "football", "soccer", "hockey", "NHL", "NFL", "NBA", "basketball", "tennis", "golf", "Olympics",
    "World Cup", "Premier League", "Champions League", "playoffs", "quarterback", "FIFA", "UEFA",
    "gymnastics",
    "футбол", "хоккей", "Олимпиада", "чемпионат", "Fußball", "fútbol",
)


def _topic(categories: tuple[str, ...], paths: tuple[str, ...], keywords: tuple[str, ...],
           strong: tuple[str, ...], **extra: object) -> dict[str, object]:
    """A topical section: its own labels, paths and words, and two combined rules that let its path
    or its least ambiguous words (`strong`) beat a general-news label ("US news" on a film review
    filed under /film/, "World" on a story about troops)."""
    rules: list[dict[str, tuple[str, ...]]] = [{"categories": GENERAL_CATEGORIES, "keywords": strong},
                                               {"url_patterns": WORLD_PATHS, "keywords": strong}]
    if paths:
        rules.insert(0, {"categories": GENERAL_CATEGORIES, "url_patterns": paths})
    return {"categories": categories, "url_patterns": paths, "keywords": keywords, **extra, "rules": tuple(rules)}


SECTIONS: dict[str, dict[str, object]] = {
    "Russian Politics & Diplomacy": {
        "categories": ("Russia", "Kremlin", "Россия", "Кремль"),
        "keywords": RUSSIA,
        "not_keywords": ("restaurant", "cuisine", "ресторан"),
        "rules": ({"categories": GENERAL_CATEGORIES, "keywords": RUSSIA + RUSSIA_NAMED},
                  {"url_patterns": WORLD_PATHS, "keywords": RUSSIA + RUSSIA_NAMED},
                  # Russia named with another power or its leader: relations, i.e. diplomacy.
                  {"keywords": (RUSSIA_NAMED, COUNTERPARTS)}),
    },
    "World": {"categories": GENERAL_CATEGORIES, "url_patterns": WORLD_PATHS, "keywords": WORLD},
    "Business & Economy": _topic(
        ("Business", "Economy", "Markets", "Money", "Finance", "Экономика", "Бизнес", "Финансы"),
        (r"/business/", r"/economy/", r"/economi[ae]/", r"/markets?/", r"/money/", r"/wirtschaft/", r"/finance/",
         r"/economics/", r"/ekonomika/"),
        BUSINESS, BUSINESS_STRONG),
    "Military & Defense": _topic(
        ("Military", "Defense", "Defence", "US military", "Армия", "Оборона"),
        (r"/military/", r"/defen[cs]e/", r"/armiya/"),
        MILITARY, MILITARY_STRONG),
    "Science & Space": _topic(
        ("Science", "Space", "Technology", "Astronomy", "Наука", "Космос", "Технологии"),
        (r"/science/", r"/space/", r"/technology/", r"/tech/", r"/pixels/", r"/netzwelt/", r"/wissenschaft/",
         r"/gesundheit/", r"/health/", r"/nauka/"),
        SCIENCE, SCIENCE_STRONG),
    "Society & Culture": _topic(
        ("Culture", "Society", "Arts", "Life and style", "Lifestyle", "Культура", "Общество", "Люди", "События",
         "Тема"),
        (r"/culture/", r"/arts?/", r"/film/", r"/music/", r"/tv-and-radio/", r"/lifeandstyle/", r"/artanddesign/",
         r"/fashion/", r"/realestate/", r"/well/", r"/kultur/", r"/society/", r"/societe/", r"/trip/", r"/travel/",
         r"/style/", r"/food/", r"/books?/"),
        # Russia named without a politician or an institution: a Russian newsroom's home news.
        CULTURE + ("Russia", "Russian", "Russians", "Россия", "российский", "россияне"), CULTURE_STRONG),
    "Sport": _topic(
        ("Sport", "Sports", "Football", "Soccer", "Hockey", "Спорт", "Футбол", "Хоккей"),
        (r"/sports?/", r"/football/", r"/soccer/", r"/ski/", r"/tennis/", r"/deportes/", r"/fussball/"),
        SPORT, SPORT_STRONG, not_keywords=("fantasy sports",)),
    "Press Review": _topic(
        ("Press review", "Opinion", "Comment", "Commentary", "Обзор прессы", "Мнения"),
        (r"/opinion/", r"/commentisfree/", r"/commentary/", r"kolumne", r"/op-?ed/", r"/editorials?/",
         r"/columns?/", r"/tribunes?/", r"/opinions/"),
        PRESS, PRESS),
}
# What the media and commentators say about Russia and its counterparts is the press review's,
# not a politics story: the same two-list rule as Russian Politics', with the press words added.
SECTIONS["Press Review"]["rules"] = (*SECTIONS["Press Review"]["rules"],  # type: ignore[misc]
                                     {"keywords": (PRESS, RUSSIA_NAMED + COUNTERPARTS)})
