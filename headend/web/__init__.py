"""The head-end's REST API and fleet page (aiohttp, OpenAPI 3.1; issue 17, DESIGN §11)."""
