-- Safety check (the same for all three marts, docs/lifecycle.md#safety-check and
-- docs/legacy-defects.md#7-no-safety-check-before-the-order-trim): every mart row older than
-- the cutoff that is not verified present in a history table (same key, same _raw_id) gets
-- one open exception; the row stays in the mart. Typical cause: its period has no history
-- table yet (rotation off, or no grant to create it). exception_id = :first_id, +1, ...
-- The history tables probed are those whose period overlaps [:oldest, :cutoff): archive
-- puts a row only into the table of its archive value's period.
INSERT INTO {{ exceptions }} (exception_id, order_id, source_table, row_key, exception_type,
                              detected_at, notes)
SELECT :first_id - 1 + ROW_NUMBER() OVER (ORDER BY m.{{ q(key) }}),
       m.order_id, :source_table, m.{{ q(key) }}, :exception_type, :detected_at, :notes
FROM {{ mart }} m
WHERE m.{{ q(archive_column) }} < :cutoff
{% if active_mart %}
  AND NOT EXISTS (
    SELECT 1
    FROM {{ active_mart }} u
    WHERE u.order_id = m.order_id
      -- every row checked has its order_id in this range (crossing.sql): the bound changes
      -- no answer and lets the probe skip most of the order mart
      AND u.order_id >= :order_min
      AND u.order_id <= :order_max
  )
{% endif %}
{% for h in hists %}
  AND NOT EXISTS (
    SELECT 1
    FROM {{ h }} h{{ loop.index }}
    WHERE h{{ loop.index }}.{{ q(key) }} = m.{{ q(key) }}
      AND h{{ loop.index }}._raw_id = m._raw_id
      -- the same version has the same archive value: bounding it lets DuckDB's zone maps
      -- (Redshift's sort key) skip the history blocks archived before the mart's oldest row
      AND h{{ loop.index }}.{{ q(archive_column) }} = m.{{ q(archive_column) }}
      AND h{{ loop.index }}.{{ q(archive_column) }} >= :oldest
      AND h{{ loop.index }}.{{ q(archive_column) }} < :cutoff
  )
{% endfor %}
  AND NOT EXISTS (
    SELECT 1
    FROM {{ exceptions }} e
    WHERE e.source_table = :source_table
      AND e.row_key = m.{{ q(key) }}
      AND e.exception_type = :exception_type
      AND e.resolved_at IS NULL
  )
