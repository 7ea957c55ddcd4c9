"""The data-quality report: great-expectations over the clean tables, counts only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import (
    AssetSpec,
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    evaluate_automation_conditions,
    materialize,
)

from ingest.assets.quality import QUALITY_KEY, build_quality_report
from ingest.cli import main
from ingest.jobs import clean_asset_key
from ingest.quality import (
    QualityReport,
    quality_report,
    render_quality_markdown,
    suite_specs,
)
from ingest.resources import ServiceSettings, WarehouseResource
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.datasets import DATASETS
from tests.warehouse_returns import load_csv_return

LA = "901"
TOKENISER = Tokeniser(parse_key_text(new_key_text()))
PEOPLE = (
    "person_id,family_id,role,date_of_birth,sex\n"
    "P1,F1,PARENT_CARER,1985-03-04,F\n"
    "P2,F1,CHILD,2014-06-10,M\n"
    "P3,F1,CHILD,2019-01-20,F\n"
)
SCORE15 = (
    "response_id,family_id,person_id,completed_date,time_point,item_01\n"
    "R1,F1,P1,2025-01-10,BASELINE,3\n"
    "R2,F2,P9,2025-01-10,BASELINE,4\n"  # family and person unknown to people
)


def _load(warehouse: Warehouse, dataset: str, content: str, serial: int) -> None:
    load_csv_return(warehouse, dataset, content, serial, la_code=LA, tokeniser=TOKENISER)


def _plant_failures(engine: sa.Engine) -> None:
    """An item score out of range, and a person's row twice (a duplicated key token).

    Planted in `history`, which holds the current returns that the `clean` views show."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE history.score15 SET item_01 = 9 WHERE row_number = 2"))
        conn.execute(
            sa.text("INSERT INTO history.people SELECT * FROM history.people WHERE row_number = 3")
        )


def _tokens(engine: sa.Engine) -> set[str]:
    found: set[str] = set()
    with engine.connect() as conn:
        for name, dataset in DATASETS.items():
            columns = [
                f.stored_name for f in dataset.stored_fields if f.stored_name.endswith("_token")
            ]
            for column in columns:
                query = sa.text(f"SELECT {column} FROM clean.{name} WHERE {column} IS NOT NULL")  # noqa: S608
                found |= {str(v) for (v,) in conn.execute(query)}
    return found


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    home = tmp_path_factory.mktemp("quality")
    allocation = home / "allocation.csv"
    allocation.write_text("la_code,la_name,arm,randomised_on\n901,Test LA,SYSTEMIC,2024-07-01\n")
    warehouse = Warehouse(duckdb_url(home / "warehouse.duckdb"))
    warehouse.create_schema()
    warehouse.load_allocation(allocation)
    _load(warehouse, "people", PEOPLE, 1)
    _load(warehouse, "score15", SCORE15, 2)
    _plant_failures(warehouse.engine)
    return warehouse


@pytest.fixture(scope="module")
def report(warehouse: Warehouse) -> QualityReport:
    return quality_report(warehouse)


def _failed(report: QualityReport) -> dict[tuple[str, str, str], int | None]:
    return {
        (v.dataset, o.expectation, o.column): o.unexpected_count
        for v in report.validations
        for o in v.outcomes
        if not o.success
    }


def test_planted_failures_are_counted_and_nothing_else_fails(report: QualityReport) -> None:
    assert _failed(report) == {
        ("score15", "expect_column_values_to_be_between", "item_01"): 1,
        ("people", "expect_compound_columns_to_be_unique", "la_code,person_token"): 2,
    }
    assert report.failed == 2
    assert report.evaluated == sum(
        len(suite_specs(DATASETS[d], [LA])) for d in ("people", "score15")
    )
    assert report.per_dataset()["people"] == {"rows": 4, "evaluated": 15, "failed": 1}


def test_failures_are_broken_down_by_la(report: QualityReport) -> None:
    score15 = next(v for v in report.validations if v.dataset == "score15")
    [la] = score15.by_la
    assert la.la_code == LA and [o.unexpected_count for o in la.outcomes] == [1]


def test_cross_checks_and_rejections_are_in_the_report(report: QualityReport) -> None:
    rules = {(f.finding.dataset, f.finding.rule) for f in report.cross_checks}
    assert ("score15", "orphan_person_id") in rules
    markdown = render_quality_markdown(report)
    assert "`orphan_person_id`" in markdown
    assert (
        "| `score15` | 901 | `expect_column_values_to_be_between` | `item_01` | 1 | 50.0 | 2 |"
        in markdown
    )


def test_no_token_in_the_markdown_or_the_report(
    warehouse: Warehouse, report: QualityReport
) -> None:
    tokens = _tokens(warehouse.engine)
    assert tokens
    rendered = render_quality_markdown(report) + repr(report)
    assert not re.search(r"[0-9a-f]{32}", rendered)
    assert not any(token in rendered for token in tokens)


def test_one_la_only(warehouse: Warehouse) -> None:
    report = quality_report(warehouse.engine, la_code="902")
    assert report.validations == () and report.la_codes == ("902",)


def test_asset_writes_the_report_with_counts_only_metadata(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    asset = build_quality_report("duckdb")
    url = warehouse.engine.url.render_as_string(hide_password=False)
    result = materialize([asset], resources=_resources(url, quality_dir=str(tmp_path)))
    [event] = result.asset_materializations_for_node(asset.node_def.name)
    assert event.asset_key == QUALITY_KEY
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["expectations_failed"] == 2
    written = (tmp_path / "quality_report.md").read_text()
    assert metadata["dagster/uri"] == (tmp_path / "quality_report.md").as_uri()
    assert not any(token in written + repr(metadata) for token in _tokens(warehouse.engine))


def test_cli_writes_the_report(
    warehouse: Warehouse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = warehouse.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("TRIAL_WAREHOUSE_URL", url)
    out = tmp_path / "report.md"
    assert main(["quality", "--out", str(out)]) == 0
    assert "2 failed" in capsys.readouterr().out
    assert out.read_text().startswith("# Data-quality report")


def _resources(warehouse_url: str, quality_dir: str = "") -> dict[str, object]:
    settings = ServiceSettings(trial_warehouse_url=warehouse_url, trial_quality_dir=quality_dir)
    return {"settings": settings, "warehouse": WarehouseResource(settings=settings)}


def _module_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "module", ["ingest/quality.py", "ingest/assets/quality.py", "ingest/definitions.py"]
)
def test_great_expectations_is_imported_only_when_a_report_is_made(module: str) -> None:
    # It takes seconds to import: loading the code location must not pay for it.
    imports = _module_level_imports(Path(__file__).parent.parent / module)
    assert not any(name.split(".")[0] == "great_expectations" for name in imports)


def test_the_report_refreshes_once_after_any_clean_partition_updates() -> None:
    las = StaticPartitionsDefinition(["901", "902"])

    @asset(key=clean_asset_key("people"), partitions_def=las)
    def people() -> None: ...

    others = [AssetSpec(clean_asset_key(n), partitions_def=las) for n in DATASETS if n != "people"]
    defs = Definitions(
        assets=[people, build_quality_report("duckdb"), *others],
        resources=_resources("duckdb:///:memory:"),
    )
    instance = DagsterInstance.ephemeral()
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.get_num_requested(QUALITY_KEY) == 0  # other LAs' datasets missing: no wait
    materialize([people], instance=instance, partition_key="901")
    updated = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert updated.get_num_requested(QUALITY_KEY) == 1
    again = evaluate_automation_conditions(defs=defs, instance=instance, cursor=updated.cursor)
    assert again.get_num_requested(QUALITY_KEY) == 0
