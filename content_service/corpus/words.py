"""Word lists the corpus generator draws from (common English title words, first names and
surnames from many languages, with their diacritics, and syllables for the long tail)."""

NOUNS = """
night day knight king queen prince princess war wars star stars world worlds city house home
heart hearts love life death dead man men woman women girl girls boy boys child children family
father mother brother sister son daughter friend friends enemy enemies soldier soldiers hunter
hunters killer killers dragon dragons wolf wolves lion tiger bear eagle hawk raven crow spider
snake shark ghost ghosts spirit spirits angel angels demon demons devil god gods monster monsters
machine machines robot robots planet moon sun sky sea ocean river lake mountain island forest
desert storm fire ice snow rain wind thunder shadow shadows light dark darkness dream dreams
memory memories secret secrets lie lies truth story stories legend legends tale tales game games
road roads street streets bridge tower castle kingdom empire republic nation land lands border
frontier valley garden paradise heaven hell gate gates door doors key keys mirror glass blood
bone bones stone stones gold silver iron steel diamond crown sword swords shield gun guns bullet
heist job mission escape return revenge justice law order crime crimes code cipher signal
echo voice voices song songs music dance party wedding funeral school college academy hospital
prison station train plane ship ships boat car cars race racer driver pilot captain doctor nurse
teacher student detective agent agents spy spies thief thieves pirate pirates ninja samurai
warrior warriors legion army fleet squad team club gang band crew tribe clan order circle
summer winter spring autumn morning evening midnight dawn dusk hour hours minute time times year
years century age ages beginning end ending edge line point zone sector district quarter
empire rebellion revolution uprising invasion outbreak experiment project program protocol
file files case cases report witness trial verdict sentence judge jury lawyer
money fortune treasure diamond empire business company office boss
""".split()

ADJECTIVES = """
dark black white red blue green golden silver last first final lost hidden secret silent quiet
wild free brave bold young old new ancient eternal endless infinite broken fallen rising
burning frozen deadly dangerous wicked evil good holy sacred savage cruel sweet bitter lonely
strange curious crazy mad beautiful perfect little big great grand high deep long short fast
slow hard soft hot cold true false only other next lucky unlucky happy sad funny strange
invisible impossible incredible amazing fantastic magnificent mighty fearless reckless
american british french italian mexican chinese russian german royal imperial modern
""".split()

VERBS = """
run running hide hiding fly flying fall falling rise rising burn burning kill killing love loving
chase chasing hunt hunting catch catching fight fighting break breaking save saving find finding
lose losing dance dancing sing singing dream dreaming remember remembering forget forgetting
""".split()

PLACES = """
london paris tokyo berlin rome madrid moscow chicago brooklyn manhattan boston texas california
hollywood vegas miami detroit seattle atlanta dallas memphis nashville alaska hawaii cairo
istanbul bangkok shanghai hong kong seoul mumbai delhi sydney melbourne dublin glasgow
edinburgh amsterdam vienna prague budapest warsaw lisbon barcelona venice naples sicily
mars venus jupiter saturn atlantis gotham metropolis narnia avalon
""".split()

SUBTITLES = [
    "The Beginning",
    "The Return",
    "The Revenge",
    "The Reckoning",
    "The Awakening",
    "The Uprising",
    "The Final Chapter",
    "The Last Stand",
    "The Lost City",
    "The Dark Side",
    "The Next Generation",
    "A New Hope",
    "Origins",
    "Resurrection",
    "Redemption",
    "Retribution",
    "Legacy",
    "Reborn",
    "Rise of the Machines",
    "Age of Extinction",
    "Endgame",
    "Homecoming",
    "Far from Home",
    "The Movie",
    "The Series",
    "Part One",
    "Part Two",
    "Day of Reckoning",
]

FRENCH = (
    "amour nuit jour vie mort homme femme enfant ville maison coeur rêve étoile été hiver "
    "fenêtre château forêt île mystère café école hôtel fête pêcheur frère sœur bête".split()
)
FRENCH_ADJ = "noir blanc rouge bleu perdu dernier première éternel fou belle étrange doré cachée sauvage".split()
SPANISH = (
    "amor noche día vida muerte hombre mujer niño ciudad casa corazón sueño estrella "
    "verano invierno señor señora caballero montaña año leyenda corazón niña".split()
)
GERMAN = (
    "nacht tag leben tod mann frau kind stadt haus herz traum stern sommer winter "
    "brücke straße mädchen jäger könig krieg schön grün".split()
)
JAPANESE = (
    "kimi no na wa sen to chihiro kamikakushi tonari totoro mononoke hime shingeki "
    "kyojin boku hero akademia kimetsu yaiba naruto shippuden bleach one piece "
    "dragon ball kaze tachinu hotaru haka sailor senshi gundam evangelion "
    "kaguya sama jujutsu kaisen chainsaw spy family".split()
)

FIRST_NAMES = """
James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel
Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald
Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon
Benjamin Samuel Gregory Alexander Frank Patrick Raymond Jack Dennis Jerry Tyler Aaron Jose
Adam Nathan Henry Douglas Zachary Peter Kyle Noah Ethan Jeremy Walter Christian Keanu Heath
Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty
Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah
Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma
Nicole Helen Samantha Katherine Christine Debra Rachel Carolyn Janet Catherine Maria Heather
Diane Ruth Julie Olivia Joyce Virginia Victoria Kelly Lauren Christina Joan Evelyn Judith
Megan Andrea Cheryl Hannah Jacqueline Martha Gloria Teresa Ann Sara Madison Frances Kathryn
Janice Jean Abigail Alice Judy Sophia Grace Denise Amber Doris Marilyn Danielle Beverly
Isabella Theresa Diana Natalie Brittany Charlotte Marie Kayla Alexis Lori Scarlett Zendaya
José Zoë Renée Chloé Amélie Léa Hélène Françoise François Jérôme Céline Mathéo Émile Noémie
Jürgen Jörg Björn Søren Åsa Ólafur Guðrún Þór Małgorzata Łukasz Wojciech Zbigniew Agnieszka
Dušan Miloš Tomáš Jiří Zdeněk Ondřej Ştefan Ioana Mihăilă Gökhan Çağla Şebnem İbrahim
Ramón Andrés Martín Sebastián Inés Begoña Iñaki Joaquín Nuño Tomás Álvaro Julián Raúl
João Gonçalo Conceição Sérgio Antônio Fábio Luís Vânia Thaís Zoltán Gábor Ágnes Réka
Hiroshi Takeshi Yuki Haruka Sakura Kenji Akira Hayao Makoto Rin Sora Ren Hana Yuto Aoi
Wei Ming Li Jun Xiao Mei Lin Hui Chen Jing Min-ho Ji-woo Seo-yeon Hyun Jae Soo
Arjun Priya Rahul Ananya Vikram Deepika Aamir Shah Rukh Aishwarya Ranbir Alia
Olusegun Chidi Ngozi Kwame Amara Oluwaseun Tendai Lupita Chiwetel Idris
""".split()

SURNAMES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips
Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell
Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson
Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera
Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez
McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns
Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt
Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer
Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant
Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight
Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado
Berry Perkins Hoffman Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence
Bale Ledger Nolan Keaton Pattinson Downey Johansson Hemsworth Evans Ruffalo Portman Reeves
Müller Schäfer Köhler Groß Weiß Schröder Bäcker Jäger Günther Böhm Krüger Fröhlich Vöglein
Lefèvre Bérénger Gérard Dubois Moreau Lévy Fontaine Mercier Béliveau Thérien Côté Gagné
Núñez Peña Ibáñez Muñoz Suárez Sáenz Martínez Fernández Gómez Pérez Rodríguez Sánchez Ramírez
Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak Dąbrowski
Novák Dvořák Černý Procházka Kučera Veselý Horák Němec Pokorný Marek Pospíšil Hájek Jelínek
Yılmaz Kaya Demir Şahin Çelik Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan Kılıç
Sørensen Jørgensen Ødegård Åberg Lindqvist Söderberg Bergström Håkansson Öberg Ångström
Tanaka Suzuki Takahashi Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada Sasaki
Miyazaki Kurosawa Ozu Kitano Shinkai Hosoda Oshii Anno Otomo Toriyama Oda Kishimoto
Wang Zhang Liu Yang Huang Zhao Zhou Wu Xu Sun Zhu Ma Hu Guo Lin He Gao Luo Zheng Park Choi
Kapoor Khan Sharma Singh Kumar Gupta Chopra Bachchan Mukherjee Reddy Iyer Rao
Okafor Adeyemi Mensah Nwosu Okonkwo Achebe Nyong'o Ejiofor Elba Oyelowo O'Brien O'Connor
""".split()

ONSETS = (
    "b c d f g h j k l m n p r s t v w z br cr dr fr gr kr pr tr bl cl fl gl kl pl sl st sp sk sh ch th ph qu".split()
)
VOWELS = "a e i o u a e i o ai au ea ia io ou ei ae".split()
CODAS = ["", "", "", "", "n", "r", "s", "l", "m", "th", "x", "k", "nd", "rn", "st"]
ACCENTED = {
    "a": "áàâäã",
    "e": "éèêë",
    "i": "íìîï",
    "o": "óòôöõø",
    "u": "úùûü",
    "n": "ñ",
    "c": "ç",
    "s": "šş",
    "z": "žź",
}

CHARACTER_TITLES = (
    "Captain Doctor Dr. Agent Detective Sergeant Lieutenant Commander Professor "
    "Lord Lady Sir King Queen Prince Princess Mister Miss Officer Major Colonel "
    "General Father Sister Uncle Aunt Grandma Young Old Little Big".split()
)

ALIAS_PATTERNS = [
    "The {Adj} {Noun}",
    "The {Noun}",
    "{Noun} Man",
    "{Noun} Woman",
    "{Noun}girl",
    "{Noun}boy",
    "Captain {Noun}",
    "The {Noun} King",
    "Mister {Noun}",
    "{Adj} {Noun}",
    "Dr. {Sur}",
    "Agent {Sur}",
    "{Noun}-Man",
    "{Noun}hawk",
    "Lady {Noun}",
]
