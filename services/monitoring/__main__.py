"""`python -m services.monitoring` serves the monitoring service."""

import uvicorn

from services.monitoring.app import create_app
from services.monitoring.settings import MonitoringSettings


def main() -> None:
    settings = MonitoringSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
