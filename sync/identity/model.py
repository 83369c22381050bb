"""The probabilistic matcher: a Splink model on DuckDB over the match features.

Comparisons are written as plain SQL levels so the whole model — levels, blocking rules and
trained m/u probabilities — is one JSON document the ledger stores. The built-in document
carries prior m/u values so a small ledger matches sensibly before any training;
:func:`train` re-estimates them unsupervised (u by random sampling, m by EM on blocks that
leave each comparison free in turn).

Blocking rules keep the candidate pairs near-linear: exact e-mail, exact phone, postcode with
street number, surname or first name within a postcode, street with number, surname with
canonical first name inside a postcode area, and swapped names. Each rule joins on equal
values, so a block holds only records that share a rare-ish key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync.identity.features import FEATURE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    from splink import Linker
    from splink.internals.splink_dataframe import SplinkDataFrame

# pandas and Splink load on first use: every command line start would pay for them otherwise.

TRAINING_PAIRS = 1_000_000
"""Random pairs sampled to estimate the u probabilities."""
EM_PAIRS = 2_000_000
"""Blocked pairs at most per EM session."""
DETERMINISTIC_RECALL = 0.7
"""Share of true matches the exact e-mail / phone rules are assumed to find (for the prior)."""


def _jw(column: str, threshold: float) -> str:
    return f"jaro_winkler_similarity({column}_l, {column}_r) >= {threshold}"


def _null(*columns: str) -> dict[str, Any]:
    condition = " OR ".join(f"{c}_l IS NULL OR {c}_r IS NULL" for c in columns)
    return {"sql_condition": condition, "label_for_charts": "missing", "is_null_level": True}


def _level(condition: str, label: str, m: float, u: float, **extra: Any) -> dict[str, Any]:
    return {
        "sql_condition": condition,
        "label_for_charts": label,
        "m_probability": m,
        "u_probability": u,
        **extra,
    }


def _else(m: float, u: float) -> dict[str, Any]:
    return _level("ELSE", "different", m, u)


def _comparison(name: str, levels: list[dict[str, Any]]) -> dict[str, Any]:
    return {"output_column_name": name, "comparison_levels": levels}


def _comparisons() -> list[dict[str, Any]]:
    tf_first = {"tf_adjustment_column": "first_name", "tf_adjustment_weight": 1.0}
    tf_last = {"tf_adjustment_column": "last_name", "tf_adjustment_weight": 1.0}
    return [
        _comparison(
            "first_name",
            [
                _null("first_name"),
                _level("first_name_l = first_name_r", "exact", 0.8, 0.005, **tf_first),
                _level("list_has_any(first_groups_l, first_groups_r)", "nickname", 0.06, 0.001),
                _level("first_name_l = last_name_r", "swapped with last name", 0.01, 0.0001),
                _level(_jw("first_name", 0.92), "Jaro-Winkler >= 0.92", 0.06, 0.003),
                _level(_jw("first_name", 0.8), "Jaro-Winkler >= 0.8", 0.03, 0.03),
                _level(
                    "(length(first_name_l) = 1 OR length(first_name_r) = 1)"
                    " AND substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1)",
                    "initial",
                    0.02,
                    0.01,
                ),
                # Fixed, not trained: EM cannot tell a household (same surname and address)
                # from one person, and would learn that a different first name is common.
                _level("ELSE", "different", 0.002, 0.95, fix_m_probability=True),
            ],
        ),
        _comparison(
            "last_name",
            [
                _null("last_name"),
                _level("last_name_l = last_name_r", "exact", 0.85, 0.003, **tf_last),
                _level("last_name_l = first_name_r", "swapped with first name", 0.01, 0.0001),
                _level(_jw("last_name", 0.92), "Jaro-Winkler >= 0.92", 0.08, 0.002),
                _level(_jw("last_name", 0.8), "Jaro-Winkler >= 0.8", 0.03, 0.03),
                _else(0.03, 0.965),
            ],
        ),
        _comparison(
            "email",
            [
                _null("email"),
                _level("email_l = email_r", "exact", 0.4, 0.00001),
                _level("email_domain_l = email_domain_r", "same company domain", 0.05, 0.001),
                _else(0.45, 0.9985),
            ],
        ),
        _comparison(
            "phone",
            [
                _null("phone"),
                _level("phone_l = phone_r", "exact", 0.4, 0.00001),
                _level("phone_last7_l = phone_last7_r", "same last 7 digits", 0.05, 0.0001),
                _else(0.55, 0.99989),
            ],
        ),
        _comparison(
            "company",
            [
                _null("company"),
                _level("company_l = company_r", "exact", 0.6, 0.001),
                _level(_jw("company", 0.9), "Jaro-Winkler >= 0.9", 0.1, 0.005),
                _else(0.3, 0.994),
            ],
        ),
        _comparison(
            "address",
            [
                {
                    "sql_condition": "(street_l IS NULL AND postcode_l IS NULL)"
                    " OR (street_r IS NULL AND postcode_r IS NULL)",
                    "label_for_charts": "missing",
                    "is_null_level": True,
                },
                _level(
                    "street_number_l = street_number_r AND street_l = street_r"
                    " AND postcode_l = postcode_r",
                    "same street, number and postcode",
                    0.8,
                    0.00002,
                ),
                _level(
                    f"street_number_l = street_number_r AND {_jw('street', 0.8)}"
                    " AND postcode_l = postcode_r",
                    "same number and postcode, similar street",
                    0.05,
                    0.000003,
                ),
                _level(
                    "street_number_l = street_number_r AND postcode_l = postcode_r",
                    "same number and postcode",
                    0.02,
                    0.00002,
                ),
                _level(
                    f"street_number_l = street_number_r AND {_jw('street', 0.9)}",
                    "same number, similar street",
                    0.05,
                    0.00001,
                ),
                _level(
                    f"postcode_l = postcode_r AND {_jw('street', 0.9)}",
                    "same postcode, similar street",
                    0.02,
                    0.00005,
                ),
                _level("postcode_l = postcode_r", "same postcode", 0.03, 0.0002),
                _level(
                    "substr(postcode_l, 1, 3) = substr(postcode_r, 1, 3)", "same area", 0.01, 0.02
                ),
                _else(0.04, 0.98),
            ],
        ),
        _comparison(
            "city",
            [
                _null("city"),
                _level("city_l = city_r", "exact", 0.8, 0.01),
                _level(_jw("city", 0.9), "Jaro-Winkler >= 0.9", 0.1, 0.005),
                _else(0.1, 0.985),
            ],
        ),
    ]


BLOCKING_RULES = (
    "l.email = r.email",
    "l.phone = r.phone",
    "l.postcode = r.postcode AND l.street_number = r.street_number",
    "l.last_name = r.last_name AND l.postcode = r.postcode",
    "l.first_name = r.first_name AND l.postcode = r.postcode",
    "l.street_number = r.street_number AND l.street = r.street",
    "l.last_name = r.last_name AND l.first_canonical = r.first_canonical"
    " AND substr(l.postcode, 1, 3) = substr(r.postcode, 1, 3)",
    "l.first_name = r.last_name AND l.last_name = r.first_name",
)

_TRAINING_KEYS = (
    ("email",),
    ("postcode", "street_number"),
    ("phone",),
    ("last_name", "first_canonical"),
)
"""EM sessions, each blocking on these columns and leaving the other comparisons free to be
estimated. A session whose block holds too few pairs (no e-mails in the data, say) is skipped:
Splink refuses it, and a refused session leaves the model's prior spoilt."""
MIN_EM_PAIRS = 50
_DETERMINISTIC = (
    "l.email = r.email",
    "l.phone = r.phone",
    "l.first_name = r.first_name AND l.last_name = r.last_name"
    " AND l.street_number = r.street_number AND l.postcode = r.postcode",
)


def default_settings() -> dict[str, Any]:
    """The untrained model: comparisons, blocking rules and prior m/u probabilities."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 0.0001,
        "comparisons": _comparisons(),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": rule, "sql_dialect": "duckdb"} for rule in BLOCKING_RULES
        ],
        "retain_intermediate_calculation_columns": False,
        "retain_matching_columns": False,
    }


def features_frame(rows: Sequence[dict[str, object]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_records(list(rows), columns=list(FEATURE_COLUMNS))
    frame["unique_id"] = frame["unique_id"].astype("int64")
    return frame


TF_COLUMNS = ("first_name", "last_name")
TERM_FREQUENCIES = "clm_sync_term_frequencies"
"""Key of the model document holding the term frequencies of the training data. Scoring uses
them, not those of the records at hand, so a pair scores the same whenever it is compared:
incremental runs then end exactly as a full run would."""


def term_frequencies(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {
        column: {
            str(value): float(share)
            for value, share in frame[column].value_counts(normalize=True).items()
        }
        for column in TF_COLUMNS
    }


def _linker(frame: pd.DataFrame, settings: dict[str, Any]) -> tuple[Linker, SplinkDataFrame]:
    """A Linker on its own in-memory DuckDB, with the model's term frequencies if it has any."""
    import pandas as pd
    from splink import DuckDBAPI, Linker

    splink_settings = {k: v for k, v in settings.items() if k != TERM_FREQUENCIES}
    api = DuckDBAPI()
    table = api.register(frame, dataset_display_name="customers")
    linker = Linker(table, splink_settings, log_level=logging.ERROR)
    for column, shares in settings.get(TERM_FREQUENCIES, {}).items():
        lookup = pd.DataFrame({column: list(shares), f"tf_{column}": list(shares.values())})
        linker.table_management.register_term_frequency_lookup(
            api.register(lookup, dataset_display_name=f"tf_lookup_{column}"), column
        )
    return linker, table


def train(frame: pd.DataFrame, *, seed: int = 1) -> dict[str, Any]:
    """An EM-trained model for these records, starting from the built-in one."""
    linker, _ = _linker(frame, default_settings())
    pairs = len(frame) * (len(frame) - 1) / 2
    linker.training.estimate_probability_two_random_records_match(
        list(_DETERMINISTIC), recall=DETERMINISTIC_RECALL
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=min(TRAINING_PAIRS, pairs), seed=seed
    )
    for keys in _TRAINING_KEYS:
        keyed = frame.dropna(subset=list(keys))
        if int(keyed.duplicated(subset=list(keys)).sum()) < MIN_EM_PAIRS:
            continue
        linker.training.estimate_parameters_using_expectation_maximisation(
            " AND ".join(f"l.{key} = r.{key}" for key in keys),
            max_pairs=EM_PAIRS,
            record_sample_proportion=1.0,
        )
    settings = linker.misc.save_model_to_json()
    settings[TERM_FREQUENCIES] = term_frequencies(frame)
    if not 0 < settings["probability_two_random_records_match"] < 1:
        # No deterministic pair at all: keep the built-in prior rather than certainty.
        settings["probability_two_random_records_match"] = default_settings()[
            "probability_two_random_records_match"
        ]
    return settings


@dataclass(frozen=True, slots=True)
class Scored:
    """Scored candidate pairs (``unique_id_l < unique_id_r``) and how many were compared."""

    pairs: pd.DataFrame
    compared: int


TWO_PEOPLE = (
    "l.first_name IS NOT NULL AND r.first_name IS NOT NULL"
    " AND l.first_name <> r.first_name AND l.first_name <> r.last_name"
    " AND NOT list_has_any(l.first_groups, r.first_groups)"
    " AND jaro_winkler_similarity(l.first_name, r.first_name) < 0.8"
    " AND substr(l.first_name, 1, 1) <> substr(r.first_name, 1, 1)"
    " AND NOT coalesce(l.email = r.email, false) AND NOT coalesce(l.phone = r.phone, false)"
    " AND NOT coalesce(l.phone_last7 = r.phone_last7, false)"
    " AND coalesce(l.email, r.email, l.phone, r.phone) IS NOT NULL"
)
"""A pair with different first names and no e-mail or phone in common — where either record
has one — is two people: a household or colleagues sharing an address and a surname or a
company. Household members are common in customer data yet rare among random pairs, so the
model's weights alone would link them on the shared address; such a pair is never linked by
the model, only by a key or a rule, and waits in the review queue instead. Data without any
e-mail or phone (Febrl, say) is left to the model."""


def _collect(
    linker: Linker, records: SplinkDataFrame, predictions: SplinkDataFrame, threshold: float
) -> Scored:
    # Table names are Splink's own and the threshold a float: nothing user-typed is spliced.
    name, table = predictions.physical_name, records.physical_name
    counted = linker.misc.query_sql(  # type: ignore[no-untyped-call]
        f"SELECT count(*) AS n FROM {name}",  # noqa: S608
        output_type="pandas",
    )
    kept = linker.misc.query_sql(  # type: ignore[no-untyped-call]
        "SELECT least(p.unique_id_l, p.unique_id_r) AS unique_id_l,"  # noqa: S608
        " greatest(p.unique_id_l, p.unique_id_r) AS unique_id_r,"
        f" p.match_probability, p.match_weight, {TWO_PEOPLE} AS two_people FROM {name} p"
        f" JOIN {table} l ON l.unique_id = p.unique_id_l"
        f" JOIN {table} r ON r.unique_id = p.unique_id_r"
        f" WHERE p.match_probability >= {float(threshold)}",
        output_type="pandas",
    )
    return Scored(kept, int(counted["n"].iloc[0]))


def score_all(frame: pd.DataFrame, settings: dict[str, Any], threshold: float) -> Scored:
    """Every blocked pair of ``frame`` scored; pairs at or above ``threshold`` kept."""
    if len(frame) < 2:
        return Scored(empty_pairs(), 0)
    linker, records = _linker(frame, settings)
    predictions = linker.inference.predict(warning_mode="never")
    return _collect(linker, records, predictions, threshold)


def score_new(
    frame: pd.DataFrame, new_ids: Sequence[int], settings: dict[str, Any], threshold: float
) -> Scored:
    """Only pairs involving a record of ``new_ids``: new with old, and new with new.

    Term frequencies are the model's, else those of the whole of ``frame``.
    """
    is_new = frame["unique_id"].isin(list(new_ids))
    if not is_new.any() or len(frame) < 2:
        return Scored(empty_pairs(), 0)
    linker, records = _linker(frame, settings)
    if TERM_FREQUENCIES not in settings:
        for column in TF_COLUMNS:
            linker.table_management.compute_tf_table(column)
    api = records.db_api
    new = api.register(frame[is_new].reset_index(drop=True), dataset_display_name="new_records")
    parts = [linker.inference.predict_within(new, warning_mode="never")]
    if not is_new.all():
        old = api.register(
            frame[~is_new].reset_index(drop=True), dataset_display_name="old_records"
        )
        parts.append(linker.inference.predict_between(old, new, warning_mode="never"))
    scored = [_collect(linker, records, part, threshold) for part in parts]
    import pandas as pd

    return Scored(
        pd.concat([s.pairs for s in scored], ignore_index=True), sum(s.compared for s in scored)
    )


def empty_pairs() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "unique_id_l": pd.Series(dtype="int64"),
            "unique_id_r": pd.Series(dtype="int64"),
            "match_probability": pd.Series(dtype="float64"),
            "match_weight": pd.Series(dtype="float64"),
            "two_people": pd.Series(dtype="bool"),
        }
    )


@dataclass(frozen=True, slots=True)
class Contribution:
    comparison: str
    level: str
    match_weight: float


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a pair scores as it does: the prior plus one weight per comparison."""

    prior_weight: float
    contributions: tuple[Contribution, ...]
    match_weight: float
    match_probability: float
    two_people: bool
    """Different first names and no e-mail or phone in common: never linked by the model."""


def explain(frame: pd.DataFrame, settings: dict[str, Any], left: int, right: int) -> Explanation:
    """Each comparison's match weight (term-frequency adjustment included) for one pair.

    The weights add up, with the prior, to the pair's match weight; its probability is
    ``2**w / (1 + 2**w)``. Term frequencies come from all of ``frame``.
    """
    linker, _ = _linker(frame, {**settings, "retain_intermediate_calculation_columns": True})
    records = frame.set_index("unique_id")
    row_left = {k: _plain(v) for k, v in records.loc[left].items()} | {"unique_id": left}
    row_right = {k: _plain(v) for k, v in records.loc[right].items()} | {"unique_id": right}
    pair = linker.inference.score_pair(row_left, row_right)
    scored = pair.as_pandas_dataframe().iloc[0]  # type: ignore[no-untyped-call]
    prior = float(settings["probability_two_random_records_match"])
    prior_weight = math.log2(prior / (1 - prior))
    contributions = []
    for comparison in settings["comparisons"]:
        name = comparison["output_column_name"]
        gamma = int(scored[f"gamma_{name}"])
        weight = float(scored[f"mw_{name}"])
        adjustment = _plain(scored.get(f"mw_tf_adj_{name}"))
        if adjustment is not None:
            weight += float(adjustment)  # type: ignore[arg-type]
        contributions.append(Contribution(name, _level_label(comparison, gamma), weight))
    levels = {part.comparison: part.level for part in contributions}
    row_l, row_r = records.loc[left], records.loc[right]
    contacts = [_plain(row[c]) for row in (row_l, row_r) for c in ("email", "phone")]
    two_people = (
        levels["first_name"] == "different"
        and levels["email"] != "exact"
        and levels["phone"] not in {"exact", "same last 7 digits"}
        and any(value is not None for value in contacts)
    )
    return Explanation(
        prior_weight,
        tuple(contributions),
        float(scored["match_weight"]),
        float(scored["match_probability"]),
        two_people,
    )


def _plain(value: object) -> object:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _level_label(comparison: dict[str, Any], gamma: int) -> str:
    """The label of the level with comparison vector value ``gamma`` (-1 is the null level)."""
    if gamma == -1:
        return "missing"
    levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
    return str(levels[len(levels) - 1 - gamma]["label_for_charts"])
