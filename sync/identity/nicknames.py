"""Common English given-name variants, each mapped to one canonical form.

Two records whose first names share a canonical form ("Bob" and "Robert") compare at the
nickname level. The table is deliberately small and conservative: a nickname that belongs to
several formal names ("Kate": Katherine, Catherine) maps to the first one listed, and the
formal names themselves stay distinct.
"""

from __future__ import annotations

_VARIANTS: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "gail"),
    "albert": ("al", "bert"),
    "alexander": ("alex", "sandy", "xander"),
    "alexandra": ("alexa", "lexi", "sasha"),
    "alfred": ("alfie", "fred"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony",),
    "barbara": ("barb", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "catherine": ("cathy", "cat", "cate"),
    "charles": ("charlie", "chuck", "chas"),
    "christina": ("tina", "chris", "christy"),
    "christine": ("chrissy",),
    "christopher": ("topher", "kit"),
    "cynthia": ("cindy",),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davy"),
    "deborah": ("debbie", "deb", "debra"),
    "donald": ("don", "donny"),
    "dorothy": ("dot", "dottie"),
    "douglas": ("doug",),
    "edward": ("ed", "eddie", "ted", "ned"),
    "elizabeth": ("liz", "beth", "betsy", "betty", "eliza", "lizzie", "libby"),
    "eleanor": ("ellie", "nora"),
    "emily": ("em", "emmy"),
    "frances": ("fran",),
    "francis": ("frank",),
    "frederick": ("freddie", "fritz"),
    "gregory": ("greg",),
    "harold": ("hal", "harry"),
    "henry": ("hank",),
    "isabella": ("bella", "izzy"),
    "jacob": ("jake",),
    "james": ("jim", "jimmy", "jamie"),
    "jennifer": ("jen", "jenny", "jenn"),
    "jessica": ("jess", "jessie"),
    "john": ("jack", "johnny", "jon"),
    "jonathan": ("jonny",),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "judith": ("judy",),
    "katherine": ("kate", "kathy", "katie", "kat", "kay", "kathryn"),
    "kenneth": ("ken", "kenny"),
    "lawrence": ("larry",),
    "leonard": ("leo", "len", "lenny"),
    "margaret": ("maggie", "meg", "peggy", "marge", "greta"),
    "matthew": ("matt",),
    "michael": ("mike", "mikey", "mick"),
    "nathaniel": ("nate", "nat"),
    "nicholas": ("nick", "nicky"),
    "pamela": ("pam",),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "patrick": ("paddy",),
    "peter": ("pete",),
    "philip": ("phil",),
    "rebecca": ("becky", "becca"),
    "richard": ("rick", "rich", "dick", "ricky"),
    "robert": ("bob", "rob", "bobby", "robbie", "bert"),
    "ronald": ("ron", "ronnie"),
    "samantha": ("sam", "sammy"),
    "samuel": ("sammie",),
    "stephen": ("steve", "stevie", "steven"),
    "susan": ("sue", "susie", "suzy"),
    "theodore": ("theo", "teddy"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "tori"),
    "vincent": ("vince", "vinny"),
    "walter": ("walt", "wally"),
    "william": ("bill", "will", "billy", "willie", "liam"),
    "zachary": ("zach", "zack"),
}


def _canonical_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for formal, variants in _VARIANTS.items():
        table.setdefault(formal, formal)
        for variant in variants:
            table.setdefault(variant, formal)
    return table


_CANONICAL = _canonical_table()


def canonical_first_name(name: str) -> str:
    """The formal name behind a nickname (``"bob"`` -> ``"robert"``); lower-case input."""
    return _CANONICAL.get(name, name)
