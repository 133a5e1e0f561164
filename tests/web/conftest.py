"""The web service in front of the three-service stack of tests/notifications."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.web.app import create_app
from services.web.settings import WebSettings
from tests.notifications import conftest as notifications_stack
from tests.notifications.conftest import Stack

# The three-service stack of the notifications tests, reused as it is.
smtp_sink = notifications_stack.smtp_sink
sms_sink = notifications_stack.sms_sink
stack_settings = notifications_stack.stack_settings
stack = notifications_stack.stack

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web_app(stack: Stack, public_url: str, **settings: Any) -> FastAPI:
    """The web app reading the stack's in-process services over ASGI."""
    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: httpx.ASGITransport(app=getattr(stack, name)._transport.app)  # type: ignore[attr-defined]
        for name in ("catalog", "monitoring", "notifications")
    }
    return create_app(
        WebSettings(environment="test", public_url=public_url, **settings), transports=transports
    )


@dataclass
class Web:
    """A client on the web app, the stack behind it, and (when served) its real URL."""

    client: httpx.AsyncClient
    stack: Stack
    url: str


@pytest.fixture
async def web(stack: Stack) -> AsyncIterator[Web]:
    """The web app over the stack; notifications' links point at it."""
    url = "http://web.test"
    stack.notifications_app.state.settings.public_url = url
    app = web_app(stack, url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=url) as client,
    ):
        yield Web(client, stack, url)


@pytest.fixture
async def served_web(stack: Stack) -> AsyncIterator[Web]:
    """The web app listening on a real port (for the browser), over the stack."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.notifications_app.state.settings.public_url = url
    server = uvicorn.Server(
        uvicorn.Config(web_app(stack, url), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            yield Web(client, stack, url)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    if CHROMIUM is None:
        pytest.skip("chromium not found: apt-get install -y chromium (make test does it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $UPR_TEST_ARTIFACTS if set, else the test's tmp folder."""
    folder = Path(os.environ.get("UPR_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
