"""`python -m services.catalog` serves the catalog."""

import uvicorn

from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings


def main() -> None:
    settings = CatalogSettings()
    logging_level = settings.log_level.lower()
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=logging_level
    )


if __name__ == "__main__":
    main()
