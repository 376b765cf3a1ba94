"""`earshot sensor ...` run in-process for the client tests."""

from __future__ import annotations

import pytest

from ingest import client_cli


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `earshot sensor <args>` in this process (the
    subprocess form is tested once, for upload): saves a Python start and the first-call
    warm-up of librosa per invocation."""
    capsys.readouterr()
    try:
        client_cli.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
