"""The newsroom service: a web page and a REST API that queue videos, and new anchors, for
worker processes.

- ``settings``: ``ServeSettings`` (folders, host, token, limits, how anchors are trained) and
  the ``--config`` file (``ServeConfig``);
- ``store``: the ``JobStore`` interface (jobs of two kinds: video, anchor), ``open_store(--db)``;
  ``sqlite_store``: the SQLite implementation (WAL, atomic claims, dead-worker requeue);
  ``postgres_store``: the same in PostgreSQL, for workers on several machines
  (``FOR UPDATE SKIP LOCKED`` claims);
- ``worker``: ``JobWorker`` (claim, heartbeat, cancel, how a job ends), ``Worker`` (claim →
  speech → frames → mp4 + captions) and the worker process entry point;
- ``anchor_jobs``: ``AnchorWorker`` (uploaded recordings → ``create_anchor`` → a bundle in the
  anchors folder, resumable) and where an anchor job keeps its files;
- ``anchors``: the verified bundles of the anchors folder, with thumbnails, picked up while the
  service runs;
- ``security``: bearer token, body-size limits, rate limit, security headers;
- ``app`` / ``submit`` / ``submit_anchor`` / ``views``: the FastAPI app, video submission and what all submissions
  share, anchor submission, response shapes;
- ``service``: ``run_service`` (uvicorn plus a supervised pool of video and anchor worker processes);
- ``static/``: the page (plain HTML, CSS and JavaScript; nothing loaded from elsewhere).

Nothing here is imported by ``newsanchor`` itself, and importing this package imports no web
framework: worker processes load only what they need.
"""
