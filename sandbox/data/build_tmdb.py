"""Writes ``tmdb.json`` (the TMDB sandbox dataset) from the hand-written tables below.

Run ``python -m sandbox.data.build_tmdb`` after editing; commit both files. Title ids are the real
TMDB ids. Person ids are the real TMDB ids where we are sure of them and ``91xxxxx`` sandbox ids
otherwise (never used by TMDB's real people so far); never renumber them, tests rely on them.
Overviews and biographies are our own short descriptions; dates, counts and scores are close to,
not exactly, TMDB's.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

MOVIE_GENRES = {28: "Action", 12: "Adventure", 16: "Animation", 35: "Comedy", 80: "Crime", 99: "Documentary",
                18: "Drama", 10751: "Family", 14: "Fantasy", 36: "History", 27: "Horror", 10402: "Music",
                9648: "Mystery", 10749: "Romance", 878: "Science Fiction", 10770: "TV Movie", 53: "Thriller",
                10752: "War", 37: "Western"}
TV_GENRES = {10759: "Action & Adventure", 16: "Animation", 35: "Comedy", 80: "Crime", 99: "Documentary", 18: "Drama",
             10751: "Family", 10762: "Kids", 9648: "Mystery", 10763: "News", 10764: "Reality",
             10765: "Sci-Fi & Fantasy", 10766: "Soap", 10767: "Talk", 10768: "War & Politics", 37: "Western"}

# id: (name, gender 1=female 2=male, known_for_department, original_name or None)
PEOPLE = {
    1: ("George Lucas", 2, "Directing", None), 2: ("Mark Hamill", 2, "Acting", None),
    3: ("Harrison Ford", 2, "Acting", None), 4: ("Carrie Fisher", 1, "Acting", None),
    5: ("Peter Cushing", 2, "Acting", None), 6: ("Anthony Daniels", 2, "Acting", None),
    24: ("Robert Zemeckis", 2, "Directing", None), 31: ("Tom Hanks", 2, "Acting", None),
    32: ("Robin Wright", 1, "Acting", None), 33: ("Gary Sinise", 2, "Acting", None),
    35: ("Sally Field", 1, "Acting", None), 48: ("Sean Bean", 2, "Acting", None),
    62: ("Bruce Willis", 2, "Acting", None), 64: ("Gary Oldman", 2, "Acting", None),
    103: ("Mark Ruffalo", 2, "Acting", None), 108: ("Peter Jackson", 2, "Directing", None),
    109: ("Elijah Wood", 2, "Acting", None), 110: ("Viggo Mortensen", 2, "Acting", None),
    112: ("Cate Blanchett", 1, "Acting", None), 114: ("Orlando Bloom", 2, "Acting", None),
    138: ("Quentin Tarantino", 2, "Directing", None), 139: ("Uma Thurman", 1, "Acting", None),
    192: ("Morgan Freeman", 2, "Acting", None), 194: ("Richard Harris", 2, "Acting", None),
    204: ("Kate Winslet", 1, "Acting", None), 287: ("Brad Pitt", 2, "Acting", None),
    525: ("Christopher Nolan", 2, "Directing", None), 530: ("Carrie-Anne Moss", 1, "Acting", None),
    608: ("Hayao Miyazaki", 2, "Directing", "宮崎駿"), 783: ("Jonathan Banks", 2, "Acting", None),
    819: ("Edward Norton", 2, "Acting", None), 1158: ("Al Pacino", 2, "Acting", None),
    1245: ("Scarlett Johansson", 1, "Acting", None), 1283: ("Helena Bonham Carter", 1, "Acting", None),
    1327: ("Ian McKellen", 2, "Acting", None), 1328: ("Sean Astin", 2, "Acting", None),
    1331: ("Hugo Weaving", 2, "Acting", None), 1333: ("Andy Serkis", 2, "Acting", None),
    1579: ("Maggie Gyllenhaal", 1, "Acting", None),
    1776: ("Francis Ford Coppola", 2, "Directing", None), 1810: ("Heath Ledger", 2, "Acting", None),
    1813: ("Anne Hathaway", 1, "Acting", None), 1920: ("Winona Ryder", 1, "Acting", None),
    1923: ("Robbie Coltrane", 2, "Acting", None), 1954: ("Billy Zane", 2, "Acting", None),
    2037: ("Cillian Murphy", 2, "Acting", None), 2231: ("Samuel L. Jackson", 2, "Acting", None),
    2524: ("Tom Hardy", 2, "Acting", None), 2710: ("James Cameron", 2, "Directing", None),
    2975: ("Laurence Fishburne", 2, "Acting", None), 3084: ("Marlon Brando", 2, "Acting", None),
    3085: ("James Caan", 2, "Acting", None), 3087: ("Robert Duvall", 2, "Acting", None),
    3092: ("Diane Keaton", 1, "Acting", None), 3223: ("Robert Downey Jr.", 2, "Acting", None),
    3894: ("Christian Bale", 2, "Acting", None), 3895: ("Michael Caine", 2, "Acting", None),
    3896: ("Liam Neeson", 2, "Acting", None), 3897: ("Katie Holmes", 1, "Acting", None),
    3899: ("Ken Watanabe", 2, "Acting", "渡辺謙"), 4491: ("Jennifer Aniston", 1, "Acting", None),
    4495: ("Steve Carell", 2, "Acting", None), 4566: ("Alan Rickman", 2, "Acting", None),
    4808: ("Giancarlo Esposito", 2, "Acting", None), 5469: ("Ralph Fiennes", 2, "Acting", None),
    5658: ("Michael Gambon", 2, "Acting", None), 6193: ("Leonardo DiCaprio", 2, "Acting", None),
    6383: ("Aaron Eckhart", 2, "Acting", None), 6384: ("Keanu Reeves", 2, "Acting", None),
    7060: ("Martin Freeman", 2, "Acting", None), 7467: ("David Fincher", 2, "Directing", None),
    10297: ("Matthew McConaughey", 2, "Acting", None), 10978: ("Maggie Smith", 1, "Acting", None),
    10980: ("Daniel Radcliffe", 2, "Acting", None), 10989: ("Rupert Grint", 2, "Acting", None),
    10990: ("Emma Watson", 1, "Acting", None), 10993: ("Tom Felton", 2, "Acting", None),
    12248: ("Alec Guinness", 2, "Acting", None), 12795: ("Nikolaj Coster-Waldau", 2, "Acting", None),
    14405: ("Courteney Cox", 1, "Acting", None), 14406: ("Lisa Kudrow", 1, "Acting", None),
    14407: ("Matt LeBlanc", 2, "Acting", None), 14408: ("Matthew Perry", 2, "Acting", None),
    14409: ("David Schwimmer", 2, "Acting", None), 15152: ("James Earl Jones", 2, "Acting", None),
    15277: ("Jon Favreau", 2, "Directing", None), 16828: ("Chris Evans", 2, "Acting", None),
    17286: ("Lena Headey", 1, "Acting", None), 17419: ("Bryan Cranston", 2, "Acting", None),
    17697: ("John Krasinski", 2, "Acting", None), 22970: ("Peter Dinklage", 2, "Acting", None),
    24045: ("Joseph Gordon-Levitt", 2, "Acting", None), 27578: ("Elliot Page", 2, "Acting", None),
    35029: ("David Harbour", 2, "Acting", None), 59410: ("Bob Odenkirk", 2, "Acting", None),
    66633: ("Vince Gilligan", 2, "Writing", None), 71580: ("Benedict Cumberbatch", 2, "Acting", None),
    74568: ("Chris Hemsworth", 2, "Acting", None), 83002: ("Jessica Chastain", 1, "Acting", None),
    84497: ("Aaron Paul", 2, "Acting", None), 134531: ("Anna Gunn", 1, "Acting", None),
    239019: ("Kit Harington", 2, "Acting", None), 1001657: ("Sophie Turner", 1, "Acting", None),
    1181313: ("Maisie Williams", 1, "Acting", None), 1223786: ("Emilia Clarke", 1, "Acting", None),
    1253360: ("Pedro Pascal", 2, "Acting", None), 1356210: ("Millie Bobby Brown", 1, "Acting", None),
    14329: ("Dean Norris", 2, "Acting", None), 11678: ("Rainn Wilson", 2, "Acting", None),
    # sandbox ids from here on
    9100001: ("Rumi Hiiragi", 1, "Acting", "柊瑠美"), 9100002: ("Miyu Irino", 2, "Acting", "入野自由"),
    9100003: ("Mari Natsuki", 1, "Acting", "夏木マリ"), 9100004: ("Junko Takeuchi", 1, "Acting", "竹内順子"),
    9100005: ("Noriaki Sugiyama", 2, "Acting", "杉山紀彰"), 9100006: ("Chie Nakamura", 1, "Acting", "中村千絵"),
    9100007: ("Kazuhiko Inoue", 2, "Acting", "井上和彦"), 9100008: ("Maile Flanagan", 1, "Acting", None),
    9100009: ("Masashi Kishimoto", 2, "Writing", "岸本斉史"), 9100010: ("Jenna Fischer", 1, "Acting", None),
    9100011: ("Mindy Kaling", 1, "Acting", None), 9100012: ("Greg Daniels", 2, "Writing", None),
    9100013: ("Zach Tyler Eisen", 2, "Acting", None), 9100014: ("Mae Whitman", 1, "Acting", None),
    9100015: ("Jack De Sena", 2, "Acting", None), 9100016: ("Dante Basco", 2, "Acting", None),
    9100017: ("Mako Iwamatsu", 2, "Acting", None), 9100018: ("Jessie Flower", 1, "Acting", None),
    9100019: ("Michael Dante DiMartino", 2, "Writing", None), 9100020: ("Bryan Konietzko", 2, "Writing", None),
    9100021: ("Finn Wolfhard", 2, "Acting", None), 9100022: ("Gaten Matarazzo", 2, "Acting", None),
    9100023: ("Noah Schnapp", 2, "Acting", None), 9100024: ("The Duffer Brothers", 2, "Writing", None),
    9100025: ("David Crane", 2, "Writing", None), 9100026: ("Marta Kauffman", 1, "Writing", None),
    9100027: ("Dan Castellaneta", 2, "Acting", None), 9100028: ("Julie Kavner", 1, "Acting", None),
    9100029: ("Nancy Cartwright", 1, "Acting", None), 9100030: ("Yeardley Smith", 1, "Acting", None),
    9100031: ("Hank Azaria", 2, "Acting", None), 9100032: ("Harry Shearer", 2, "Acting", None),
    9100033: ("Matt Groening", 2, "Writing", None), 9100034: ("Yuki Kaji", 2, "Acting", "梶裕貴"),
    9100035: ("Yui Ishikawa", 1, "Acting", "石川由依"), 9100036: ("Marina Inoue", 1, "Acting", "井上麻里奈"),
    9100037: ("Hiroshi Kamiya", 2, "Acting", "神谷浩史"), 9100038: ("Hajime Isayama", 2, "Writing", "諫山創"),
    9100039: ("Mamoru Miyano", 2, "Acting", "宮野真守"), 9100040: ("Kappei Yamaguchi", 2, "Acting", "山口勝平"),
    9100041: ("Shido Nakamura", 2, "Acting", "中村獅童"), 9100042: ("Mayumi Tanaka", 1, "Acting", "田中真弓"),
    9100043: ("Kazuya Nakai", 2, "Acting", "中井和哉"), 9100044: ("Akemi Okamura", 1, "Acting", "岡村明美"),
    9100045: ("Hiroaki Hirata", 2, "Acting", "平田広明"), 9100046: ("Eiichiro Oda", 2, "Writing", "尾田栄一郎"),
    9100047: ("Ian Cardoni", 2, "Acting", None), 9100048: ("Harry Belden", 2, "Acting", None),
    9100049: ("Chris Parnell", 2, "Acting", None), 9100050: ("Sarah Chalke", 1, "Acting", None),
    9100051: ("Spencer Grammer", 1, "Acting", None), 9100052: ("Dan Harmon", 2, "Writing", None),
    9100053: ("Una Stubbs", 1, "Acting", None), 9100054: ("Andrew Scott", 2, "Acting", None),
    9100055: ("Mark Gatiss", 2, "Writing", None), 9100056: ("Steven Moffat", 2, "Writing", None),
    9100057: ("Carl Weathers", 2, "Acting", None), 9100058: ("Gina Carano", 1, "Acting", None),
    9100059: ("Romi Park", 1, "Acting", "朴璐美"), 9100060: ("Rie Kugimiya", 1, "Acting", "釘宮理恵"),
    9100061: ("Shinichiro Miki", 2, "Acting", "三木眞一郎"), 9100062: ("Hiromu Arakawa", 1, "Writing", "荒川弘"),
    9100063: ("Ryunosuke Kamiki", 2, "Acting", "神木隆之介"), 9100064: ("Mone Kamishiraishi", 1, "Acting", "上白石萌音"),
    9100065: ("Makoto Shinkai", 2, "Directing", "新海誠"), 9100066: ("Noriko Hidaka", 1, "Acting", "日高のり子"),
    9100067: ("Chika Sakamoto", 1, "Acting", "坂本千夏"), 9100068: ("Hitoshi Takagi", 2, "Acting", "高木均"),
    9100069: ("Betsy Brandt", 1, "Acting", None), 9100070: ("RJ Mitte", 2, "Acting", None),
    9100071: ("Ed Helms", 2, "Acting", None), 9100072: ("David Benioff", 2, "Writing", None),
    9100073: ("D. B. Weiss", 2, "Writing", None), 9100074: ("Chris Columbus", 2, "Directing", None),
    9100075: ("Kenneth Branagh", 2, "Acting", None), 9100076: ("David Thewlis", 2, "Acting", None),
    9100077: ("Alfonso Cuarón", 2, "Directing", None), 9100078: ("David Yates", 2, "Directing", None),
    9100079: ("David Prowse", 2, "Acting", None), 9100080: ("Billy Dee Williams", 2, "Acting", None),
    9100081: ("Frank Oz", 2, "Acting", None), 9100082: ("Irvin Kershner", 2, "Directing", None),
    9100083: ("Ian McDiarmid", 2, "Acting", None), 9100084: ("Richard Marquand", 2, "Directing", None),
    9100085: ("Lana Wachowski", 1, "Directing", None), 9100086: ("Lilly Wachowski", 1, "Directing", None),
    9100087: ("Meat Loaf", 2, "Acting", None), 9100088: ("John Travolta", 2, "Acting", None),
    9100089: ("Kathy Bates", 1, "Acting", None), 9100090: ("Jeremy Renner", 2, "Acting", None),
    9100091: ("Tom Hiddleston", 2, "Acting", None), 9100092: ("Joss Whedon", 2, "Directing", None),
    9100093: ("Josh Brolin", 2, "Acting", None), 9100094: ("Don Cheadle", 2, "Acting", None),
    9100095: ("Anthony Russo", 2, "Directing", None), 9100096: ("Joe Russo", 2, "Directing", None),
    9100097: ("Tim Allen", 2, "Acting", None), 9100098: ("Don Rickles", 2, "Acting", None),
    9100099: ("John Lasseter", 2, "Directing", None), 9100100: ("Terrence Howard", 2, "Acting", None),
    9100101: ("Jeff Bridges", 2, "Acting", None), 9100102: ("Gwyneth Paltrow", 1, "Acting", None),
    9100103: ("Marion Cotillard", 1, "Acting", None), 9100104: ("Justin Roiland", 2, "Acting", None),
}

# Movies: (id, title, original_title|None, lang, release_date, genres, popularity, vote_average, vote_count,
#          runtime, overview, cast [(person, character)], crew [(person, job)], collection|None)
MOVIES = [
    (155, "The Dark Knight", None, "en", "2008-07-16", [18, 28, 80, 53], 98.4, 8.5, 34500, 152,
     "Batman, Lieutenant Gordon and District Attorney Harvey Dent set out to dismantle Gotham's organised crime, "
     "until a criminal mastermind who calls himself the Joker plunges the city into chaos.",
     [(3894, "Bruce Wayne / Batman"), (1810, "Joker"), (6383, "Harvey Dent / Two-Face"), (3895, "Alfred Pennyworth"),
      (64, "Lt. James Gordon"), (1579, "Rachel Dawes"), (192, "Lucius Fox")],
     [(525, "Director"), (525, "Screenplay")], (263, "The Dark Knight Collection")),
    (272, "Batman Begins", None, "en", "2005-06-10", [28, 80, 18], 61.2, 7.7, 21300, 140,
     "After his parents' murder, Bruce Wayne travels the world, trains with a secretive order and returns to "
     "Gotham as the masked vigilante Batman.",
     [(3894, "Bruce Wayne / Batman"), (3895, "Alfred Pennyworth"), (3896, "Henri Ducard"), (3897, "Rachel Dawes"),
      (64, "Jim Gordon"), (2037, "Dr. Jonathan Crane / Scarecrow"), (192, "Lucius Fox")],
     [(525, "Director")], (263, "The Dark Knight Collection")),
    (49026, "The Dark Knight Rises", None, "en", "2012-07-16", [28, 80, 18, 53], 72.5, 7.8, 23600, 165,
     "Eight years after taking the blame for Harvey Dent's crimes, Batman returns to protect Gotham from the "
     "masked revolutionary Bane.",
     [(3894, "Bruce Wayne / Batman"), (2524, "Bane"), (1813, "Selina Kyle"), (24045, "John Blake"),
      (64, "Commissioner Gordon"), (3895, "Alfred Pennyworth"), (9100103, "Miranda Tate"), (192, "Lucius Fox")],
     [(525, "Director")], (263, "The Dark Knight Collection")),
    (129, "Spirited Away", "千と千尋の神隠し", "ja", "2001-07-20", [16, 10751, 14], 88.1, 8.5, 17500, 125,
     "Ten-year-old Chihiro wanders into a world of spirits, where a witch turns her parents into pigs and she must "
     "work in a bathhouse for the gods to free them.",
     [(9100001, "Chihiro Ogino / Sen (voice)"), (9100002, "Haku (voice)"), (9100003, "Yubaba / Zeniba (voice)")],
     [(608, "Director"), (608, "Screenplay")], None),
    (671, "Harry Potter and the Philosopher's Stone", None, "en", "2001-11-16", [12, 14], 150.3, 7.9, 28900, 152,
     "On his eleventh birthday Harry Potter learns he is a wizard and leaves his aunt and uncle for Hogwarts "
     "School of Witchcraft and Wizardry.",
     [(10980, "Harry Potter"), (10989, "Ron Weasley"), (10990, "Hermione Granger"), (194, "Albus Dumbledore"),
      (10978, "Minerva McGonagall"), (4566, "Severus Snape"), (1923, "Rubeus Hagrid"), (10993, "Draco Malfoy")],
     [(9100074, "Director")], (1241, "Harry Potter Collection")),
    (672, "Harry Potter and the Chamber of Secrets", None, "en", "2002-11-13", [12, 14], 120.7, 7.7, 23000, 161,
     "In his second year at Hogwarts, Harry hears a voice in the walls as students are found petrified and the "
     "Chamber of Secrets is opened again.",
     [(10980, "Harry Potter"), (10989, "Ron Weasley"), (10990, "Hermione Granger"), (194, "Albus Dumbledore"),
      (10978, "Minerva McGonagall"), (4566, "Severus Snape"), (9100075, "Gilderoy Lockhart"),
      (10993, "Draco Malfoy")],
     [(9100074, "Director")], (1241, "Harry Potter Collection")),
    (673, "Harry Potter and the Prisoner of Azkaban", None, "en", "2004-05-31", [12, 14], 110.2, 8.0, 22600, 141,
     "Harry's third year at Hogwarts is shadowed by Sirius Black, an escaped prisoner of Azkaban said to be after "
     "him.",
     [(10980, "Harry Potter"), (10989, "Ron Weasley"), (10990, "Hermione Granger"), (64, "Sirius Black"),
      (5658, "Albus Dumbledore"), (4566, "Severus Snape"), (9100076, "Remus Lupin")],
     [(9100077, "Director")], (1241, "Harry Potter Collection")),
    (12445, "Harry Potter and the Deathly Hallows: Part 2", None, "en", "2011-07-12", [14, 12], 105.9, 8.1, 21400,
     130,
     "Harry, Ron and Hermione hunt the last of Voldemort's Horcruxes as the final battle for Hogwarts begins.",
     [(10980, "Harry Potter"), (10989, "Ron Weasley"), (10990, "Hermione Granger"), (5469, "Lord Voldemort"),
      (5658, "Albus Dumbledore"), (4566, "Severus Snape"), (10978, "Minerva McGonagall"), (10993, "Draco Malfoy")],
     [(9100078, "Director")], (1241, "Harry Potter Collection")),
    (11, "Star Wars", None, "en", "1977-05-25", [12, 28, 878], 80.6, 8.2, 21000, 121,
     "Farm boy Luke Skywalker joins a Jedi Knight, a smuggler and two droids to rescue Princess Leia and strike at "
     "the Empire's Death Star.",
     [(2, "Luke Skywalker"), (3, "Han Solo"), (4, "Princess Leia Organa"), (5, "Grand Moff Tarkin"),
      (12248, "Obi-Wan \"Ben\" Kenobi"), (6, "C-3PO"), (9100079, "Darth Vader"), (15152, "Darth Vader (voice)")],
     [(1, "Director"), (1, "Writer")], (10, "Star Wars Collection")),
    (1891, "The Empire Strikes Back", None, "en", "1980-05-20", [12, 28, 878], 45.8, 8.4, 17500, 124,
     "As the Empire hunts the Rebels, Luke trains with Jedi Master Yoda while Han and Leia flee to Cloud City.",
     [(2, "Luke Skywalker"), (3, "Han Solo"), (4, "Princess Leia"), (9100080, "Lando Calrissian"),
      (9100081, "Yoda (voice)"), (15152, "Darth Vader (voice)")],
     [(9100082, "Director")], (10, "Star Wars Collection")),
    (1892, "Return of the Jedi", None, "en", "1983-05-25", [12, 28, 878], 38.1, 7.9, 15800, 132,
     "Luke faces Darth Vader and the Emperor while the Rebel fleet attacks the second Death Star.",
     [(2, "Luke Skywalker"), (3, "Han Solo"), (4, "Princess Leia"), (9100080, "Lando Calrissian"),
      (9100083, "The Emperor"), (15152, "Darth Vader (voice)")],
     [(9100084, "Director")], (10, "Star Wars Collection")),
    (27205, "Inception", None, "en", "2010-07-15", [28, 878, 12], 95.3, 8.4, 37500, 148,
     "Dom Cobb steals secrets from people's dreams; his last job is the reverse: planting an idea in a target's "
     "mind.",
     [(6193, "Dom Cobb"), (24045, "Arthur"), (27578, "Ariadne"), (2524, "Eames"), (3899, "Saito"),
      (2037, "Robert Fischer"), (3895, "Professor Stephen Miles")],
     [(525, "Director")], None),
    (603, "The Matrix", None, "en", "1999-03-31", [28, 878], 85.0, 8.2, 26400, 136,
     "Hacker Neo learns that the world he knows is a simulation and joins the rebels fighting the machines that "
     "built it.",
     [(6384, "Neo"), (2975, "Morpheus"), (530, "Trinity"), (1331, "Agent Smith")],
     [(9100085, "Director"), (9100086, "Director")], (2344, "The Matrix Collection")),
    (550, "Fight Club", None, "en", "1999-10-15", [18], 70.4, 8.4, 30100, 139,
     "An insomniac office worker and a soap salesman start an underground fight club that grows into something far "
     "more dangerous.",
     [(819, "Narrator"), (287, "Tyler Durden"), (1283, "Marla Singer"), (9100087, "Robert 'Bob' Paulson")],
     [(7467, "Director")], None),
    (680, "Pulp Fiction", None, "en", "1994-09-10", [53, 80], 68.7, 8.5, 28500, 154,
     "The lives of two hitmen, a boxer, a gangster's wife and a pair of diner robbers intertwine in Los Angeles.",
     [(9100088, "Vincent Vega"), (2231, "Jules Winnfield"), (139, "Mia Wallace"), (62, "Butch Coolidge")],
     [(138, "Director"), (138, "Writer")], None),
    (238, "The Godfather", None, "en", "1972-03-14", [18, 80], 110.5, 8.7, 21000, 175,
     "The ageing patriarch of a New York crime family hands control of his empire to his reluctant youngest son, "
     "Michael.",
     [(3084, "Don Vito Corleone"), (1158, "Michael Corleone"), (3085, "Sonny Corleone"), (3087, "Tom Hagen"),
      (3092, "Kay Adams")],
     [(1776, "Director")], (230, "The Godfather Collection")),
    (13, "Forrest Gump", None, "en", "1994-06-23", [35, 18, 10749], 75.9, 8.5, 28000, 142,
     "A kind-hearted man from Alabama witnesses and shapes decades of American history while never forgetting his "
     "childhood love, Jenny.",
     [(31, "Forrest Gump"), (32, "Jenny Curran"), (33, "Lieutenant Dan Taylor"), (35, "Mrs. Gump")],
     [(24, "Director")], None),
    (597, "Titanic", None, "en", "1997-11-18", [18, 10749], 90.2, 7.9, 25800, 194,
     "A young aristocrat falls for a penniless artist aboard the doomed maiden voyage of the RMS Titanic.",
     [(6193, "Jack Dawson"), (204, "Rose DeWitt Bukater"), (1954, "Caledon Hockley"), (9100089, "Molly Brown")],
     [(2710, "Director")], None),
    (24428, "The Avengers", None, "en", "2012-04-25", [878, 28, 12], 99.8, 7.7, 31800, 143,
     "Nick Fury assembles Earth's mightiest heroes to stop Loki and an alien army from conquering the planet.",
     [(3223, "Tony Stark / Iron Man"), (16828, "Steve Rogers / Captain America"), (103, "Bruce Banner / The Hulk"),
      (74568, "Thor"), (1245, "Natasha Romanoff / Black Widow"), (9100090, "Clint Barton / Hawkeye"),
      (9100091, "Loki"), (2231, "Nick Fury")],
     [(9100092, "Director")], (86311, "The Avengers Collection")),
    (299534, "Avengers: Endgame", None, "en", "2019-04-24", [12, 878, 28], 130.1, 8.2, 26500, 181,
     "After Thanos wipes out half of all life, the remaining Avengers attempt one last mission to undo it.",
     [(3223, "Tony Stark / Iron Man"), (16828, "Steve Rogers / Captain America"), (103, "Bruce Banner / Hulk"),
      (74568, "Thor"), (1245, "Natasha Romanoff / Black Widow"), (9100090, "Clint Barton / Hawkeye"),
      (9100093, "Thanos"), (9100094, "James Rhodes / War Machine")],
     [(9100095, "Director"), (9100096, "Director")], (86311, "The Avengers Collection")),
    (157336, "Interstellar", None, "en", "2014-11-05", [12, 18, 878], 140.6, 8.5, 36900, 169,
     "With Earth failing, a former pilot leads a crew through a wormhole in search of a new home for humanity.",
     [(10297, "Cooper"), (1813, "Brand"), (83002, "Murph"), (3895, "Professor Brand")],
     [(525, "Director")], None),
    (120, "The Lord of the Rings: The Fellowship of the Ring", None, "en", "2001-12-18", [12, 14, 28], 100.2, 8.4,
     26000, 179,
     "The hobbit Frodo inherits the One Ring and sets out with eight companions to destroy it in the fires of Mount "
     "Doom.",
     [(109, "Frodo Baggins"), (1327, "Gandalf"), (110, "Aragorn"), (1328, "Samwise Gamgee"), (114, "Legolas"),
      (48, "Boromir"), (112, "Galadriel")],
     [(108, "Director")], (119, "The Lord of the Rings Collection")),
    (122, "The Lord of the Rings: The Return of the King", None, "en", "2003-12-17", [12, 14, 28], 95.1, 8.5, 25000,
     201,
     "Gandalf and Aragorn lead the free peoples against Sauron's army while Frodo and Sam approach Mount Doom.",
     [(109, "Frodo Baggins"), (1327, "Gandalf"), (110, "Aragorn"), (1328, "Samwise Gamgee"), (114, "Legolas"),
      (1333, "Gollum / Sméagol"), (112, "Galadriel")],
     [(108, "Director")], (119, "The Lord of the Rings Collection")),
    (862, "Toy Story", None, "en", "1995-11-22", [16, 12, 10751, 35], 85.5, 8.0, 18900, 81,
     "Cowboy doll Woody feels threatened when the flashy space ranger Buzz Lightyear becomes Andy's favourite toy.",
     [(31, "Woody (voice)"), (9100097, "Buzz Lightyear (voice)"), (9100098, "Mr. Potato Head (voice)")],
     [(9100099, "Director")], (10194, "Toy Story Collection")),
    (372058, "Your Name.", "君の名は。", "ja", "2016-08-26", [16, 10749, 18], 70.3, 8.5, 11800, 106,
     "A Tokyo boy and a country girl find themselves swapping bodies in their sleep, and set out to meet.",
     [(9100063, "Taki Tachibana (voice)"), (9100064, "Mitsuha Miyamizu (voice)")],
     [(9100065, "Director")], None),
    (8392, "My Neighbor Totoro", "となりのトトロ", "ja", "1988-04-16", [14, 16, 10751], 55.2, 8.1, 8300, 86,
     "Two sisters who move to the countryside befriend Totoro, a gentle forest spirit only children can see.",
     [(9100066, "Satsuki Kusakabe (voice)"), (9100067, "Mei Kusakabe (voice)"), (9100068, "Totoro (voice)")],
     [(608, "Director")], None),
    (1726, "Iron Man", None, "en", "2008-04-30", [28, 878, 12], 78.3, 7.6, 27200, 126,
     "Billionaire engineer Tony Stark builds a suit of armour to escape his captors and becomes Iron Man.",
     [(3223, "Tony Stark / Iron Man"), (9100100, "James 'Rhodey' Rhodes"), (9100101, "Obadiah Stane"),
      (9100102, "Virginia 'Pepper' Potts")],
     [(15277, "Director")], (131292, "Iron Man Collection")),
]

# TV: (id, name, original_name|None, lang, first_air_date, genres, popularity, vote_average, vote_count, origin,
#      seasons, episodes, overview, cast [(person, character, episode_count)], created_by [person])
TV = [
    (1396, "Breaking Bad", None, "en", "2008-01-20", [18, 80], 310.5, 8.9, 15200, ["US"], 5, 62,
     "A chemistry teacher diagnosed with terminal cancer turns to making methamphetamine to secure his family's "
     "future.",
     [(17419, "Walter White", 62), (84497, "Jesse Pinkman", 62), (134531, "Skyler White", 62),
      (14329, "Hank Schrader", 62), (9100069, "Marie Schrader", 62), (9100070, "Walter White Jr.", 62),
      (59410, "Saul Goodman", 43), (4808, "Gustavo Fring", 26), (783, "Mike Ehrmantraut", 26)],
     [66633]),
    (46260, "Naruto", "ナルト", "ja", "2002-10-03", [16, 10759, 10765], 160.2, 8.4, 6100, ["JP"], 5, 220,
     "Naruto Uzumaki, a loud young ninja who carries the Nine-Tailed Fox within him, dreams of becoming Hokage, the "
     "leader of his village.",
     [(9100004, "Naruto Uzumaki (voice)", 220), (9100005, "Sasuke Uchiha (voice)", 160),
      (9100006, "Sakura Haruno (voice)", 180), (9100007, "Kakashi Hatake (voice)", 140),
      (9100008, "Naruto Uzumaki (English voice)", 220)],
     [9100009]),
    (2316, "The Office", None, "en", "2005-03-24", [35], 190.4, 8.6, 4500, ["US"], 9, 201,
     "A mockumentary about the everyday lives of the employees of the Scranton branch of the Dunder Mifflin Paper "
     "Company.",
     [(4495, "Michael Scott", 139), (11678, "Dwight Schrute", 201), (17697, "Jim Halpert", 201),
      (9100010, "Pam Beesly", 201), (9100071, "Andy Bernard", 145), (9100011, "Kelly Kapoor", 137)],
     [9100012]),
    (1399, "Game of Thrones", None, "en", "2011-04-17", [10765, 18, 10759], 290.7, 8.5, 25100, ["US"], 8, 73,
     "Noble families wage war for the Iron Throne of the Seven Kingdoms while an ancient threat returns beyond the "
     "Wall.",
     [(1223786, "Daenerys Targaryen", 62), (239019, "Jon Snow", 62), (22970, "Tyrion Lannister", 67),
      (17286, "Cersei Lannister", 62), (12795, "Jaime Lannister", 55), (1001657, "Sansa Stark", 59),
      (1181313, "Arya Stark", 59), (48, "Eddard 'Ned' Stark", 9)],
     [9100072, 9100073]),
    (246, "Avatar: The Last Airbender", None, "en", "2005-02-21", [16, 10759, 10765], 95.6, 8.7, 4200, ["US"], 3, 61,
     "Aang, the last Airbender and the Avatar, must master all four elements to end the Fire Nation's war.",
     [(9100013, "Aang (voice)", 61), (9100014, "Katara (voice)", 61), (9100015, "Sokka (voice)", 61),
      (9100016, "Zuko (voice)", 59), (9100017, "Iroh (voice)", 45), (9100018, "Toph Beifong (voice)", 36)],
     [9100019, 9100020]),
    (66732, "Stranger Things", None, "en", "2016-07-15", [10765, 9648, 18], 230.3, 8.6, 18900, ["US"], 5, 42,
     "When a boy vanishes in a small Indiana town, his friends, family and a strange girl uncover a world of secret "
     "experiments and supernatural forces.",
     [(1356210, "Eleven", 42), (1920, "Joyce Byers", 42), (35029, "Jim Hopper", 42),
      (9100021, "Mike Wheeler", 42), (9100022, "Dustin Henderson", 42), (9100023, "Will Byers", 42)],
     [9100024]),
    (1668, "Friends", None, "en", "1994-09-22", [35, 18], 170.8, 8.4, 8200, ["US"], 10, 236,
     "Six friends navigate work, love and life in New York City, mostly from a coffee house called Central Perk.",
     [(4491, "Rachel Green", 236), (14405, "Monica Geller", 236), (14406, "Phoebe Buffay", 236),
      (14407, "Joey Tribbiani", 236), (14408, "Chandler Bing", 236), (14409, "Ross Geller", 236)],
     [9100025, 9100026]),
    (456, "The Simpsons", None, "en", "1989-12-17", [10751, 16, 35], 240.1, 8.0, 10500, ["US"], 36, 790,
     "The satirical adventures of a working-class family in the misfit city of Springfield.",
     [(9100027, "Homer Simpson (voice)", 790), (9100028, "Marge Simpson (voice)", 790),
      (9100029, "Bart Simpson (voice)", 790), (9100030, "Lisa Simpson (voice)", 790),
      (9100031, "Moe Szyslak (voice)", 700), (9100032, "Mr. Burns (voice)", 700)],
     [9100033]),
    (1429, "Attack on Titan", "進撃の巨人", "ja", "2013-04-07", [16, 10765, 10759], 120.9, 8.7, 7100, ["JP"], 4, 94,
     "Humanity lives behind enormous walls to survive the man-eating Titans, until one breaches them and Eren "
     "Yeager vows revenge.",
     [(9100034, "Eren Yeager (voice)", 94), (9100035, "Mikasa Ackerman (voice)", 94),
      (9100036, "Armin Arlert (voice)", 94), (9100037, "Levi (voice)", 80)],
     [9100038]),
    (13916, "Death Note", "デスノート", "ja", "2006-10-04", [16, 9648, 10765], 90.5, 8.6, 5200, ["JP"], 1, 37,
     "A brilliant student finds a notebook that kills anyone whose name is written in it, and the detective L sets "
     "out to stop him.",
     [(9100039, "Light Yagami (voice)", 37), (9100040, "L (voice)", 25), (9100041, "Ryuk (voice)", 37)],
     []),
    (37854, "One Piece", "ワンピース", "ja", "1999-10-20", [10759, 35, 16], 140.2, 8.7, 4800, ["JP"], 22, 1122,
     "Monkey D. Luffy and his Straw Hat crew sail the Grand Line in search of the legendary treasure, the One Piece.",
     [(9100042, "Monkey D. Luffy (voice)", 1122), (9100043, "Roronoa Zoro (voice)", 1100),
      (9100044, "Nami (voice)", 1100), (9100045, "Sanji (voice)", 1050)],
     [9100046]),
    (60625, "Rick and Morty", None, "en", "2013-12-02", [16, 35, 10765, 10759], 180.6, 8.7, 10300, ["US"], 8, 81,
     "A cynical mad scientist drags his nervous grandson on dangerous adventures across the multiverse.",
     [(9100104, "Rick Sanchez / Morty Smith (voice)", 61), (9100047, "Rick Sanchez (voice)", 20),
      (9100048, "Morty Smith (voice)", 20), (9100049, "Jerry Smith (voice)", 81), (9100050, "Beth Smith (voice)", 81),
      (9100051, "Summer Smith (voice)", 81)],
     [9100052, 9100104]),
    (19885, "Sherlock", None, "en", "2010-07-25", [80, 18, 9648], 85.3, 8.5, 5300, ["GB"], 4, 13,
     "Consulting detective Sherlock Holmes and army doctor John Watson solve crimes in modern-day London.",
     [(71580, "Sherlock Holmes", 13), (7060, "Dr. John Watson", 13), (9100053, "Mrs. Hudson", 13),
      (9100054, "Jim Moriarty", 6)],
     [9100055, 9100056]),
    (82856, "The Mandalorian", None, "en", "2019-11-12", [10765, 10759, 18], 110.4, 8.4, 9700, ["US"], 3, 24,
     "After the fall of the Empire, a lone Mandalorian bounty hunter takes on a mysterious child he was hired to "
     "capture.",
     [(1253360, "Din Djarin / The Mandalorian", 24), (9100057, "Greef Karga", 12), (9100058, "Cara Dune", 11),
      (4808, "Moff Gideon", 9)],
     [15277]),
    (31911, "Fullmetal Alchemist: Brotherhood", "鋼の錬金術師 FULLMETAL ALCHEMIST", "ja", "2009-04-05",
     [16, 10759, 10765, 18], 75.8, 8.7, 2200, ["JP"], 1, 64,
     "Brothers Edward and Alphonse Elric search for the Philosopher's Stone to restore the bodies they lost in a "
     "forbidden alchemy ritual.",
     [(9100059, "Edward Elric (voice)", 64), (9100060, "Alphonse Elric (voice)", 64),
      (9100061, "Roy Mustang (voice)", 50)],
     [9100062]),
]

_B62 = string.digits + string.ascii_letters


def _path(seed: str) -> str:
    h = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    out = ""
    for _ in range(27):
        h, r = divmod(h, 62)
        out += _B62[r]
    return "/" + out + ".jpg"


def _credit_id(*parts: object) -> str:
    return hashlib.md5("|".join(map(str, parts)).encode()).hexdigest()[:24]


def build() -> dict:
    people: dict[int, dict] = {}
    for pid, (name, gender, dept, original) in PEOPLE.items():
        people[pid] = {"id": pid, "name": name, "original_name": original or name, "gender": gender,
                       "known_for_department": dept, "profile_path": _path(f"person-{pid}"), "adult": False}
    titles = []
    for (tid, title, original, lang, date, genres, pop, va, vc, runtime, overview, cast, crew, coll) in MOVIES:
        titles.append({
            "media_type": "movie", "id": tid, "title": title, "original_title": original or title,
            "original_language": lang, "release_date": date, "genre_ids": genres, "popularity": pop,
            "vote_average": va, "vote_count": vc, "runtime": runtime, "overview": overview,
            "poster_path": _path(f"movie-{tid}-poster"), "backdrop_path": _path(f"movie-{tid}-backdrop"),
            "adult": False, "video": False,
            "origin_country": ["JP"] if lang == "ja" else ["US"],
            "belongs_to_collection": None if coll is None else {
                "id": coll[0], "name": coll[1], "poster_path": _path(f"collection-{coll[0]}"),
                "backdrop_path": _path(f"collection-{coll[0]}-b")},
            "cast": [{"id": p, "character": c, "order": i,
                      "credit_id": _credit_id(tid, p, c), "cast_id": i + 1} for i, (p, c) in enumerate(cast)],
            "crew": [{"id": p, "job": j, "department": "Directing" if j == "Director" else "Writing",
                      "credit_id": _credit_id(tid, p, j)} for p, j in crew],
        })
    for (tid, name, original, lang, date, genres, pop, va, vc, origin, seasons, episodes, overview, cast,
         creators) in TV:
        titles.append({
            "media_type": "tv", "id": tid, "name": name, "original_name": original or name,
            "original_language": lang, "first_air_date": date, "genre_ids": genres, "popularity": pop,
            "vote_average": va, "vote_count": vc, "origin_country": origin, "number_of_seasons": seasons,
            "number_of_episodes": episodes, "overview": overview, "poster_path": _path(f"tv-{tid}-poster"),
            "backdrop_path": _path(f"tv-{tid}-backdrop"), "adult": False,
            "cast": [{"id": p, "character": c, "episode_count": e, "order": i, "credit_id": _credit_id(tid, p, c)}
                     for i, (p, c, e) in enumerate(cast)],
            "crew": [{"id": p, "job": "Creator", "department": "Creator", "credit_id": _credit_id(tid, p, "Creator")}
                     for p in creators],
        })
    used = {c["id"] for t in titles for c in t["cast"] + t["crew"]}
    missing = used - set(people)
    assert not missing, f"people missing from PEOPLE: {sorted(missing)}"
    unused = set(people) - used
    assert not unused, f"people without credits: {sorted(unused)}"
    return {
        "genres": {"movie": [{"id": k, "name": v} for k, v in MOVIE_GENRES.items()],
                   "tv": [{"id": k, "name": v} for k, v in TV_GENRES.items()]},
        "titles": titles,
        "people": sorted(people.values(), key=lambda p: p["id"]),
    }


def main() -> None:
    out = Path(__file__).with_name("tmdb.json")
    data = build()
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(data['titles'])} titles, {len(data['people'])} people")


if __name__ == "__main__":
    main()
