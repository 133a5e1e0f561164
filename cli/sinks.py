"""Local sinks standing in for providers: an SMTP server and an SMS gateway (dev and tests)."""

from __future__ import annotations

import json
import threading
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cli.nats_server import free_port


class _Collector:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.sink._keep(message, list(envelope.rcpt_tos), envelope.content)
        return "250 OK"


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps every message it receives."""

    def __init__(self, port: int = 0, folder: Path | None = None) -> None:
        self._port = port or free_port()
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        return self._port

    def _keep(self, message: EmailMessage, rcpt: list[str], raw: bytes) -> None:
        with self._lock:
            self.messages.append(message)
            self.recipients.append(rcpt)
            count = len(self.messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{count:05d}.eml").write_bytes(raw)

    def start(self) -> SmtpSink:
        """Listen (again) on the same port."""
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self._port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening: senders get connection refused, as in an outage."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Messages whose envelope named this recipient."""
        with self._lock:
            return [
                m for m, rcpt in zip(self.messages, self.recipients, strict=True) if address in rcpt
            ]


class SmsSink:
    """A real HTTP server standing in for an SMS gateway (generic JSON and Twilio-style)."""

    def __init__(
        self, port: int = 0, folder: Path | None = None, secret: str | None = None
    ) -> None:
        self._port = port or free_port()
        self.folder = folder
        self.secret = secret
        self.requests: list[dict[str, Any]] = []
        self._fail = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/sms"

    def fail_next(self, count: int) -> None:
        """Answer the next count requests with 503."""
        with self._lock:
            self._fail = count

    def _take_failure(self) -> bool:
        with self._lock:
            if self._fail > 0:
                self._fail -= 1
                return True
            return False

    def _keep(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(record)
            count = len(self.requests)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{count:05d}.json"
            path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")

    async def _gateway(self, request: Request) -> JSONResponse:
        body = await request.body()
        if self.secret is not None:
            from services.notifications.channels import InvalidSignature, verify_webhook

            try:
                verify_webhook(self.secret, request.headers, body)
            except InvalidSignature as exc:
                return JSONResponse({"error": str(exc)}, status_code=401)
        if self._take_failure():
            return JSONResponse({"error": "unavailable"}, status_code=503)
        payload = json.loads(body)
        self._keep({"to": payload.get("to"), "text": payload.get("text"), "id": payload.get("id"),
                    "headers": dict(request.headers)})  # fmt: skip
        return JSONResponse({"id": f"sms-{len(self.requests)}", "status": "queued"})

    async def _twilio(self, request: Request) -> JSONResponse:
        if self._take_failure():
            return JSONResponse({"message": "unavailable"}, status_code=503)
        form = await request.form()
        self._keep({"to": form.get("To"), "text": form.get("Body"), "id": None,
                    "headers": dict(request.headers)})  # fmt: skip
        return JSONResponse(
            {"sid": f"SM{len(self.requests):032d}", "status": "queued"}, status_code=201
        )

    def start(self) -> SmsSink:
        """Serve in a background thread until stop()."""
        app = Starlette(
            routes=[
                Route("/sms", self._gateway, methods=["POST"]),
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self._port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the SMS sink did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
            self._server = None


def run_dev_sinks(
    data_dir: Path, smtp_port: int = 2525, sms_port: int = 8025, sms_secret: str | None = None
) -> tuple[SmtpSink, SmsSink]:
    """Start the sinks `upr dev` uses: e-mail to data/mail, SMS to data/sms."""
    smtp = SmtpSink(smtp_port, data_dir / "mail").start()
    sms = SmsSink(sms_port, data_dir / "sms", secret=sms_secret).start()
    return smtp, sms
