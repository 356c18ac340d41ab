"""SIP digest authentication on the real UDP endpoint: no credentials or wrong ones get 401 with a challenge,
the right answer to the challenge gets past it (here to the call limit of 0: 486)."""

import asyncio
import hashlib
import re
import socket

from voiceagent.telephony import sip, sip_server
from voiceagent.telephony.digest import DigestAuth
from voiceagent.telephony.server import TelephonyServer

OFFER = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def invite(port: int, call_id: str, authorization: str | None = None) -> bytes:
    fields = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK" + call_id),
        ("From", "<sip:caller@127.0.0.1>;tag=1"),
        ("To", f"<sip:agent@127.0.0.1:{port}>"),
        ("Call-ID", call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:caller@127.0.0.1:5999>"),
        ("Content-Type", "application/sdp"),
    ]
    if authorization:
        fields.append(("Authorization", authorization))
    return sip.serialize(sip.SipMessage(method="INVITE", uri=f"sip:agent@127.0.0.1:{port}", fields=fields, body=OFFER))


def answer(challenge: str, password: str, uri: str) -> str:
    nonce = re.search(r'nonce="([^"]+)"', challenge)[1]
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = md5(f"alice:voiceagent:{password}"), md5(f"INVITE:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:abc:auth:{ha2}")
    return (
        f'Digest username="alice", realm="voiceagent", nonce="{nonce}", uri="{uri}", response="{response}", '
        'qop=auth, nc=00000001, cnonce="abc", algorithm=MD5'
    )


def test_digest_authentication():
    async def run() -> list[int]:
        server = TelephonyServer(engine=None, max_calls=0)
        close = await sip_server.start(server, "127.0.0.1", 0, user="alice", password="s3cret")
        port = server.bound["sip"][1]
        uri = f"sip:agent@127.0.0.1:{port}"
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        loop = asyncio.get_running_loop()

        async def ask(data: bytes) -> sip.SipMessage:
            client.sendto(data, ("127.0.0.1", port))
            return sip.parse(await asyncio.wait_for(loop.sock_recv(client, 65536), 2))

        statuses = []
        challenged = await ask(invite(port, "a"))
        statuses.append(challenged.status)
        wrong = await ask(invite(port, "b", answer(challenged.header("WWW-Authenticate"), "guess", uri)))
        statuses.append(wrong.status)
        right = await ask(invite(port, "c", answer(wrong.header("WWW-Authenticate"), "s3cret", uri)))
        statuses.append(right.status)
        client.close()
        await close()
        return statuses

    assert asyncio.run(run()) == [401, 401, 486]


def test_a_nonce_not_ours_is_refused():
    auth = DigestAuth("alice", "s3cret")
    auth.challenge()
    forged = 'Digest username="alice", realm="voiceagent", nonce="0000", uri="sip:a", response="x"'
    assert not auth.check("INVITE", forged)
    assert not auth.check("INVITE", None) and not auth.check("INVITE", "Basic abc")
