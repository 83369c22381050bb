"""The YAML loader: what loads, and where and how every kind of mistake is reported."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from textwrap import dedent
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from ruamel.yaml import YAML

from clm_metrics import METRICS
from config import (
    DEFAULT_CONFIG_PATH,
    AppConfig,
    ConfigError,
    CsvSource,
    config_json_schema,
    find_config_path,
    load_config,
)
from config.errors import ConfigProblem

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"
MINIMAL = """\
ledger: sqlite:///var/lib/clm-sync/ledger.db
sources:
  - name: exports
    type: csv
    path: ./exports
"""


def write(folder: Path, text: str, name: str = "clm-sync.yaml") -> Path:
    path = folder / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def problems(path: Path, environ: Mapping[str, str] | None = None) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


def only_problem(path: Path, environ: Mapping[str, str] | None = None) -> ConfigProblem:
    found = problems(path, environ)
    assert len(found) == 1, [str(problem) for problem in found]
    return found[0]


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {})

    source = config.sources[0]
    assert isinstance(source, CsvSource)
    assert (source.name, source.path) == ("exports", tmp_path / "exports")
    assert source.page_size == 1000
    assert source.schedule.interval is not None
    assert source.schedule.interval.total_seconds() == 3600
    assert source.push.enabled is False
    # three slashes: a path relative to the config file's folder, as SQLAlchemy reads it
    assert config.ledger == f"sqlite:///{tmp_path}/var/lib/clm-sync/ledger.db"
    assert (config.home_currency, config.logging.level) == ("USD", "INFO")


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's value (or the items of its list) is validated against."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) is dict:
        return []
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _undocumented(model: type[BaseModel], node: Any, where: str) -> list[str]:
    """Fields of ``model`` (recursively) that are not keys in the YAML mapping ``node``."""
    missing: list[str] = []
    for name, field in model.model_fields.items():
        if name not in node:
            missing.append(f"{where}{name}")
            continue
        value = node[name]
        for item in value if isinstance(value, list) else [value]:
            for sub in _models(field.annotation):
                tags = (
                    get_args(sub.model_fields["type"].annotation)
                    if "type" in sub.model_fields
                    else ()
                )
                if not tags or item.get("type") in tags:
                    missing += _undocumented(sub, item, f"{where}{name}.")
    return missing


def example_environment() -> dict[str, str]:
    """A value for every ${NAME} the example refers to outside comments."""
    lines = [line.split("#", 1)[0] for line in EXAMPLE.read_text(encoding="utf-8").splitlines()]
    return dict.fromkeys(re.findall(r"\$\{([A-Za-z_]\w*)\}", "\n".join(lines)), "example")


def test_example_loads_and_documents_every_key() -> None:
    config = load_config(EXAMPLE, example_environment())
    tree = YAML(typ="rt").load(EXAMPLE.read_text(encoding="utf-8"))

    assert any(isinstance(source, CsvSource) for source in config.sources)
    assert _undocumented(AppConfig, tree, "") == []
    used = {field.metric for source in config.sources for field in source.push.fields}
    assert used <= METRICS.keys()


def test_example_postgresql_line_takes_the_password_from_the_environment(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    (commented,) = [line for line in text.splitlines() if "${CLM_SYNC_DB_PASSWORD}" in line]
    active = next(line for line in text.splitlines() if line.startswith("ledger:"))
    path = tmp_path / "clm-sync.yaml"
    path.write_text(text.replace(active, commented.removeprefix("# ")), encoding="utf-8")

    config = load_config(path, example_environment() | {"CLM_SYNC_DB_PASSWORD": "pw-Zq81x"})

    assert config.ledger.startswith("postgresql://") and "pw-Zq81x" in config.ledger
    assert "pw-Zq81x" not in repr(config)
    assert "pw-Zq81x" not in str(config)


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    problem = only_problem(tmp_path / "nope.yaml")

    assert (problem.line, problem.column) == (None, None)
    assert "config/example.yaml" in problem.hint
    assert "CLM_SYNC_CONFIG" in problem.hint
    assert str(problem).startswith(f"{tmp_path / 'nope.yaml'}: ")


def test_bad_indentation_points_at_the_colon(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ledger: sqlite:///ledger.db
        sources:
          - name: exports
             type: csv
        """,
    )
    problem = only_problem(path)

    assert (problem.line, problem.column) == (4, 10)
    assert "spaces" in problem.hint
    assert str(problem).startswith(f"{path}:4:10: ")


@pytest.mark.parametrize(
    ("text", "line", "column", "hint"),
    [
        ("ledger: x\nsources:\n\t- name: a\n", 3, 1, "spaces"),
        ('ledger: "sqlite:///a.db\nsources: []\n', 3, 1, "closing quote"),
        ("ledger: x\nsources:\n  - name: a\n   type: csv\n", 4, 4, "indent"),
        ("ledger: x\nledger: y\n", 2, 1, "only one"),
    ],
    ids=["tab", "unclosed-quote", "misaligned-key", "duplicate-key"],
)
def test_yaml_syntax_errors_have_positions(
    tmp_path: Path, text: str, line: int, column: int, hint: str
) -> None:
    problem = only_problem(write(tmp_path, text))

    assert (problem.line, problem.column) == (line, column)
    assert hint in problem.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [("# nothing yet\n", "no settings"), ("- a\n- b\n", "must be a mapping")],
)
def test_empty_file_or_no_mapping_is_a_problem(tmp_path: Path, text: str, message: str) -> None:
    assert message in only_problem(write(tmp_path, text)).message


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    shedule:\n      every: 15m\n")
    problem = only_problem(path)

    assert (problem.line, problem.column) == (6, 5)
    assert "unknown key 'shedule'" in problem.message
    assert problem.hint == "did you mean 'schedule'?"


def test_unknown_key_without_a_close_match_lists_the_valid_ones(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, MINIMAL + "daemon:\n  zzz: 1\n"))

    assert (problem.line, problem.column) == (7, 3)
    assert "misfire_grace" in problem.hint


def test_wrong_type_says_what_is_expected(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, MINIMAL + "    page_size: many\n"))

    assert (problem.line, problem.column) == (6, 16)
    assert "expected a whole number" in problem.message
    assert "page_size: 1000" in problem.hint


def test_unknown_source_type_lists_the_known_types(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, MINIMAL.replace("type: csv", "type: quickbook")))

    assert (problem.line, problem.column) == (4, 11)
    assert "unknown source type 'quickbook'" in problem.message
    assert "csv" in problem.hint


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, MINIMAL.replace("    path: ./exports\n", "")))

    assert (problem.line, problem.column) == (3, 5)
    assert "missing key 'path'" in problem.message


def test_missing_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("sqlite:///var/lib/clm-sync/ledger.db", "${DB_URL}"))
    problem = only_problem(path, {"OTHER": "x"})

    assert (problem.line, problem.column) == (1, 9)
    assert "DB_URL" in problem.message
    assert "Environment=" in problem.hint and "${file:" in problem.hint


def test_a_failed_reference_is_reported_once(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, MINIMAL.replace("type: csv", "type: ${KIND}")))

    assert (problem.line, problem.column) == (4, 11)
    assert "KIND" in problem.message


def test_merge_keys_are_followed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace("  - name: exports", "  - &csv\n    name: exports")
        + "  - <<: *csv\n    name: second\n    page_size: 0\n",
    )
    problem = only_problem(path)

    assert (problem.line, problem.column) == (9, 16)
    assert "at least 1" in problem.message


def test_secrets_never_appear_in_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ledger: mysql://admin:${S_LEDGER}@db/clm
        sources:
          - name: ${S_NAME}
            type: csv
            path: ./a
          - name: c
            type: ${S_TYPE}
            path: ./c
          - name: b
            type: csv
            path: ./b
            page_size: ${S_PAGE}
            schedule:
              cron: "${S_CRON}"
        logging:
          level: ${S_LEVEL}
        home_currency: ${file:currency.txt}
        """,
    )
    (tmp_path / "currency.txt").write_text("S-file-7Hq\n", encoding="utf-8")
    secrets = {
        "S_LEDGER": "S-ledger-91x",
        "S_NAME": "S-Name-4kd",
        "S_TYPE": "S-type-0pq",
        "S_PAGE": "S-page-55z",
        "S_CRON": "S-cron-1 2 3",
        "S_LEVEL": "S-level-8w",
    }
    found = problems(path, secrets)

    assert len(found) == 7, [str(problem) for problem in found]
    shown = "\n".join(f"{problem}|{problem!r}" for problem in found)
    for secret in [*secrets.values(), "S-file-7Hq"]:
        assert secret not in shown


def test_duplicate_secret_names_are_reported_without_the_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace("name: exports", "name: ${N}")
        + "  - name: ${N}\n    type: csv\n    path: ./b\n",
    )
    problem = only_problem(path, {"N": "secretname"})

    assert (problem.line, problem.column) == (6, 11)
    assert "secretname" not in str(problem)


def test_file_references_and_literal_dollar_brace(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db-password").write_text("pw 1\n", encoding="utf-8")
    absolute = tmp_path / "user.txt"
    absolute.write_text("clm", encoding="utf-8")
    path = write(
        tmp_path,
        f"""\
        ledger: postgresql://${{file:{absolute}}}:${{file:secrets/db-password}}@db/clm
        sources:
          - name: exports
            type: csv
            path: ./exports
            date_format: "$${{HOME}} %d.%m.%Y"
            encoding: ${{ENC}}-8
        """,
    )
    config = load_config(path, {"ENC": "utf"})

    assert config.ledger == "postgresql://clm:pw 1@db/clm"
    assert isinstance(config.sources[0], CsvSource)
    assert config.sources[0].date_format == "${HOME} %d.%m.%Y"
    assert config.sources[0].encoding == "utf-8"


def test_unreadable_file_reference_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("./exports", "${file:missing.txt}"))
    problem = only_problem(path)

    assert (problem.line, problem.column) == (5, 11)
    assert str(tmp_path / "missing.txt") in problem.message


def test_relative_paths_start_at_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    write(
        folder,
        f"""\
        ledger: sqlite:///data/ledger.db
        sources:
          - name: relative
            type: csv
            path: exports
          - name: absolute
            type: csv
            path: {tmp_path}/elsewhere
        logging:
          file: log/clm-sync.log
        """,
    )
    monkeypatch.chdir(tmp_path)

    config = load_config(Path("etc/clm-sync.yaml"), {})

    assert config.ledger == f"sqlite:///{folder}/data/ledger.db"
    assert [source.path for source in config.sources if isinstance(source, CsvSource)] == [
        folder / "exports",
        tmp_path / "elsewhere",
    ]
    assert config.logging.file == folder / "log" / "clm-sync.log"


@pytest.mark.parametrize(
    "url", ["sqlite:////srv/clm/ledger.db", "postgresql://clm@db/clm", '"sqlite:///:memory:"']
)
def test_absolute_and_server_ledger_urls_are_unchanged(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, MINIMAL.replace("sqlite:///var/lib/clm-sync/ledger.db", url))

    assert load_config(path, {}).ledger == url.strip('"')


def test_duplicate_source_names_point_at_the_second_name(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  - type: csv\n    name: exports\n    path: ./b\n")
    problem = only_problem(path)

    assert (problem.line, problem.column) == (7, 11)
    assert "line 3" in problem.message and "'exports'" in problem.message


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ledger: ${MISSING}
        sources:
          - name: exports
            type: csv
            path: ./exports
            page_size: 0
            delimter: ";"
        home_currency: euro
        logging:
          level: LOUD
        """,
    )
    found = problems(path)

    assert [(problem.line, problem.column) for problem in found] == [
        (1, 9),
        (6, 16),
        (7, 5),
        (8, 16),
        (10, 10),
    ]
    assert all(problem.hint for problem in found)


def test_json_schema_is_usable_by_editors() -> None:
    schema = json.loads(json.dumps(config_json_schema()))

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "sources" in schema["properties"]
    assert {"ledger", "sources"} <= set(schema["required"])
    assert schema["title"]


def test_find_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLM_SYNC_CONFIG", raising=False)
    assert find_config_path(None) == DEFAULT_CONFIG_PATH == Path("clm-sync.yaml")
    monkeypatch.setenv("CLM_SYNC_CONFIG", "/etc/clm-sync/site.yaml")
    assert find_config_path(None) == Path("/etc/clm-sync/site.yaml")
    assert find_config_path(Path("given.yaml")) == Path("given.yaml")
