import json

from i2proxy import log


def test_json_logging_writes_one_json_object_per_event(capsys):
    log.configure(json=True, level="info")
    log.get_logger("t").info("router_connected", port=7654)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["event"] == "router_connected"
    assert event["port"] == 7654
    assert event["level"] == "info"


def test_level_filters_out_debug(capsys):
    log.configure(json=True, level="warning")
    log.get_logger("t").info("hidden")
    assert "hidden" not in capsys.readouterr().err
