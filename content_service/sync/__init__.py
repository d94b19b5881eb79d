"""TMDB/TVDB sync: httpx clients (tmdb.py, tvdb.py), TMDB -> entity mapping (mapping.py) and the
resumable, incremental runner with its schedule (runner.py)."""
