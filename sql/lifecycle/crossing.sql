-- What crosses the cutoff in one mart: its rows older than it, found by the archive column
-- (zone maps on DuckDB, an index on PostgreSQL, the sort key on Redshift), so this reads the
-- rows crossing, not the mart. Their oldest archive value bounds the history probes of the
-- safety check and trim; their key and order_id ranges bound the probes of the archive's
-- NOT EXISTS guards, so a guard reads the history rows those keys can match instead of a
-- whole half-year of history. All NULL (and 0) when no row is older than the cutoff.
-- The COUNT also keeps PostgreSQL from answering each MIN/MAX with its own index walk,
-- which for MAX(order_id) WHERE add_time < cutoff would read the whole key index.
SELECT COUNT(*) AS crossing,
       MIN(m.{{ q(archive_column) }}) AS oldest,
       MIN(m.{{ q(key) }}) AS key_min,
       MAX(m.{{ q(key) }}) AS key_max,
       MIN(m.order_id) AS order_min,
       MAX(m.order_id) AS order_max
FROM {{ mart }} m
WHERE m.{{ q(archive_column) }} < :cutoff
