"""Coarseners for quasi-identifiers (spec: "Coarsened fields").

A full date of birth plus a postcode is enough to single out most people; the month and the
postcode district keep what the trial's analysis needs (ages, broad area) without that.
"""

from __future__ import annotations

import polars as pl

from pseudonymise.identifiers import postcode_outward_expr


def month_start_expr(expr: pl.Expr) -> pl.Expr:
    """A `pl.Date` column moved to the first day of its month; null stays null."""
    return expr.dt.month_start()


def postcode_district_expr(expr: pl.Expr) -> pl.Expr:
    """The postcode district (outward code) of a postcode column; invalid or missing -> null.

    The same function as `postcode_outward_expr`, named for what the warehouse stores.
    """
    return postcode_outward_expr(expr)
