"""What an outgoing stream does with the router's delivery report (I2CP MessageStatus) for its SYN.

Only the SYN is sent with a nonce (every other packet uses nonce 0, so the router writes nothing
back for it). Its final status decides, before any answer could come from the peer:

- a hard failure (bad destination or LeaseSet, bad session, …; the codes Java's streaming fails
  a connection on) → fail the dial at once: resending cannot help;
- "no LeaseSet" (21) → the router's lookup found nothing. Java treats it as soft because lookups
  can be slow. We ask the router ourselves (I2CP HostLookup, a fresh network lookup when it
  holds no LeaseSet, limited to :data:`SYN_LOOKUP_BUDGET`, which Java honours) and fail as
  offline when that finds nothing and the router has sent none of our SYNs
  (:func:`appears_offline`). The lookup starts beside the first SYN to a destination we have
  not heard from in 10 minutes (one per destination however many dials), or at the 21. Java
  2.7 searches ~15 s for a SYN's LeaseSet whatever the message expiration (18.7 s at the
  default 60 s), and the lookup after its 21 took 15 s more: 34 s to the offline page; now
  ~10 s. i2pd merges our lookup with its own for the SYN;
- anything else (handed to a tunnel, one try failed, no tunnels yet) → nothing: the SYN
  retransmissions and the connect timeout stay in charge.
"""

from __future__ import annotations

import enum

from i2proxy.i2cp.messages import MessageStatusCode

#: How long the router may search for the LeaseSet of a destination we send a SYN to, and how
#: long our own lookup beside it may take. The issue's goal is the offline page in < 15 s.
SYN_LOOKUP_BUDGET = 10.0


_SENT = frozenset(
    {
        MessageStatusCode.BEST_EFFORT_SUCCESS,
        MessageStatusCode.GUARANTEED_SUCCESS,
        MessageStatusCode.LOCAL_SUCCESS,
    }
)


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


def appears_offline(*, lookup_found: bool | None, syn_sent_by_router: bool) -> bool:
    """Our lookup past every cache found no LeaseSet, and the router did not send any of our
    SYNs (it would have needed that LeaseSet): the destination is not on the network."""
    return lookup_found is False and not syn_sent_by_router


def router_sent(code: int) -> bool:
    """The router's final status says it sent the message: it had the LeaseSet."""
    return code in _SENT


def status_name(code: int) -> str:
    """``no-leaseset (21)`` style text for messages and logs."""
    try:
        return f"{MessageStatusCode(code).name.lower().replace('_', '-')} ({code})"
    except ValueError:
        return f"status {code}"
