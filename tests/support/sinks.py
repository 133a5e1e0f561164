"""Sinks for fault tests: an SMTP server that is slow to accept each message."""

from __future__ import annotations

import time
from collections import Counter

from cli.sinks import ReceivedMail, SmtpSink


class SlowSmtpSink(SmtpSink):
    """An SmtpSink that takes `delay` seconds over each message before it accepts it."""

    def __init__(self, delay: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.delay = delay

    def _keep(self, mail: ReceivedMail) -> None:
        # Blocks the sink's own loop on purpose: a slow server handles one message at a time.
        time.sleep(self.delay)
        super()._keep(mail)


def message_ids(sink: SmtpSink) -> Counter[str]:
    """How often each Message-ID arrived at the sink."""
    return Counter(str(m["Message-ID"]) for m in sink.messages)
