"""The orchestration core: every rule about what runs next, as plain functions over records.

Both executors ask here and only move records and messages: the embedded one
(``services/pipeline.py``: one process, stage by stage) and the Celery one (``workers/tasks.py``: one
message per clip and stage).

- ``plan``: the stage order, each stage's prerequisites, whether a clip needs a stage, what comes next;
- ``ingest``: resuming a clipped video, duplicate inputs by content, failed and stale videos;
- ``contracts``: a stage's declared inputs exist before it runs, its declared outputs after;
- ``accounting``: the run summary, drop and failure counts, a clip's end state, a job's final state;
- ``outputs``: the dataset tables both modes write when a run ends.

How a stage's outcome changes a record lives beside them in ``services/execution.py``.
"""
