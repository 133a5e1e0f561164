"""`python -m services.web` serves the public web pages."""

import uvicorn

from services.web.app import create_app
from services.web.settings import WebSettings
from shared.logs import configure_logging


def main() -> None:
    settings = WebSettings()
    configure_logging("web", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
