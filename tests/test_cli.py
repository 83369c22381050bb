"""The command line as an admin meets it: config errors, the demo, docs that match the code."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clm_metrics import METRICS
from tests.conftest import ROOT, clm_sync

BROKEN_CONFIGS = {
    "bad indentation": (
        "ledger: sqlite:///ledger.db\nsources:\n  - name: exports\n    type: csv\n"
        "   path: ./exports\n",
        r"clm-sync\.yaml:5:\d+: .*",
    ),
    "unknown key": (
        "ledger: sqlite:///ledger.db\nsources:\n  - name: exports\n    type: csv\n"
        "    path: ./exports\n    shedule:\n      every: 1h\n",
        r"clm-sync\.yaml:6:5: unknown key 'shedule'.*did you mean 'schedule'",
    ),
    "wrong type": (
        "ledger: sqlite:///ledger.db\nsources:\n  - name: exports\n    type: csv\n"
        "    path: ./exports\n    page_size: many\n",
        r"clm-sync\.yaml:6:16: .*page_size.*",
    ),
    "missing environment variable": (
        "ledger: postgresql://clm:${CLM_TEST_SURELY_UNSET}@db/clm\nsources:\n"
        "  - name: exports\n    type: csv\n    path: ./exports\n",
        r"clm-sync\.yaml:1:9: .*CLM_TEST_SURELY_UNSET.*export",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CONFIGS))
@pytest.mark.parametrize("command", ["validate-config", "once"])
def test_broken_yaml_exits_2_with_position_and_fix_and_writes_nothing(
    tmp_path: Path, case: str, command: str
) -> None:
    text, expected = BROKEN_CONFIGS[case]
    config = tmp_path / "clm-sync.yaml"
    config.write_text(text, encoding="utf-8")
    (tmp_path / "exports").mkdir()

    result = clm_sync(command, "--config", str(config))

    assert result.returncode == 2, result.stderr
    assert re.search(expected, result.stderr), result.stderr
    problems = [line for line in result.stderr.splitlines() if "clm-sync.yaml:" in line]
    assert len(problems) == 1, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clm-sync.yaml", "exports"]
    assert not any((tmp_path / "exports").iterdir())


def test_valid_config_exits_0_and_unknown_metric_in_push_mapping_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "clm-sync.yaml"
    base = "ledger: sqlite:///ledger.db\nsources:\n  - name: exports\n    type: csv\n    path: .\n"
    config.write_text(base, encoding="utf-8")
    assert clm_sync("validate-config", "--config", str(config)).returncode == 0
    config.write_text(
        base + "    push:\n      fields:\n        - {metric: net_revenu, field: Revenue}\n",
        encoding="utf-8",
    )
    result = clm_sync("validate-config", "--config", str(config))
    assert result.returncode == 2
    assert "did you mean 'net_revenue'" in result.stderr


def test_config_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "validate-config"],
        capture_output=True,
        text=True,
        env={"CLM_SYNC_CONFIG": str(missing), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr


def test_demo_keep_leaves_a_business_the_other_commands_work_on(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    demo = clm_sync("demo", "--keep", str(folder), "--customers", "60")
    assert demo.returncode == 0, demo.stderr
    assert "The business really has 60 people" in demo.stdout
    config = folder / "clm-sync.yaml"
    assert (folder / "ledger.db").is_file() and config.is_file()

    status = clm_sync("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert "Source shop-exports" in status.stdout

    out = tmp_path / "customers.csv"
    assert clm_sync("export", "customers", "-c", str(config), "--out", str(out)).returncode == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 60 <= len(rows) <= 80
    assert sum(int(row["orders"]) for row in rows) > 60

    dry = clm_sync("push", "--dry-run", "-c", str(config))
    assert dry.returncode == 0, dry.stderr
    assert "Nothing to push" in dry.stdout


def test_installed_command_is_the_same_as_python_daemon_py() -> None:
    installed = Path(sys.executable).parent / "clm-sync"
    assert installed.exists(), "pip install did not create the clm-sync command"
    via_script = subprocess.run(
        [str(installed), "--help"], capture_output=True, text=True, check=False
    )
    via_file = clm_sync("--help")
    assert via_script.returncode == via_file.returncode == 0
    assert "validate-config" in via_script.stdout and "validate-config" in via_file.stdout


def test_config_schema_is_json_schema_of_the_file() -> None:
    result = clm_sync("config-schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"ledger", "sources"} <= set(schema["properties"])


def test_generate_key_prints_a_usable_fernet_key() -> None:
    from cryptography.fernet import Fernet

    key = clm_sync("generate-key").stdout.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_readme_holds_both_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"<!-- (demo|test)-command -->\n```sh\n(.+)\n```", readme)
    assert dict(commands) == {
        "demo": "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/clm-sync demo",
        "test": "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest",
    }
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci


def test_docs_list_every_metric() -> None:
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(\w+)` \|", page, flags=re.MULTILINE)
    assert listed == list(METRICS)


@pytest.mark.parametrize(
    ("command", "source", "expected"),
    [
        ("auth", "exports", "source 'exports' (csv) needs no authorization"),
        ("setup", "csv", "source 'exports' (csv) needs no setup"),
        ("auth", "quickbooks", "no source named 'quickbooks' in the config; the sources are: "),
    ],
)
def test_auth_and_setup_name_the_source_and_say_when_there_is_nothing_to_do(
    tmp_path: Path, command: str, source: str, expected: str
) -> None:
    (tmp_path / "exports").mkdir()
    config = tmp_path / "clm-sync.yaml"
    config.write_text(
        "ledger: sqlite:///ledger.db\nsources:\n  - {name: exports, type: csv, path: ./exports}\n",
        encoding="utf-8",
    )

    result = clm_sync(command, source, "--config", str(config))

    assert result.returncode == 2, result.stderr
    assert expected in " ".join(result.stderr.split()), result.stderr
