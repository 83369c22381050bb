"""Common given-name variants: which formal names a first name may stand for.

Two records whose first names may stand for the same formal name ("Bob" and "Robert", "Kate"
and "Catherine") compare at the nickname level. A nickname can belong to several formal names
("Kate": Katherine, Catherine, Kathryn, Kathleen); the formal names themselves stay distinct.
"""

from __future__ import annotations

_VARIANTS: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "gail"),
    "albert": ("al", "bert"),
    "alexander": ("alex", "sandy", "xander", "sasha"),
    "alexandra": ("alex", "alexa", "lexi", "sasha", "sandy"),
    "alfred": ("alfie", "fred", "al"),
    "amanda": ("mandy",),
    "andrew": ("andy", "drew"),
    "anthony": ("tony",),
    "barbara": ("barb", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "catherine": ("cathy", "cat", "cate", "kate"),
    "charles": ("charlie", "chuck", "chas"),
    "christina": ("tina", "chris", "christy"),
    "christine": ("chris", "chrissy"),
    "christopher": ("chris", "topher", "kit"),
    "cynthia": ("cindy",),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davy"),
    "deborah": ("debbie", "deb"),
    "debra": ("debbie", "deb"),
    "dmitri": ("dima",),
    "donald": ("don", "donny", "donnie"),
    "dorothy": ("dot", "dottie"),
    "douglas": ("doug",),
    "edward": ("ed", "eddie", "ted", "ned"),
    "elizabeth": ("liz", "beth", "betsy", "betty", "eliza", "lizzie", "libby"),
    "eleanor": ("ellie", "nora"),
    "emily": ("em", "emmy"),
    "eugene": ("gene",),
    "frances": ("fran",),
    "francis": ("frank",),
    "frederick": ("fred", "freddie", "fritz"),
    "gerald": ("jerry", "gerry"),
    "gregory": ("greg",),
    "harold": ("hal", "harry"),
    "henry": ("hank", "harry"),
    "isabella": ("bella", "izzy"),
    "jacob": ("jake",),
    "jacqueline": ("jackie",),
    "james": ("jim", "jimmy", "jamie"),
    "jeffrey": ("jeff",),
    "jennifer": ("jen", "jenny", "jenn"),
    "jessica": ("jess", "jessie"),
    "john": ("jack", "johnny", "jon"),
    "jonathan": ("jon", "jonny"),
    "jose": ("pepe",),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "judith": ("judy",),
    "katherine": ("kate", "kathy", "katie", "kat", "kay"),
    "kathleen": ("kate", "kathy"),
    "kathryn": ("kate", "kathy", "katie"),
    "kenneth": ("ken", "kenny"),
    "kimberly": ("kim",),
    "lawrence": ("larry",),
    "leonard": ("leo", "len", "lenny"),
    "madison": ("maddie",),
    "malgorzata": ("gosia",),
    "margaret": ("maggie", "meg", "peggy", "marge", "greta"),
    "matthew": ("matt",),
    "melissa": ("missy", "mel"),
    "michael": ("mike", "mikey", "mick"),
    "natalie": ("nat",),
    "nathaniel": ("nate", "nat"),
    "nicholas": ("nick", "nicky"),
    "olivia": ("liv",),
    "pamela": ("pam",),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "patrick": ("pat", "paddy"),
    "peter": ("pete",),
    "philip": ("phil",),
    "raymond": ("ray",),
    "rebecca": ("becky", "becca"),
    "richard": ("rick", "rich", "dick", "ricky"),
    "robert": ("bob", "rob", "bobby", "robbie", "bert"),
    "ronald": ("ron", "ronnie"),
    "russell": ("russ",),
    "samantha": ("sam", "sammy"),
    "samuel": ("sam", "sammy"),
    "sebastian": ("sebas", "seb"),
    "sophia": ("sophie",),
    "stephanie": ("steph",),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "susan": ("sue", "susie", "suzy"),
    "teresa": ("terri", "tess"),
    "theresa": ("terri", "tess"),
    "theodore": ("theo", "ted", "teddy"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "tori"),
    "vincent": ("vince", "vinny"),
    "walter": ("walt", "wally"),
    "william": ("bill", "will", "billy", "willie", "liam"),
    "zachary": ("zach", "zack"),
}


def _group_table() -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for formal, variants in _VARIANTS.items():
        groups.setdefault(formal, [])
        for variant in variants:
            groups.setdefault(variant, []).append(formal)
    return {name: tuple(formals) if formals else (name,) for name, formals in groups.items()}


_GROUPS = _group_table()


def name_groups(name: str) -> tuple[str, ...]:
    """The formal names a lower-case first name may stand for (itself when it is one or
    unknown): ``"kate"`` -> ``("catherine", "katherine", "kathleen", "kathryn")``."""
    return _GROUPS.get(name, (name,))
