"""Log lines are structured and carry the request id of the request they belong to."""

from __future__ import annotations

import json
import logging

import pytest

from gateway_core.logging import configure_logging, request_id_var


def test_json_lines_carry_request_id_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    token = request_id_var.set("req_abc")
    try:
        logging.getLogger("pmp.test").info("served", extra={"status": 200})
    finally:
        request_id_var.reset(token)
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["msg"] == "served"
    assert entry["request_id"] == "req_abc"
    assert entry["status"] == 200
    assert entry["level"] == "info"


def test_text_lines_end_with_key_value_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "INFO")
    logging.getLogger("pmp.test").warning("slow", extra={"duration_ms": 12.5})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "WARNING" in line
    assert line.endswith("slow duration_ms=12.5")
