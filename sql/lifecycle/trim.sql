-- Trim: delete from the mart only the rows of one period, older than the cutoff, that are
-- verified present in that period's history table with the same key AND the same _raw_id
-- (the very version being deleted). The exceptions table is not consulted, so nothing in it
-- (a NULL key included) can stop a trim
-- (docs/legacy-defects.md#9-not-in-over-a-subquery-with-nulls).
DELETE FROM {{ mart }}
WHERE {{ mart_table_q }}.{{ q(archive_column) }} >= :period_start
  AND {{ mart_table_q }}.{{ q(archive_column) }} < :period_end
  AND {{ mart_table_q }}.{{ q(archive_column) }} < :cutoff
  AND EXISTS (
    SELECT 1
    FROM {{ hist }} h
    WHERE h.{{ q(key) }} = {{ mart_table_q }}.{{ q(key) }}
      AND h._raw_id = {{ mart_table_q }}._raw_id
      -- same version, same archive value; the bounds let zone maps / the sort key skip
      -- history blocks archived before the mart's oldest row
      AND h.{{ q(archive_column) }} = {{ mart_table_q }}.{{ q(archive_column) }}
      AND h.{{ q(archive_column) }} >= :oldest
      AND h.{{ q(archive_column) }} < :cutoff
  )
