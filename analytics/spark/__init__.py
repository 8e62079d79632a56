"""keytrail on Apache Spark (`pip install 'keytrail[spark]'`, docs/scale.md): the stored attribution and the
dashboard's rollups computed from the same `.sql` files, translated DuckDB → Spark (translate.py), over the same lake
(engine.py), written as the same files (attribute.py, rollups.py). Only `--engine spark` imports these modules;
pyspark is imported inside them, never by what the DuckDB path loads."""
