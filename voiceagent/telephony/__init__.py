"""Telephony: the wire formats of phone calls (SIP, SDP, RTP with RFC 4733 DTMF, Asterisk AudioSocket, Twilio Media
Streams), kept apart from sockets and pacing. Each format module turns bytes (or text) into small dataclasses and
back with no sockets, clocks or threads, so it is tested byte for byte; the transports own the sockets and the 20 ms
pace.
"""
