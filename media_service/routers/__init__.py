"""The media service's FastAPI routers, one module per domain: validate input, call
service.py, shape the answer (pydantic models at the edges in models.py)."""
