"""Streaming options: Java/i2pd property names, units and validation."""

from __future__ import annotations

import pytest

from i2proxy.streaming.options import OptionError, StreamingOptions


def test_java_property_names_and_millisecond_units():
    options = StreamingOptions.from_properties(
        {
            "i2p.streaming.connectDelay": "500",
            "i2p.streaming.initialRTO": "9000",
            "i2p.streaming.maxWindowSize": "64",
            "i2p.streaming.inactivityAction": "1",
            "i2p.streaming.answerPings": "false",
            "i2proxy.streaming.preAck": "false",
            "inbound.length": "3",  # router options pass through untouched
        }
    )
    assert options.connect_delay == 0.5 and options.initial_rto == 9.0
    assert options.max_window_size == 64 and options.inactivity_action == "disconnect"
    assert not options.answer_pings and not options.pre_ack


def test_defaults_are_valid_and_documented_values():
    options = StreamingOptions().validate()
    assert (options.max_window_size, options.max_message_size, options.connect_delay) == (
        128,
        1812,
        0.2,
    )


@pytest.mark.parametrize(
    "properties",
    [
        {"i2p.streaming.noSuchOption": "1"},
        {"i2p.streaming.maxWindowSize": "many"},
        {"i2p.streaming.maxWindowSize": "0"},
        {"i2p.streaming.maxMessageSize": "100000"},
        {"i2p.streaming.inactivityAction": "explode"},
    ],
)
def test_bad_options_raise_option_error(properties):
    with pytest.raises(OptionError):
        StreamingOptions.from_properties(properties)
