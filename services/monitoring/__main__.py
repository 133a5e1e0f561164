"""`python -m services.monitoring` serves the monitoring service."""

import uvicorn

from services.monitoring.app import create_app
from services.monitoring.settings import MonitoringSettings
from shared.logs import configure_logging


def main() -> None:
    settings = MonitoringSettings()
    configure_logging("monitoring", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
