"""What an outgoing stream does with the router's delivery report (I2CP MessageStatus) for its SYN.

Only the SYN is sent with a nonce (every other packet uses nonce 0, so the router writes nothing
back for it). Its final status decides, before any answer could come from the peer:

- a hard failure (bad destination or LeaseSet, bad session, …; the codes Java's streaming fails
  a connection on) → fail the dial at once: resending cannot help;
- "no LeaseSet" (21) → the router's lookup found nothing. Java treats it as soft because lookups
  can be slow; we look the destination up once more past every cache (I2CP HostLookup, which
  starts a fresh network lookup when the router holds no LeaseSet) and fail only if that finds
  nothing either. A site that is simply offline is then reported in seconds, not after the
  connect timeout;
- anything else (handed to a tunnel, one try failed, no tunnels yet) → nothing: the SYN
  retransmissions and the connect timeout stay in charge.
"""

from __future__ import annotations

import enum

from i2proxy.i2cp.messages import MessageStatusCode


class SynVerdict(enum.Enum):
    CARRY_ON = "carry-on"
    FAIL = "fail"
    LOOK_UP_AGAIN = "look-up-again"


def syn_status_verdict(code: int) -> SynVerdict:
    """The action for the final MessageStatus ``code`` of our SYN."""
    try:
        status = MessageStatusCode(code)
    except ValueError:
        return SynVerdict.CARRY_ON  # a code newer than this table: assume nothing
    if status is MessageStatusCode.NO_LEASESET:
        return SynVerdict.LOOK_UP_AGAIN
    if status.is_hard_failure:
        return SynVerdict.FAIL
    return SynVerdict.CARRY_ON


def status_name(code: int) -> str:
    """``no-leaseset (21)`` style text for messages and logs."""
    try:
        return f"{MessageStatusCode(code).name.lower().replace('_', '-')} ({code})"
    except ValueError:
        return f"status {code}"
