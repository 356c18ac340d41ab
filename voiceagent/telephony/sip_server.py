"""A SIP user agent server on UDP (RFC 3261) that answers calls with the agent, and its RTP media (RFC 3550).

Signalling: INVITE gets 100 Trying, 180 Ringing and a 200 OK with the SDP answer (PCMU or PCMA as the caller
offers, telephone-event when offered; 488 when nothing fits), retransmitted on RFC 3261's timers (T1 doubling to
T2) until the ACK; a retransmitted INVITE gets the same answer again. BYE from either side, CANCEL while ringing
(200 and 487), OPTIONS (keepalives), a re-INVITE (hold with sendonly/inactive: the agent stops talking and
listening until the call is resumed), 486 Busy Here at the call limit, 403 to sources outside the allowed
networks, 401 with a digest challenge when a user and password are set. When the dialogue core hands the call
over, the agent sends REFER to the domain's transfer target and hangs up once the transfer is accepted (or after
a few seconds). Anything malformed is counted in the metrics
and answered 400 where a response can be built, else dropped; no exception leaves a datagram's handler.

Media: each call has its own RTP socket. Packets of the chosen codec go through a jitter buffer (reorder, drop
duplicates and late packets, sequence wrap, SSRC change); telephone-event packets become keys for the dialogue
core. Every 20 ms one packet goes out: the agent's voice, or silence while it thinks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from dataclasses import dataclass, field

import numpy as np

from voiceagent.audio import Audio
from voiceagent.conversation.session import CallSession
from voiceagent.g711 import ALAW, MULAW
from voiceagent.telephony import rtp, sdp, sip
from voiceagent.telephony.digest import DigestAuth
from voiceagent.telephony.pacing import FRAME_S, pace
from voiceagent.telephony.server import TelephonyServer

log = logging.getLogger("voiceagent.serve")
RATE = 8000
FRAME = round(RATE * FRAME_S)
T1, T2 = 0.5, 4.0
TRANSACTION_TIMEOUT_S = 64 * T1
#: How long a REFER may take to be accepted before the agent hangs up anyway.
TRANSFER_WAIT_S = 5.0
#: How long a stopping server waits for its BYEs to be answered.
STOP_WAIT_S = 2.0
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY"
CODECS = {"PCMU": MULAW, "PCMA": ALAW}


async def start(
    server: TelephonyServer,
    host: str,
    port: int,
    allow: list[str] | None = None,
    answer_after_s: float = 0.0,
    user: str = "",
    password: str = "",
):
    loop = asyncio.get_running_loop()
    networks = [ipaddress.ip_network(n) for n in (allow or ["127.0.0.0/8", "::1/128"])]
    auth = DigestAuth(user, password) if user else None
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: SipEndpoint(server, networks, answer_after_s, auth), local_addr=(host, port)
    )
    server.bound["sip"] = transport.get_extra_info("sockname")[:2]

    async def close() -> None:
        await protocol.hang_up_all()
        transport.close()

    return close


@dataclass
class SipCall:
    invite: sip.SipMessage
    peer: tuple[str, int]
    dialog: sip.Dialog
    session: CallSession | None = None
    media: RtpMedia | None = None
    answer: bytes = b""  # the final response to the INVITE, sent again when the INVITE comes again
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    answered: bool = False
    ended: bool = False
    stopped: bool = False  # the server is stopping: its BYE is on its way
    #: Our requests awaiting a response, by CSeq number: the event is set with the response.
    pending: dict[int, tuple[asyncio.Event, list]] = field(default_factory=dict)
    transferred: asyncio.Event = field(default_factory=asyncio.Event)


class SipEndpoint(asyncio.DatagramProtocol):
    def __init__(self, server: TelephonyServer, networks, answer_after_s: float, auth: DigestAuth | None = None):
        self.server = server
        self.networks = networks
        self.answer_after_s = answer_after_s
        self.auth = auth
        self.calls: dict[str, SipCall] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.host, self.port = transport.get_extra_info("sockname")[:2]

    # Receiving ----------------------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, peer) -> None:
        peer = peer[:2]
        if not data.strip():
            return  # a CRLF keepalive
        try:
            message = sip.parse(data)
        except sip.SipParseError as exc:
            self._error("sip_parse", f"{peer[0]}:{peer[1]}: {exc}")
            return
        try:
            if not message.is_request:
                self._response(message)
            elif not any(ipaddress.ip_address(peer[0]) in network for network in self.networks):
                self._error("sip_forbidden", f"{message.method} from {peer[0]}, outside the allowed networks")
                self._reply(message, peer, 403, "Forbidden")
            else:
                self._request(message, peer)
        except sip.SipParseError as exc:  # a header the handler needed is malformed
            self._error("sip_parse", f"{peer[0]}:{peer[1]}: {exc}")
            self._reply(message, peer, 400, "Bad Request")
        except Exception:  # one bad message never takes the server down
            self.server.metrics.errors.labels("sip_internal").inc()
            log.exception("SIP %s from %s:%s", message.method or message.status, *peer)

    def _request(self, request: sip.SipMessage, peer) -> None:
        call = self.calls.get(request.header("Call-ID") or "")
        method = request.method
        if method == "INVITE":
            if call is None:
                self._invite(request, peer)
            elif sip.tag_of(request.header("To") or "") is None:
                self._send(call.answer, peer)  # a retransmission: the same answer again
            else:
                self._reinvite(call, request, peer)
        elif method == "ACK":
            if call is not None:
                call.acked.set()
        elif method == "OPTIONS":
            self._reply(request, peer, 200, "OK", [("Allow", ALLOW), ("Accept", "application/sdp")])
        elif call is None:
            self._reply(request, peer, 481, "Call/Transaction Does Not Exist")
        elif method == "BYE":
            self._reply(request, peer, 200, "OK", to_tag=call.dialog.local_tag)
            self._end(call, "caller hung up")
        elif method == "CANCEL":
            self._reply(request, peer, 200, "OK")
            if not call.answered:
                self._reply(call.invite, peer, 487, "Request Terminated", to_tag=call.dialog.local_tag)
                self._end(call, "caller cancelled")
        elif method == "NOTIFY":  # progress of our REFER (RFC 3515): a 2xx sipfrag means the transfer took
            self._reply(request, peer, 200, "OK")
            if b"SIP/2.0 2" in request.body:
                call.transferred.set()
        else:
            self._reply(request, peer, 501, "Not Implemented", [("Allow", ALLOW)])

    def _response(self, response: sip.SipMessage) -> None:
        call = self.calls.get(response.header("Call-ID") or "")
        if call is None or response.status < 200:
            return
        number, _ = sip.cseq(response)
        if (waiting := call.pending.get(number)) is not None:
            waiting[1].append(response)
            waiting[0].set()

    # Calls ----------------------------------------------------------------------------------------------------

    def _invite(self, invite: sip.SipMessage, peer) -> None:
        if self.auth is not None and not self.auth.check("INVITE", invite.header("Authorization")):
            if invite.header("Authorization"):
                self._error("sip_auth", f"INVITE from {peer[0]}: wrong credentials")
            self._reply(invite, peer, 401, "Unauthorized", [("WWW-Authenticate", self.auth.challenge())])
            return
        if not invite.body:
            self._reply(
                invite, peer, 488, "Not Acceptable Here", [("Warning", '399 voiceagent "an SDP offer is needed"')]
            )
            return
        try:
            offer = sdp.parse(invite.body)
            sdp.answer(offer, self.host, 0, 0)  # is there a codec at all?
        except sdp.NoCommonCodec as exc:
            self._error("sdp_codec", str(exc))
            self._reply(invite, peer, 488, "Not Acceptable Here")
            return
        except sdp.SdpError as exc:
            self._error("sdp_parse", str(exc))
            self._reply(invite, peer, 400, "Bad Request")
            return
        ringing = sum(not call.answered for call in self.calls.values())
        if len(self.server.calls) + ringing >= self.server.max_calls:
            self.server.metrics.errors.labels("call_limit").inc()
            self._reply(invite, peer, 486, "Busy Here")
            return
        contact = f"sip:voiceagent@{self.host}:{self.port}"
        call = SipCall(invite, peer, sip.Dialog.from_request(invite, sip.new_tag(), contact))
        self.calls[call.dialog.call_id] = call
        self._reply(invite, peer, 100, "Trying")
        self._spawn(self._run_call(call, offer))

    async def _run_call(self, call: SipCall, offer: sdp.SessionDescription) -> None:
        loop = asyncio.get_running_loop()
        invite, peer, tag = call.invite, call.peer, call.dialog.local_tag
        try:
            media_transport, call.media = await loop.create_datagram_endpoint(
                lambda: RtpMedia(self.server), local_addr=(self.host, 0)
            )
            local_port = media_transport.get_extra_info("sockname")[1]
            body, codec = sdp.answer(offer, self.host, local_port, secrets.randbelow(2**31))
            call.media.configure(offer.audio, codec)
            ringing = sip.response_to(invite, 180, "Ringing", tag)
            call.answer = sip.serialize(ringing)  # what a retransmitted INVITE gets until the 200
            self._send(call.answer, peer)
            if self.answer_after_s:
                await asyncio.sleep(self.answer_after_s)
            if call.ended:
                return
            call.session = self.server.open_call("sip", RATE, call_id=call.dialog.call_id)
            if call.session is None:
                self._reply(invite, peer, 486, "Busy Here", to_tag=tag)
                self._forget(call)
                return
            headers = [("Contact", f"<{call.dialog.local_contact}>"), ("Allow", ALLOW)]
            ok = sip.response_to(invite, 200, "OK", tag, headers, body, "application/sdp")
            call.answer, call.answered = sip.serialize(ok), True
            if not await self._until_answered(call.answer, peer, call.acked):
                self._error("sip_no_ack", f"call {call.dialog.call_id}: no ACK")
            call.media.session = call.session
            await pace(call.session, call.media.tick, on_late=call.media.count_late)
            if not call.ended and not call.stopped:  # the agent ended the call
                await self._hang_up(call)
        finally:
            if call.media is not None:
                call.media.close()
            self._end(call, "agent ended the call")
            self._forget(call)

    async def _hang_up(self, call: SipCall) -> None:
        target = call.session.transfer_to if call.session else None
        if target:
            referred_by = f"<{call.dialog.local_contact}>"
            response = await self._client_request(
                call, "REFER", [("Refer-To", f"<{target}>"), ("Referred-By", referred_by)]
            )
            if response is not None and 200 <= response.status < 300:
                log.info("call %s transferred to %s", call.dialog.call_id, target)
                try:
                    await asyncio.wait_for(call.transferred.wait(), TRANSFER_WAIT_S)
                except TimeoutError:
                    pass
        call.ended = True
        await self._client_request(call, "BYE")

    def _reinvite(self, call: SipCall, request: sip.SipMessage, peer) -> None:
        try:
            offer = sdp.parse(request.body)
            body, codec = sdp.answer(offer, self.host, call.media.local_port, 1, version=2 + sip.cseq(request)[0])
        except sdp.SdpError as exc:
            self._error("sdp_parse", str(exc))
            self._reply(request, peer, 488, "Not Acceptable Here", to_tag=call.dialog.local_tag)
            return
        call.media.configure(offer.audio, codec)
        headers = [("Contact", f"<{call.dialog.local_contact}>"), ("Allow", ALLOW)]
        self._send(sip.serialize(sip.response_to(request, 200, "OK", None, headers, body, "application/sdp")), peer)
        log.info("call %s %s", call.dialog.call_id, "on hold" if call.media.on_hold else "resumed")

    def _end(self, call: SipCall, reason: str) -> None:
        if call.session is not None:
            self.server.call_ended(call.session, reason)
        call.ended = True

    def _forget(self, call: SipCall) -> None:
        self.calls.pop(call.dialog.call_id, None)

    async def hang_up_all(self) -> None:
        """The server stops: BYE to every call in progress, all at once, waiting a moment at most for answers."""
        byes = []
        for call in self.calls.values():
            if call.answered and not call.stopped:
                call.stopped = True
                byes.append(asyncio.ensure_future(self._client_request(call, "BYE")))
        if byes:
            await asyncio.wait(byes, timeout=STOP_WAIT_S)

    # Sending --------------------------------------------------------------------------------------------------

    async def _until_answered(self, data: bytes, peer, answered: asyncio.Event) -> bool:
        """Send ``data`` again on RFC 3261's timers (T1 doubling up to T2) until ``answered``; whether it was."""
        interval, waited = T1, 0.0
        while waited < TRANSACTION_TIMEOUT_S:
            self._send(data, peer)
            try:
                await asyncio.wait_for(answered.wait(), interval)
                return True
            except TimeoutError:
                waited += interval
                interval = min(interval * 2, T2)
        return False

    async def _client_request(self, call: SipCall, method: str, headers=()) -> sip.SipMessage | None:
        """Send a request inside the call's dialog, retransmitted until its final response (or None)."""
        request = call.dialog.request(method, self.host, self.port, headers)
        done, responses = asyncio.Event(), []
        call.pending[call.dialog.local_cseq] = (done, responses)
        target = _address(call.dialog.remote_target, call.peer)
        await self._until_answered(sip.serialize(request), target, done)
        return responses[0] if responses else None

    def _reply(self, request: sip.SipMessage, peer, status: int, reason: str, headers=(), to_tag=None) -> None:
        self._send(sip.serialize(sip.response_to(request, status, reason, to_tag, headers)), peer)

    def _send(self, data: bytes, peer) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, peer)

    def _error(self, kind: str, message: str) -> None:
        self.server.metrics.errors.labels(kind).inc()
        log.warning("SIP: %s", message)

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _address(uri: str, fallback: tuple[str, int]) -> tuple[str, int]:
    """Where a SIP URI's requests go (host and port, 5060 by default); ``fallback`` when it names none usable."""
    hostport = uri.split(":", 1)[-1].split("@")[-1].split(";")[0]
    host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    try:
        return str(ipaddress.ip_address(host or hostport)), int(port or 5060)
    except ValueError:
        return fallback


class RtpMedia(asyncio.DatagramProtocol):
    """One call's RTP: packets in through the jitter buffer (and keys to the session), 20 ms packets out."""

    def __init__(self, server: TelephonyServer):
        self.server = server
        self.session: CallSession | None = None
        self.jitter = rtp.JitterBuffer()
        self.keys = rtp.DtmfReceiver()
        self.remote: tuple[str, int] | None = None
        self.sender: rtp.RtpSender | None = None  # made when the codec is known, again if it changes
        self.on_hold = False
        self.transport = None
        self.local_port = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.local_port = transport.get_extra_info("sockname")[1]

    def configure(self, media: sdp.Media, codec: sdp.Codec) -> None:
        """The stream as (re)negotiated: where to send, which codec, DTMF payload type, hold."""
        self.remote = (media.address, media.port)
        self.codec, self.payload_type = CODECS[codec.name.upper()], codec.payload_type
        self.event_type = media.telephone_event
        self.on_hold = media.on_hold
        if self.sender is None or self.sender.payload_type != codec.payload_type:
            self.sender = rtp.RtpSender(codec.payload_type)

    def datagram_received(self, data: bytes, peer) -> None:
        if rtp.is_rtcp(data):
            return
        try:
            packet = rtp.RtpPacket.parse(data)
        except rtp.RtpError:
            self.server.metrics.errors.labels("rtp_parse").inc()
            return
        if packet.payload_type == self.payload_type:
            self.jitter.push(packet, asyncio.get_running_loop().time())
        elif packet.payload_type == self.event_type:
            if (key := self.keys.push(packet)) is not None and self.session is not None and not self.on_hold:
                self.session.dtmf(key)
        else:
            self.server.metrics.errors.labels("rtp_payload_type").inc()

    def tick(self) -> None:
        """Every 20 ms: one packet's worth of the caller's audio to the session (silence for a lost one), and one
        packet of the agent's out. On hold neither: the agent waits, and its timers with it."""
        if self.on_hold or self.remote is None or self.transport is None:
            return
        payload = self.jitter.pop()
        caller = self.codec.decode(payload) if payload is not None else np.zeros(FRAME, np.int16)
        self.session.feed(Audio.from_pcm16(caller, RATE).samples)
        agent = Audio(self.session.play(FRAME), RATE).pcm16()
        self.transport.sendto(self.sender.packet(self.codec.encode(agent)).to_bytes(), self.remote)

    def close(self) -> None:
        """The call is over: its stream's losses go to the metrics, the socket is closed."""
        self.server.metrics.late_frames.labels("sip").inc(self.jitter.late + self.jitter.lost)
        if self.transport is not None:
            self.transport.close()

    def count_late(self, frames: int) -> None:
        self.server.metrics.late_frames.labels("sip").inc(frames)
