"""The prediction log: an append-only, partitioned Parquet dataset that is the source of truth of a test.

Modules, one concept each:

- ``schema``: the record schemas writers accept and readers return, ``LogError``, experiment keys;
- ``validate``: turning input into typed columns and the validation rules (``InvalidRecordsError``);
- ``layout``: the on-disk layout, the only place that knows file names, ``date=`` partitions, compacted files
  and the manifest, globs, row groups and their statistics, and the columns a label copies (``log_source``
  says what an engine reads for an experiment); the design (lock-free appends, exactly-once readers,
  compaction) is described there;
- ``writer``: ``LogWriter`` (buffered, validating, lock-free, bounded memory) and label appends;
- ``compact``: compaction of appended and foreign files into the fast layout (``abkit log compact``), on DuckDB
  or, through ``compact_spark``, on Spark;
- ``reader``: ``PredictionLog``, the entry point;
- ``keys``, ``durable``: the ids' 64-bit keys, fsync helpers.

>>> import tempfile, datetime as dt
>>> log = PredictionLog(tempfile.mkdtemp())
>>> rec = dict(variant="control", unit_id="u1", request_id="r1", text="great film",
...            predicted_label="pos", confidence=0.9, latency_ms=12.5, model_name="tfidf",
...            model_version="1", ts=dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc))
>>> with log.writer("demo", ["control", "challenger"]) as w:
...     w.append([rec, rec | {"request_id": "r2", "variant": "challenger"}, rec])
2
>>> w.duplicates, log.read_predictions("demo").num_rows
(1, 2)
"""

from abkit.log.layout import STORED_LABEL_SCHEMA, STORED_PREDICTION_SCHEMA, LogFileError
from abkit.log.reader import PredictionLog
from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, UTC_US, LogError
from abkit.log.validate import InvalidRecordsError
from abkit.log.writer import AppendReport, LogWriter
from abkit.sql import sql_string

__all__ = [
    "LABEL_SCHEMA",
    "PREDICTION_SCHEMA",
    "STORED_LABEL_SCHEMA",
    "STORED_PREDICTION_SCHEMA",
    "UTC_US",
    "AppendReport",
    "InvalidRecordsError",
    "LogError",
    "LogFileError",
    "LogWriter",
    "PredictionLog",
    "sql_string",
]
