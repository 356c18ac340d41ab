import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sip import mutations

from voiceagent.telephony.twilio import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaStreamError,
    Start,
    Stop,
    clear_message,
    encode,
    mark_message,
    media_message,
    parse,
)

FUZZ = settings(max_examples=200, deadline=None)

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
# A bidirectional <Connect><Stream> call as Twilio's docs show it, message by message.
CALL = [
    '{"event": "connected", "protocol": "Call", "version": "1.0.0"}',
    '{"event": "start", "sequenceNumber": "1", "start": {"accountSid": "AC00000000000000000000000000000000", '
    '"streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0", "callSid": "CA00000000000000000000000000000000", '
    '"tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}, '
    '"customParameters": {"FirstName": "Jane", "order": "1042"}}, "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0"}',
    '{"event": "media", "sequenceNumber": "3", "media": {"track": "inbound", "chunk": "1", "timestamp": "5", '
    '"payload": "/37+/f7+/v7+/v7+fv7+fv5+fn5+"}, "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0"}',
    '{"event": "dtmf", "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0", "sequenceNumber": "5", '
    '"dtmf": {"track": "inbound_track", "digit": "1"}}',
    '{"event": "mark", "sequenceNumber": "4", "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0", '
    '"mark": {"name": "reply-3"}}',
    '{"event": "stop", "sequenceNumber": "5", "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0", '
    '"stop": {"accountSid": "AC00000000000000000000000000000000", "callSid": "CA00000000000000000000000000000000"}}',
]


def test_a_call():
    messages = [parse(text) for text in CALL]
    assert messages == [
        Connected("Call", "1.0.0"),
        Start(
            STREAM,
            "CA00000000000000000000000000000000",
            "audio/x-mulaw",
            8000,
            1,
            {"FirstName": "Jane", "order": "1042"},
        ),
        Media(base64.b64decode("/37+/f7+/v7+/v7+fv7+fv5+fn5+"), "inbound", 1, 5),
        Dtmf("1"),
        Mark("reply-3"),
        Stop(),
    ]
    assert parse(CALL[2].encode()) == messages[2]  # bytes as a WebSocket library may hand them over


def test_inbound_round_trip():
    for text in CALL:
        message = parse(text)
        assert parse(encode(message, STREAM)) == message
    assert json.loads(encode(Media(b"\xff\x7f"), STREAM)) == {
        "event": "media",
        "media": {"track": "inbound", "chunk": "0", "timestamp": "0", "payload": "/38="},
        "streamSid": STREAM,
    }


def test_outbound_messages():
    assert media_message(STREAM, b"\xff\x7f\x00") == (
        '{"event": "media", "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0", "media": {"payload": "/38A"}}'
    )
    assert json.loads(mark_message(STREAM, "reply-3")) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "reply-3"},
    }
    assert json.loads(clear_message(STREAM)) == {"event": "clear", "streamSid": STREAM}


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "'event'"),
        ('{"event": 7}', "'event'"),
        ('{"event": "transcription"}', "unknown Media Streams event 'transcription'"),
        ('{"event": "start"}', "'start'"),
        ('{"event": "start", "start": []}', "'start'"),
        (_replace(CALL[1], '"callSid"', '"callsid"'), "'callSid'"),
        (_replace(CALL[1], '"sampleRate": 8000', '"sampleRate": "8000"'), "'sampleRate'"),
        (_replace(CALL[1], '"channels": 1', '"channels": true'), "'channels'"),
        (_replace(CALL[1], '{"FirstName": "Jane", "order": "1042"}', '"Jane"'), "customParameters"),
        (_replace(CALL[2], "/37+/f7+/v7+/v7+fv7+fv5+fn5+", "not base64!"), "not base64"),
        (_replace(CALL[2], "/37+/f7+/v7+/v7+fv7+fv5+fn5+", "/37"), "not base64"),
        (_replace(CALL[2], "/37+/f7+/v7+/v7+fv7+fv5+fn5+", "/37+\u00e9"), "not base64"),
        (_replace(CALL[2], '"chunk": "1"', '"chunk": "one"'), "not a count"),
        (_replace(CALL[2], '"timestamp": "5", ', ""), "'timestamp'"),
        (_replace(CALL[2], '"track": "inbound", ', ""), "'track'"),
        (_replace(CALL[3], '"digit": "1"', '"digit": 1'), "'digit'"),
        (_replace(CALL[4], '{"name": "reply-3"}', "null"), "'mark'"),
        ("[" * 100000, "not JSON"),
        (b'{"event": "\xff"}', "not JSON"),
    ],
)
def test_invalid_messages(text, reason):
    with pytest.raises(MediaStreamError, match=reason):
        parse(text)


def _check(data: bytes) -> None:
    try:
        message = parse(data)
    except MediaStreamError:
        return
    assert parse(encode(message, STREAM)) == message


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data):
    _check(data)


@FUZZ
@given(mutations([text.encode() for text in CALL]))
def test_mutated_messages(data):
    _check(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(st.integers(0, len(CALL) - 1), st.data())
def test_fields_of_the_wrong_type(index, data):
    """Any field of a real message replaced by any JSON value, or removed."""
    message = json.loads(CALL[index])
    parent = message
    while True:
        key = data.draw(st.sampled_from(sorted(parent)))
        if not isinstance(parent[key], dict) or not parent[key] or data.draw(st.booleans()):
            break
        parent = parent[key]
    if data.draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = data.draw(JSON)
    _check(json.dumps(message).encode())
