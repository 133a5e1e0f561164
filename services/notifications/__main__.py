"""`python -m services.notifications` serves the notifications service."""

import uvicorn

from services.notifications.app import create_app
from services.notifications.settings import NotificationsSettings
from shared.logs import configure_logging


def main() -> None:
    settings = NotificationsSettings()
    configure_logging("notifications", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
