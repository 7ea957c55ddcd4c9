"""Pseudonymisation: everything that turns raw LA identifiers into something safe to store.

Pure functions and small classes with no Dagster and no pandas, so the pipeline, the LA
pre-flight checker and the tests all run exactly the same code:

- `identifiers`: normalisation and check algorithms (NHS number, UPN, postcode);
- `la_code`: the three-digit LA code, checked one way everywhere;
- `tokens`: the keyed HMAC tokeniser;
- `coarsen`: dates to the month, postcodes to the outward code;
- `keys`: the trial keys and where they come from;
- `landing_crypto`: authenticated encryption of raw files at rest.

Nothing in this package puts a key, key text or identifier value into an exception message.
"""
