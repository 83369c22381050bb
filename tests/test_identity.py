"""Identity resolution pieces: features, the chaining guard, the model on hand-made pairs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.models import AppConfig
from sync.identity import model
from sync.identity.clusters import MODEL, SAME_EMAIL, Link, cluster
from sync.identity.features import CustomerInput, company_key, features, person_names


def test_features_fold_names_nicknames_companies_and_free_mail() -> None:
    row = features(
        CustomerInput(
            1,
            first_name="Bob",
            last_name="O'Neil",
            company="The Acme Widgets Ltd.",
            email="bob.oneil@gmail.com",
            phone="+14155550101",
            address_line1="12 Main Street",
            postcode="94 110",
        )
    )
    assert (row["first_name"], row["last_name"], row["first_canonical"]) == (
        "bob",
        "o neil",
        "robert",
    )
    assert row["company"] == "acme widgets"
    assert row["email_domain"] is None
    assert (row["phone_last7"], row["street_number"], row["street"]) == ("5550101", "12", "main st")
    assert row["postcode"] == "94110"
    office = features(CustomerInput(2, email="info@acme.com"))
    assert office["email_domain"] == "acme.com"


def test_full_names_are_parsed_and_company_records_have_no_person() -> None:
    assert person_names(CustomerInput(1, name="Dr. Jane Q. Doe")) == ("jane", "doe")
    assert person_names(CustomerInput(2, name="Acme Inc", company="ACME, Inc.")) == (None, None)
    assert company_key("Smith & Sons LLC") == "smith sons"


def test_one_weak_pair_does_not_join_two_clusters() -> None:
    links = [
        Link(1, 2, 1.0, "same email", SAME_EMAIL),
        Link(3, 4, 1.0, "same email", SAME_EMAIL),
        Link(2, 3, 0.97, "model 0.970"),
        Link(4, 5, 0.97, "model 0.970"),
    ]
    result = cluster(range(1, 6), links, [], guard_probability=0.999)
    groups = sorted(sorted(members) for members in result.groups.values())
    assert groups == [[1, 2], [3, 4, 5]]
    assert [(link.left, link.right) for link, _ in result.held_back] == [(2, 3)]
    # A strong pair may join them.
    strong = [*links, Link(1, 4, 0.9999, "model 1.000", MODEL)]
    joined = cluster(range(1, 6), strong, [], guard_probability=0.999)
    assert sorted(sorted(m) for m in joined.groups.values()) == [[1, 2, 3, 4, 5]]


def test_never_merge_holds_records_apart_even_through_other_links() -> None:
    links = [Link(1, 2, 1.0, "same email", SAME_EMAIL), Link(2, 3, 1.0, "same email", SAME_EMAIL)]
    result = cluster([1, 2, 3], links, [(1, 3)], guard_probability=0.999)
    groups = sorted(sorted(members) for members in result.groups.values())
    assert groups == [[1, 2], [3]]
    assert result.held_back[0][1] == "never-merge rule"


def test_a_shared_common_name_alone_does_not_link() -> None:
    frame = model.features_frame(
        [
            features(
                CustomerInput(
                    i,
                    first_name="John",
                    last_name="Smith",
                    email=f"john{i}@example.org",
                    phone=f"+1415555{i:04d}",
                    address_line1=f"{i} Oak Street",
                    postcode=f"{10000 + i * 7}",
                )
            )
            for i in range(1, 40)
        ]
    )
    scored = model.score_all(frame, model.default_settings(), 0.01)
    assert scored.pairs.empty
    why = model.explain(frame, model.default_settings(), 1, 2)
    assert why.match_probability < 0.01
    levels = {c.comparison: c.level for c in why.contributions}
    assert levels["first_name"] == levels["last_name"] == "exact"


def test_explain_weights_add_up_to_the_probability() -> None:
    frame = model.features_frame(
        [
            features(
                CustomerInput(
                    1,
                    first_name="Katherine",
                    last_name="Moreno",
                    address_line1="17 Elm Road",
                    postcode="30301",
                )
            ),
            features(
                CustomerInput(
                    2,
                    first_name="Kate",
                    last_name="Morenno",
                    address_line1="17 Elm Rd",
                    postcode="30301",
                )
            ),
        ]
    )
    why = model.explain(frame, model.default_settings(), 1, 2)
    total = why.prior_weight + sum(c.match_weight for c in why.contributions)
    assert math.isclose(total, why.match_weight, abs_tol=1e-6)
    assert math.isclose(2**total / (1 + 2**total), why.match_probability, rel_tol=1e-9)
    levels = {c.comparison: c.level for c in why.contributions}
    assert levels["first_name"] == "nickname"
    assert levels["last_name"] == "Jaro-Winkler >= 0.92"
    assert levels["address"] == "same street, number and postcode"
    assert why.match_probability > 0.95


def test_a_household_is_two_people_however_strong_the_address() -> None:
    home = {"last_name": "Snyder", "address_line1": "4438 Broad Way", "postcode": "97298"}
    frame = model.features_frame(
        [
            features(CustomerInput(1, first_name="Christina", email="cs@att.net", **home)),
            features(CustomerInput(2, first_name="Anthony", email="anthony@live.com", **home)),
            features(CustomerInput(3, first_name="Tina", email="tina.s@att.net", **home)),
        ]
    )
    pairs = model.score_all(frame, model.default_settings(), 0.0).pairs
    flags = {
        (a, b): two
        for a, b, two in pairs[["unique_id_l", "unique_id_r", "two_people"]].itertuples(index=False)
    }
    assert flags[1, 2] and flags[2, 3]
    assert not flags[1, 3], "Tina may be Christina: a nickname is no evidence of two people"
    assert model.explain(frame, model.default_settings(), 1, 2).two_people


def test_revenue_authority_must_name_a_source(tmp_path: Path) -> None:
    source = {"type": "csv", "name": "shop", "path": str(tmp_path)}
    config = {"ledger": "sqlite:///x.db", "sources": [source]}
    assert AppConfig.model_validate({**config, "reconcile": {"revenue_authority": "shop"}})
    with pytest.raises(ValidationError, match="'books' is not a source; use one of shop"):
        AppConfig.model_validate({**config, "reconcile": {"revenue_authority": "books"}})
    with pytest.raises(ValidationError, match="SOURCE_NAME:EXTERNAL_ID"):
        AppConfig.model_validate({**config, "reconcile": {"never_merge": [["shop1", "shop:2"]]}})
