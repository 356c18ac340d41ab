"""The SIP user agent's dialogs on its real UDP sockets, the speech stages replaced by tones (tests/test_session.py's
fakes), so the signalling is tested quickly and exactly: answer and ACK, hold and resume by re-INVITE, a hand-off
by REFER (202, NOTIFY, then the agent's BYE), BYE from the caller, CANCEL while ringing, a retransmitted INVITE."""

import asyncio
import socket

import numpy as np
import pytest
from test_session import PHRASES, ToneASR, ToneVoice, tone

from voiceagent.audio import Audio
from voiceagent.components.vad import create_vad
from voiceagent.conversation.session import Engine
from voiceagent.dialogue.agent import Agent
from voiceagent.dialogue.domain import load_domain
from voiceagent.g711 import MULAW
from voiceagent.telephony import sdp, sip, sip_server
from voiceagent.telephony.rtp import RtpPacket, RtpSender
from voiceagent.telephony.server import TelephonyServer


class Phone:
    """A SIP caller on two UDP sockets (signalling and media) of its own."""

    def __init__(self, agent_port: int):
        self.agent = ("127.0.0.1", agent_port)
        self.sip = self._socket()
        self.rtp = self._socket()
        self.port, self.rtp_port = self.sip.getsockname()[1], self.rtp.getsockname()[1]
        self.cseq = 0
        self.to = f"<sip:agent@127.0.0.1:{agent_port}>"
        self.call_id = f"call-{self.port}"
        self.sender = RtpSender(0)
        self.agent_media: tuple[str, int] | None = None

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        return s

    def offer(self, direction: str = "sendrecv") -> bytes:
        return (
            f"v=0\r\no=phone 1 {self.cseq} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
        ).encode()

    def request(self, method: str, body: bytes = b"", cseq: int | None = None) -> sip.SipMessage:
        if cseq is None:
            self.cseq += 1
        fields = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={sip.new_branch()}"),
            ("From", f"<sip:phone@127.0.0.1:{self.port}>;tag=phone"),
            ("To", self.to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq or self.cseq} {method}"),
            ("Contact", f"<sip:phone@127.0.0.1:{self.port}>"),
        ]
        if body:
            fields.append(("Content-Type", "application/sdp"))
        message = sip.SipMessage(
            method=method, uri=f"sip:agent@{self.agent[0]}:{self.agent[1]}", fields=fields, body=body
        )
        self.sip.sendto(sip.serialize(message), self.agent)
        return message

    async def receive(self, timeout: float = 5.0) -> sip.SipMessage:
        loop = asyncio.get_running_loop()
        return sip.parse(await asyncio.wait_for(loop.sock_recv(self.sip, 65536), timeout))

    async def final(self) -> sip.SipMessage:
        """The next final response (provisional ones skipped)."""
        while (message := await self.receive()).status and message.status < 200:
            pass
        return message

    def reply(self, request: sip.SipMessage, status: int, reason: str) -> None:
        self.sip.sendto(sip.serialize(sip.response_to(request, status, reason)), self.agent)

    async def call(self) -> sip.SipMessage:
        self.request("INVITE", self.offer())
        ok = await self.final()
        assert ok.status == 200
        self.to = ok.header("To")
        audio = sdp.parse(ok.body).audio
        self.agent_media = (audio.address, audio.port)
        self.request("ACK", cseq=self.cseq)
        return ok

    async def packets(self, seconds: float) -> list[RtpPacket]:
        """The agent's RTP over ``seconds`` (while sending it silence, as a phone does)."""
        loop, got = asyncio.get_running_loop(), []
        end = loop.time() + seconds
        while loop.time() < end:
            self.say(np.zeros(160, np.float32))
            try:
                got.append(RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(self.rtp, 2048), 0.02)))
            except TimeoutError:
                pass
        return got

    def say(self, frame: np.ndarray) -> None:
        payload = MULAW.encode(Audio(frame, 8000).pcm16())
        self.rtp.sendto(self.sender.packet(payload).to_bytes(), self.agent_media)

    async def speak(self, samples: np.ndarray) -> None:
        for start in range(0, len(samples), 160):
            self.say(np.pad(samples[start : start + 160], (0, max(0, 160 - len(samples[start:])))))
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()


@pytest.fixture
def run_server(short_domain, tmp_path):
    """Run ``scenario(server, phone)`` against a SIP endpoint whose engine hears and speaks tones."""

    def run(scenario, **options):
        async def main():
            engine = Engine(
                create_vad("energy", threshold_dbfs=-40.0),
                ToneASR(),
                Agent(load_domain(short_domain)),
                ToneVoice(),
                records=tmp_path / "records",
            )
            server = TelephonyServer(engine, max_calls=2)
            close = await sip_server.start(server, "127.0.0.1", 0, **options)
            phone = Phone(server.bound["sip"][1])
            try:
                return await scenario(server, phone)
            finally:
                phone.close()
                await close()

        return asyncio.run(main())

    return run


def test_answer_hold_resume_and_hang_up(run_server):
    async def scenario(server, phone):
        ok = await phone.call()
        assert ok.header("Contact") and b"a=sendrecv" in ok.body
        assert len(await phone.packets(0.6)) >= 20  # the greeting (or silence): a packet every 20 ms
        phone.request("INVITE", phone.offer("sendonly"))  # hold
        held = await phone.final()
        assert held.status == 200 and b"a=recvonly" in held.body
        await phone.packets(0.2)  # what was already on its way
        assert await phone.packets(0.6) == []
        phone.request("INVITE", phone.offer("sendrecv"))  # resume
        assert (await phone.final()).status == 200
        assert len(await phone.packets(0.6)) >= 20
        phone.request("BYE")
        assert (await phone.final()).status == 200
        await asyncio.sleep(0.2)
        return server

    server = run_server(scenario)
    assert server.calls == {}
    assert server.metrics.active_calls.labels("sip")._value.get() == 0


@pytest.mark.slow  # the agent's reply is played in real time first
def test_a_hand_off_is_a_refer_then_a_bye(run_server):
    async def scenario(server, phone):
        await phone.call()
        await phone.speak(tone(PHRASES["i want to speak to a person"], 1.75, rate=8000))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while loop.time() < deadline:  # the agent says it will put the caller through, then refers the call
            await phone.packets(0.1)
            try:
                refer = await phone.receive(0.01)
                break
            except TimeoutError:
                continue
        assert refer.method == "REFER" and refer.header("Refer-To") == "<sip:support@127.0.0.1>"
        phone.reply(refer, 202, "Accepted")
        phone.to = refer.header("From")
        phone.request("NOTIFY", b"SIP/2.0 200 OK\r\n")
        assert (await phone.final()).status == 200
        bye = await phone.receive()
        assert bye.method == "BYE"
        phone.reply(bye, 200, "OK")

    run_server(scenario)


def test_cancel_while_ringing(run_server):
    async def scenario(server, phone):
        invite = phone.request("INVITE", phone.offer())
        assert (await phone.receive()).status == 100
        assert (await phone.receive()).status == 180
        phone.request("CANCEL", cseq=phone.cseq)
        responses = {(await phone.receive()).status, (await phone.receive()).status}
        assert responses == {200, 487}
        await asyncio.sleep(1.5)  # past the ring time: no 200 comes
        with pytest.raises(TimeoutError):
            await phone.receive(0.3)
        return invite

    run_server(scenario, answer_after_s=1.0)


def test_a_retransmitted_invite_gets_the_same_answer(run_server):
    async def scenario(server, phone):
        invite = phone.request("INVITE", phone.offer())
        first = await phone.final()
        phone.sip.sendto(sip.serialize(invite), phone.agent)
        again = await phone.final()
        assert again.body == first.body and again.header("To") == first.header("To")
        assert len(server.calls) == 1
        phone.to = first.header("To")
        phone.request("ACK", cseq=phone.cseq)
        phone.request("BYE")
        assert (await phone.final()).status == 200

    run_server(scenario)


def test_keys_as_rfc4733_events_reach_the_call(run_server):
    async def scenario(server, phone):
        await phone.call()
        session = next(iter(server.calls.values()))
        await phone.packets(0.2)
        for key in "12#":
            for packet in phone.sender.dtmf(key):
                phone.rtp.sendto(packet.to_bytes(), phone.agent_media)
                await asyncio.sleep(0.02)
        await phone.packets(0.5)
        phone.request("BYE")
        await phone.final()
        return session

    session = run_server(scenario)
    assert [t.dtmf for t in session.state.turns if t.role == "caller"] == ["12#"]
