"""A small hand-made set of real titles, people and characters, for tests and the keyless run.

Ids are TMDB's where we know them; popularity values are rough and only order the set.
"""

from __future__ import annotations

# (key, name, year, popularity, extra)
_MOVIES = [
    ("movie:155", "The Dark Knight", 2008, 95.0, {}),
    ("movie:272", "Batman Begins", 2005, 60.0, {}),
    ("movie:49026", "The Dark Knight Rises", 2012, 70.0, {}),
    ("movie:268", "Batman", 1989, 40.0, {}),
    ("movie:415", "Batman & Robin", 1997, 20.0, {}),
    ("movie:414", "Batman Forever", 1995, 22.0, {}),
    ("movie:194", "Amélie", 2001, 35.0, {"original_name": "Le Fabuleux Destin d'Amélie Poulain"}),
    ("movie:101", "Léon: The Professional", 1994, 45.0, {}),
    ("movie:557", "Spider-Man", 2002, 55.0, {}),
    ("movie:558", "Spider-Man 2", 2004, 42.0, {}),
    ("movie:11", "Star Wars", 1977, 80.0, {}),
    ("movie:1891", "The Empire Strikes Back", 1980, 65.0, {}),
    ("movie:603", "The Matrix", 1999, 75.0, {}),
    ("movie:13", "Forrest Gump", 1994, 60.0, {}),
    ("movie:129", "Spirited Away", 2001, 70.0, {"original_name": "千と千尋の神隠し"}),
    ("movie:424", "Schindler's List", 1993, 50.0, {}),
    ("movie:680", "Pulp Fiction", 1994, 66.0, {}),
    ("movie:238", "The Godfather", 1972, 85.0, {}),
    ("movie:240", "The Godfather Part II", 1974, 50.0, {}),
    ("movie:1366", "Rocky II", 1979, 18.0, {}),
    ("movie:1367", "Rocky", 1976, 30.0, {}),
    ("movie:862", "Toy Story", 1995, 70.0, {}),
    ("movie:12445", "Harry Potter and the Deathly Hallows: Part 2", 2011, 68.0, {}),
    ("movie:671", "Harry Potter and the Philosopher's Stone", 2001, 72.0, {}),
    ("movie:11216", "Cinema Paradiso", 1988, 25.0, {"original_name": "Nuovo Cinema Paradiso"}),
    ("movie:76", "Before Sunrise", 1995, 20.0, {}),
    ("movie:8587", "The Lion King", 1994, 75.0, {}),
]
_TV = [
    ("tv:1396", "Breaking Bad", 2008, 90.0, {}),
    ("tv:1399", "Game of Thrones", 2011, 92.0, {}),
    ("tv:46260", "Naruto", 2002, 60.0, {"is_anime": True}),
    ("tv:246", "Avatar: The Last Airbender", 2005, 55.0, {"is_cartoon": True}),
    ("tv:60625", "Rick and Morty", 2013, 70.0, {"is_cartoon": True}),
    ("tv:1429", "Attack on Titan", 2013, 65.0, {"is_anime": True, "original_name": "Shingeki no Kyojin"}),
    ("tv:66732", "Stranger Things", 2016, 85.0, {}),
    ("tv:60574", "Peaky Blinders", 2013, 50.0, {}),
    ("tv:1668", "Friends", 1994, 70.0, {}),
    ("tv:2316", "The Office", 2005, 60.0, {}),
    ("tv:1434", "Family Guy", 1999, 45.0, {"is_cartoon": True}),
    ("tv:456", "The Simpsons", 1989, 80.0, {"is_cartoon": True}),
    ("tv:37854", "One Piece", 1999, 75.0, {"is_anime": True}),
    ("tv:85937", "Demon Slayer: Kimetsu no Yaiba", 2019, 60.0, {"is_anime": True}),
    ("tv:94605", "Arcane", 2021, 55.0, {"is_cartoon": True}),
    ("tv:71912", "The Witcher", 2019, 58.0, {}),
    ("tv:1408", "House", 2004, 40.0, {}),
    ("tv:4614", "NCIS", 2003, 35.0, {}),
    ("tv:1405", "Dexter", 2006, 42.0, {}),
    ("tv:82856", "The Mandalorian", 2019, 60.0, {}),
    ("tv:76479", "The Boys", 2019, 62.0, {}),
    ("tv:100088", "The Last of Us", 2023, 70.0, {}),
    ("tv:4087", "The X-Files", 1993, 40.0, {}),
    ("tv:2190", "South Park", 1997, 45.0, {"is_cartoon": True}),
    ("tv:65930", "My Hero Academia", 2016, 50.0, {"is_anime": True, "original_name": "Boku no Hero Academia"}),
    ("tv:31910", "Naruto Shippūden", 2007, 55.0, {"is_anime": True}),
]
_PEOPLE = [
    ("person:3894", "Christian Bale", 40.0),
    ("person:1810", "Heath Ledger", 35.0),
    ("person:2232", "Michael Keaton", 25.0),
    ("person:64", "Gary Oldman", 30.0),
    ("person:1245", "Scarlett Johansson", 45.0),
    ("person:6384", "Keanu Reeves", 50.0),
    ("person:17419", "Bryan Cranston", 30.0),
    ("person:84497", "Aaron Paul", 20.0),
    ("person:239019", "Kit Harington", 25.0),
    ("person:1223786", "Emilia Clarke", 30.0),
    ("person:1397778", "Millie Bobby Brown", 40.0),
    ("person:2963", "Nicolas Cage", 28.0),
    ("person:31", "Tom Hanks", 45.0),
    ("person:1003", "Jean Reno", 20.0),
    ("person:524", "Natalie Portman", 40.0),
    ("person:3061", "Audrey Tautou", 18.0),
    ("person:2888", "Will Smith", 35.0),
    ("person:5292", "Denzel Washington", 30.0),
    ("person:1892", "Matt Damon", 32.0),
    ("person:2", "Mark Hamill", 25.0),
    ("person:1136406", "Tom Holland", 60.0),
    ("person:2219", "Tobey Maguire", 30.0),
    ("person:3223", "Robert Downey Jr.", 55.0),
    ("person:608", "Hayao Miyazaki", 30.0),
    ("person:1283", "Helena Bonham Carter", 25.0),
    ("person:10980", "Daniel Radcliffe", 35.0),
    ("person:1327", "Ian McKellen", 28.0),
    ("person:3", "Harrison Ford", 40.0),
    ("person:1158", "Al Pacino", 38.0),
    ("person:3084", "Marlon Brando", 26.0),
    ("person:16483", "Sylvester Stallone", 36.0),
    ("person:8891", "John Travolta", 30.0),
    ("person:2231", "Samuel L. Jackson", 45.0),
    ("person:1100", "Arnold Schwarzenegger", 40.0),
    ("person:1892001", "Zoë Kravitz", 30.0),
    ("person:10990", "Emma Watson", 40.0),
    ("person:1373737", "Florence Pugh", 42.0),
    ("person:1190668", "Timothée Chalamet", 55.0),
    ("person:73968", "Henry Cavill", 45.0),
    ("person:1333", "Andy Serkis", 20.0),
]
# (title key, person key, credit as TMDB writes it, cast order)
_CREDITS = [
    ("movie:155", "person:3894", "Bruce Wayne / Batman", 0),
    ("movie:155", "person:1810", "Joker", 1),
    ("movie:155", "person:64", "James Gordon", 2),
    ("movie:272", "person:3894", "Bruce Wayne / Batman", 0),
    ("movie:49026", "person:3894", "Bruce Wayne / Batman", 0),
    ("movie:268", "person:2232", "Batman / Bruce Wayne", 0),
    ("movie:194", "person:3061", "Amélie Poulain", 0),
    ("movie:101", "person:1003", "Léon", 0),
    ("movie:101", "person:524", "Mathilda", 1),
    ("movie:101", "person:64", "Norman Stansfield", 2),
    ("movie:557", "person:2219", "Peter Parker / Spider-Man", 0),
    ("movie:558", "person:2219", "Peter Parker / Spider-Man", 0),
    ("movie:11", "person:2", "Luke Skywalker", 0),
    ("movie:11", "person:3", "Han Solo", 1),
    ("movie:1891", "person:2", "Luke Skywalker", 0),
    ("movie:603", "person:6384", "Neo", 0),
    ("movie:13", "person:31", "Forrest Gump", 0),
    ("movie:129", "person:608", "Chihiro Ogino (voice)", 0),
    ("movie:680", "person:8891", "Vincent Vega", 0),
    ("movie:680", "person:2231", "Jules Winnfield", 1),
    ("movie:238", "person:3084", "Don Vito Corleone", 0),
    ("movie:238", "person:1158", "Michael Corleone", 1),
    ("movie:1367", "person:16483", "Rocky Balboa", 0),
    ("movie:1366", "person:16483", "Rocky Balboa", 0),
    ("movie:862", "person:31", "Woody (voice)", 0),
    ("movie:12445", "person:10980", "Harry Potter", 0),
    ("movie:12445", "person:10990", "Hermione Granger", 1),
    ("movie:12445", "person:1283", "Bellatrix Lestrange", 2),
    ("movie:671", "person:10980", "Harry Potter", 0),
    ("tv:1396", "person:17419", "Walter White", 0),
    ("tv:1396", "person:84497", "Jesse Pinkman", 1),
    ("tv:1399", "person:239019", "Jon Snow", 0),
    ("tv:1399", "person:1223786", "Daenerys Targaryen", 1),
    ("tv:66732", "person:1397778", "Eleven / Jane Hopper", 0),
    ("tv:71912", "person:73968", "Geralt of Rivia", 0),
]
_SERIES_CHARACTERS = [  # characters without a person in this set
    ("tv:46260", "Naruto Uzumaki"),
    ("tv:46260", "Sasuke Uchiha"),
    ("tv:246", "Aang"),
    ("tv:246", "Zuko"),
    ("tv:60625", "Rick Sanchez"),
    ("tv:60625", "Morty Smith"),
    ("tv:1429", "Eren Yeager"),
    ("tv:1429", "Mikasa Ackerman"),
    ("tv:456", "Homer Simpson"),
    ("tv:456", "Bart Simpson"),
    ("tv:37854", "Monkey D. Luffy"),
    ("tv:37854", "Roronoa Zoro"),
    ("tv:85937", "Tanjiro Kamado"),
    ("tv:85937", "Nezuko Kamado"),
    ("tv:94605", "Jinx"),
    ("tv:94605", "Vi"),
    ("tv:2316", "Michael Scott"),
    ("tv:1668", "Rachel Green"),
    ("tv:1405", "Dexter Morgan"),
    ("tv:82856", "Din Djarin / The Mandalorian"),
    ("tv:76479", "Homelander"),
    ("tv:65930", "Izuku Midoriya / Deku"),
    ("tv:2190", "Eric Cartman"),
    ("tv:60574", "Thomas Shelby"),
    ("tv:100088", "Joel Miller"),
    ("tv:100088", "Ellie"),
]


def real_records() -> list[dict]:
    """The real set as entity records (the shape the generator yields)."""
    from content_service.corpus.generator import split_character

    titles: dict[str, dict] = {}
    for typ, rows in (("movie", _MOVIES), ("tv", _TV)):
        for key, name, year, pop, extra in rows:
            rec = {
                "key": key,
                "type": typ,
                "id": int(key.split(":")[1]),
                "name": name,
                "original_name": extra.get("original_name", name),
                "year": year,
                "popularity": pop,
                "genres": [],
                "overview": "",
                "cast": [],
            }
            if typ == "tv":
                rec["is_anime"] = bool(extra.get("is_anime"))
                rec["is_cartoon"] = bool(extra.get("is_cartoon"))
            titles[key] = rec
    people = {
        key: {
            "key": key,
            "type": "person",
            "id": int(key.split(":")[1]),
            "name": name,
            "also_known_as": [],
            "popularity": pop,
            "known_for_department": "Acting",
            "credits": [],
        }
        for key, name, pop in _PEOPLE
    }
    chars = []
    credits = [(t, p, c, o) for t, p, c, o in _CREDITS]
    for t, c in _SERIES_CHARACTERS:
        credits.append((t, None, c, len(titles[t]["cast"]) + 10))
    for n, (tkey, pkey, credit, order) in enumerate(credits, start=1):
        t = titles[tkey]
        ckey = f"character:{n}"
        display, names = split_character(credit)
        person = people.get(pkey) if pkey else None
        pop = round(t["popularity"] * 0.6 / (1 + order) + (person["popularity"] * 0.1 if person else 0), 3)
        t["cast"].append({"person": pkey, "character": ckey, "credit": credit, "order": order})
        if person:
            person["credits"].append({"title": tkey, "character": ckey, "credit": credit})
        chars.append(
            {
                "key": ckey,
                "type": "character",
                "id": n,
                "name": display,
                "aliases": names,
                "credit": credit,
                "title": tkey,
                "title_name": t["name"],
                "title_type": t["type"],
                "person": pkey,
                "actor": person["name"] if person else None,
                "popularity": pop,
            }
        )
    return [*titles.values(), *chars, *people.values()]
