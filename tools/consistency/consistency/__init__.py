"""The consistency checker: tracking's entries against reporting's read model and invoicing's lines.

    python -m consistency [--settle-seconds N] [--json]

See cli.py for the options and docs/operations.md for what each difference means.
"""
