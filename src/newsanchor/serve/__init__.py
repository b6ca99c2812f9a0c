"""The newsroom service: a web page and a REST API that queue videos for worker processes.

- ``settings``: ``ServeSettings`` (folders, host, token, limits);
- ``store``: the ``JobStore`` interface, ``open_store(--db)``; ``sqlite_store``: the SQLite
  implementation (WAL, atomic claims, dead-worker requeue); ``postgres_store``: the same in
  PostgreSQL, for workers on several machines (``FOR UPDATE SKIP LOCKED`` claims);
- ``worker``: ``Worker`` (claim → speech → frames → mp4 + captions, heartbeat, cancel) and the
  worker process entry point;
- ``anchors``: the verified bundles of the anchors folder, with thumbnails;
- ``security``: bearer token, body-size limits, rate limit, security headers;
- ``app`` / ``submit`` / ``views``: the FastAPI app, job submission, response shapes;
- ``service``: ``run_service`` (uvicorn plus a supervised pool of worker processes);
- ``static/``: the page (plain HTML, CSS and JavaScript; nothing loaded from elsewhere).

Nothing here is imported by ``newsanchor`` itself, and importing this package imports no web
framework: worker processes load only what they need.
"""
