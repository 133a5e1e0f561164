"""`python -m services.catalog` serves the catalog."""

import uvicorn

from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings
from shared.logs import configure_logging


def main() -> None:
    settings = CatalogSettings()
    logging_level = settings.log_level.lower()
    configure_logging("catalog", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=logging_level,
        log_config=None,
    )


if __name__ == "__main__":
    main()
