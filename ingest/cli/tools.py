"""`trial-ingest keygen`, `synth` and `dictionary`: a new key, a synthetic trial, the data
dictionary."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_keygen(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keygen = commands.add_parser("keygen", help="print a new random key (pseudonym or landing)")
    keygen.set_defaults(handler=_keygen)


def add_synth(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    synth = commands.add_parser("synth", help="write a synthetic 12-LA trial (allocation + drops)")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--families", type=int, default=40, help="families per LA")
    synth.add_argument("--clean", action="store_true", help="no planted problems")
    synth.set_defaults(handler=_synth)


def add_dictionary(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dictionary = commands.add_parser("dictionary", help="write the data dictionary (Markdown)")
    dictionary.add_argument("--out", type=Path, default=Path("docs/DATA_DICTIONARY.md"))
    dictionary.set_defaults(handler=_dictionary)


def _keygen(_: argparse.Namespace) -> int:
    from pseudonymise.keys import new_key_text

    print("A new random key. Keep it secret: store it in a file readable only by the service")
    print("(TRIAL_PSEUDONYM_KEY_FILE / TRIAL_LANDING_KEY_FILE) or in your secret store.")
    print(new_key_text())
    return 0


def _synth(args: argparse.Namespace) -> int:
    from synthetic import generate_trial

    manifest = generate_trial(
        args.out, seed=args.seed, families_per_la=args.families, mess=not args.clean
    )
    print(
        f"Wrote a synthetic trial of {len(manifest.allocation)} LAs and "
        f"{len(manifest.files)} files to {args.out}"
    )
    print(f"Allocation: {args.out / 'allocation.csv'}; drops: {args.out / 'drop'}")
    return 0


def _dictionary(args: argparse.Namespace) -> int:
    from schemas.dictionary import render_dictionary

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_dictionary(), encoding="utf-8")
    print(f"Data dictionary written to {args.out}")
    return 0
