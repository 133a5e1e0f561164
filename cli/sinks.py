"""Local stand-ins for providers: a real SMTP server and a real SMS gateway (`upr dev`, tests).

Both run in a background thread of their own, so they work from sync and async code alike,
and both keep what they receive in memory (and, given a folder, on disk).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.notifications.channels import InvalidSignature, verify_webhook

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


# --- SMTP --------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    """One message as the SMTP sink received it."""

    message: EmailMessage
    mail_from: str
    recipients: list[str]
    session: int  # the SMTP session (TCP connection) it came over, numbered from 1
    raw: bytes = field(repr=False)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.sink.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        for rejected, reply in self.sink.reject.items():
            if rejected.lower() == address.lower():
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        number = getattr(session, "upr_sink_session", None)
        if number is None:
            number = self.sink._next_session()
            session.upr_sink_session = number
        raw = bytes(envelope.original_content or envelope.content)
        message = message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.sink._keep(
            ReceivedMail(message, envelope.mail_from, list(envelope.rcpt_tos), number, raw)
        )
        return "250 OK queued"


class SmtpSink:
    """A real SMTP server (aiosmtpd, no STARTTLS) on 127.0.0.1 that keeps what it receives."""

    def __init__(
        self,
        port: int = 0,
        folder: Path | None = None,
        *,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._port = port or _free_port()
        self.folder = folder
        self.credentials = credentials  # when set, AUTH (PLAIN/LOGIN) is required
        self.received: list[ReceivedMail] = []
        # address -> SMTP reply for RCPT, e.g. "550 5.1.1 No such user"
        self.reject: dict[str, str] = {}
        self._sessions = itertools.count(1)
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        """The TCP port (the same across stop and start)."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether it listens now."""
        return self._controller is not None

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received, parsed with the default policy."""
        with self._lock:
            return [r.message for r in self.received]

    @property
    def recipients(self) -> list[list[str]]:
        """The envelope recipients of each message, in the order of messages."""
        with self._lock:
            return [list(r.recipients) for r in self.received]

    @property
    def sessions(self) -> int:
        """How many distinct SMTP sessions delivered at least one message."""
        with self._lock:
            return len({r.session for r in self.received})

    def messages_to(self, address: str) -> list[EmailMessage]:
        """The messages whose envelope named this recipient."""
        wanted = address.lower()
        with self._lock:
            return [r.message for r in self.received if wanted in (a.lower() for a in r.recipients)]

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self.received.clear()

    def _next_session(self) -> int:
        with self._lock:
            return next(self._sessions)

    def _keep(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.received.append(mail)
            count = len(self.received)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{_stamp()}-{count}.eml").write_bytes(mail.raw)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == self.credentials
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        """Listen (again, on the same port)."""
        if self._controller is not None:
            return self
        options: dict[str, Any] = {}
        if self.credentials is not None:
            # AUTH offered in clear (a local sink has no certificate); handle_MAIL turns
            # away sessions that did not log in.
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = Controller(_Handler(self), hostname=HOST, port=self._port, **options)
        deadline = time.monotonic() + 5
        while True:  # the port may still be held for a moment after a stop
            try:
                controller.start()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                controller = Controller(_Handler(self), hostname=HOST, port=self._port, **options)
                time.sleep(0.05)
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and drop open sessions: senders see an outage."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- SMS ---------------------------------------------------------------------------------


class SmsSink:
    """A real HTTP SMS gateway on 127.0.0.1: POST /sms (JSON) and Twilio's Messages.json."""

    def __init__(
        self, port: int = 0, folder: Path | None = None, secret: str | None = None
    ) -> None:
        self._port = port
        self.folder = folder
        self.secret = secret
        self.requests: list[dict[str, Any]] = []
        self.hits = 0  # every request, refused ones included
        self._failures: list[int] = []
        self._retry_after: int | None = None
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._app = Starlette(
            routes=[
                Route("/sms", self._gateway, methods=["POST"]),
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio, methods=["POST"]),
            ]
        )

    @property
    def port(self) -> int:
        """The TCP port (chosen at the first start when 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The generic gateway's URL (…/sms)."""
        return f"http://{HOST}:{self._port}/sms"

    @property
    def base_url(self) -> str:
        """What UPR_TWILIO_BASE_URL should be to reach the Twilio-style route."""
        return f"http://{HOST}:{self._port}"

    def fail_next(self, count: int, status: int = 503, retry_after: int | None = None) -> None:
        """Answer the next count requests with this status (and Retry-After, when given)."""
        with self._lock:
            self._failures = [status] * count
            self._retry_after = retry_after

    def _take_failure(self) -> int | None:
        with self._lock:
            self.hits += 1
            return self._failures.pop() if self._failures else None

    def _keep(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(record)
            count = len(self.requests)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{_stamp()}-{count}.json"
            path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")

    async def _gateway(self, request: Request) -> JSONResponse:
        body = await request.body()
        if (status := self._take_failure()) is not None:
            headers = {} if self._retry_after is None else {"Retry-After": str(self._retry_after)}
            return JSONResponse({"error": "unavailable"}, status_code=status, headers=headers)
        if self.secret is not None:
            try:
                verify_webhook(self.secret, request.headers, body)
            except InvalidSignature as exc:
                return JSONResponse({"error": str(exc)}, status_code=401)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(payload, dict) or not payload.get("to") or "text" not in payload:
            return JSONResponse({"error": "to and text are required"}, status_code=422)
        provider_id = f"gw-{uuid.uuid4().hex[:20]}"
        self._keep(
            {
                "route": "gateway",
                "to": payload["to"],
                "from": payload.get("from"),
                "text": payload["text"],
                "id": payload.get("id"),
                "provider_id": provider_id,
                "headers": dict(request.headers),
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )
        return JSONResponse({"id": provider_id, "status": "queued"})

    async def _twilio(self, request: Request) -> JSONResponse:
        body = await request.body()
        if (status := self._take_failure()) is not None:
            return JSONResponse({"code": 20503, "message": "unavailable"}, status_code=status)
        sid = request.path_params["sid"]
        if not self._twilio_auth_ok(request.headers.get("authorization", ""), sid):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        if not form.get("To") or not form.get("Body"):
            return JSONResponse({"code": 21604, "message": "To and Body are required"}, 400)
        message_sid = "SM" + uuid.uuid4().hex
        self._keep(
            {
                "route": "twilio",
                "to": form["To"],
                "from": form.get("From"),
                "text": form["Body"],
                "id": None,
                "provider_id": message_sid,
                "headers": dict(request.headers),
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )
        return JSONResponse(
            {"sid": message_sid, "status": "queued", "to": form["To"], "body": form["Body"]},
            status_code=201,
        )

    def _twilio_auth_ok(self, header: str, sid: str) -> bool:
        # Basic sid:token, the sid being the account in the path; the token must be the
        # sink's secret when it has one.
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == sid and (self.secret is None or password == self.secret)

    def start(self) -> SmsSink:
        """Serve in a background thread (again, on the same port) until stop()."""
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._port))
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sms-sink", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the SMS sink did not start on port {self._port}")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock
        return self

    def stop(self) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SmsSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_dev_sinks(
    data_dir: Path,
    smtp_port: int = 2525,
    sms_port: int = 8025,
    sms_secret: str | None = None,
) -> tuple[SmtpSink, SmsSink]:
    """Start the sinks of `upr dev`: e-mail to data_dir/mail, SMS to data_dir/sms."""
    smtp = SmtpSink(smtp_port, data_dir / "mail").start()
    try:
        sms = SmsSink(sms_port, data_dir / "sms", secret=sms_secret).start()
    except BaseException:
        smtp.stop()
        raise
    return smtp, sms
