"""The Febrl data sets through the CSV source and reconcile, next to a plain Splink model.

The plain model is set up as in Splink's own Febrl examples (name comparisons, exact street
number and postcode with term frequencies, the examples' blocking rules, prior from
deterministic rules, u by random sampling, m by EM, clusters at our link threshold), restricted
to the columns a customer record carries: a shop or QuickBooks has no date of birth or social
security number, so neither side sees them. ``plain_splink(..., full=True)`` adds them back, as
a reference for the bench.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from config.models import AppConfig, CsvSource, PushConfig, ReconcileConfig
from sync.cycle import SyncService
from sync.reconcile import ReconcileResult, reconcile
from tests.identity_truth import Scores, ledger_clusters, score

DATA = Path(__file__).resolve().parent / "data" / "febrl"
FEBRL3 = ("dataset3.csv",)
FEBRL4 = ("dataset4a.csv", "dataset4b.csv")


def read(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return [
            {key.strip(): (value or "").strip() for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def person(rec_id: str) -> str:
    """``rec-12-dup-3`` and ``rec-12-org`` are person ``rec-12``."""
    return "-".join(rec_id.split("-")[:2])


def write_export(rows: Sequence[dict[str, str]], folder: Path) -> None:
    """The records as the CSV source's ``customers.csv`` (no sales: ``transactions.csv`` empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = (
        "id",
        "first_name",
        "last_name",
        "address_line1",
        "address_line2",
        "city",
        "postcode",
        "region",
        "country",
    )
    with (folder / "customers.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            line1 = f"{row['street_number']} {row['address_1']}".strip()
            writer.writerow(
                (
                    row["rec_id"],
                    row["given_name"],
                    row["surname"],
                    line1,
                    row["address_2"],
                    row["suburb"],
                    row["postcode"],
                    row["state"],
                    "AU",
                )
            )
    (folder / "transactions.csv").write_text("id,customer_id,date,amount,currency\n")


def reconcile_files(
    engine: Engine, url: str, files: Sequence[str], folder: Path
) -> tuple[ReconcileResult, Scores]:
    """Each file as one CSV source, pulled and reconciled; scored against the true persons."""
    sources = []
    for number, name in enumerate(files):
        write_export(read(name), folder / f"febrl{number}")
        sources.append(
            CsvSource(
                type="csv",
                name=f"febrl{number}",
                path=folder / f"febrl{number}",
                push=PushConfig(enabled=False),
            )
        )
    app = AppConfig(ledger=url, sources=sources, phone_region="AU")
    service = SyncService(app, engine)
    for source in sources:
        outcome = service.pull(source.name)
        assert outcome.error is None, outcome.error
    result = reconcile(engine, datetime.now(UTC), app.reconcile)
    expected = {row["rec_id"]: person(row["rec_id"]) for name in files for row in read(name)}
    return result, score(ledger_clusters(engine), expected)


@dataclass(frozen=True, slots=True)
class Plain:
    scores: Scores
    pairs: int
    """Pairs the model scored at probability 0.2 or more."""


def plain_splink(files: Sequence[str], *, full: bool = False) -> Plain:
    """Splink's Febrl example model (without date of birth and SSN unless ``full``)."""
    import pandas as pd
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frames = [pd.DataFrame(read(name)).replace("", None) for name in files]
    api = DuckDBAPI()
    tables = [api.register(frame) for frame in frames]
    dedupe = len(files) == 1
    comparisons: list[Any] = [
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
    ]
    blocking: list[Any] = (
        [block_on("given_name"), block_on("surname"), block_on("postcode")]
        if dedupe
        else [
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ]
    )
    deterministic: list[Any] = [block_on("given_name", "surname", "postcode")]
    training: list[Any] = [block_on("surname"), block_on("postcode")]
    if full:
        comparisons += [
            cl.DateOfBirthComparison(
                "date_of_birth",
                input_is_string=True,
                datetime_format="%Y%m%d",
                invalid_dates_as_null=True,
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
        ]
        blocking += [block_on("soc_sec_id"), block_on("date_of_birth")]
        deterministic = [
            block_on("soc_sec_id"),
            block_on("given_name", "surname", "date_of_birth"),
        ]
        training = [block_on("date_of_birth"), block_on("postcode")]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="dedupe_only" if dedupe else "link_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=comparisons,
    )
    linker = Linker(tables[0] if dedupe else tables, settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=2)
    for rule in training:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    pairs = len(predictions.as_pandas_dataframe())  # type: ignore[no-untyped-call]
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=ReconcileConfig().link_threshold
    ).as_pandas_dataframe()  # type: ignore[no-untyped-call]
    found = dict(zip(clusters["rec_id"], clusters["cluster_id"], strict=True))
    expected = {rec_id: person(rec_id) for rec_id in found}
    return Plain(score(found, expected), pairs)
