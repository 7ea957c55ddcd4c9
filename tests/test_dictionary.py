from pathlib import Path

from schemas.datasets import DATASETS
from schemas.dictionary import render_dictionary

DICTIONARY = Path(__file__).resolve().parent.parent / "docs" / "DATA_DICTIONARY.md"


def test_committed_dictionary_matches_the_declarations() -> None:
    assert DICTIONARY.read_text(encoding="utf-8") == render_dictionary(), (
        "docs/DATA_DICTIONARY.md is out of date: run `make dictionary`"
    )


def test_dictionary_lists_every_field_of_every_dataset() -> None:
    text = render_dictionary()
    for dataset in DATASETS.values():
        assert f"## `{dataset.name}`" in text
        for field in dataset.fields:
            assert f"| `{field.name}` |" in text


def test_dropped_fields_have_no_warehouse_column() -> None:
    text = render_dictionary()
    line = next(row for row in text.splitlines() if row.startswith("| `first_name` |"))
    assert line.rstrip().endswith("|  |")
    assert "never stored" in line
