-- Resolve the open routing-gap exceptions of one mart whose row no longer sits in the mart
-- older than the cutoff: it was archived and trimmed, or a newer version replaced it.
UPDATE {{ exceptions }}
SET resolved_at = :resolved_at
WHERE resolved_at IS NULL
  AND source_table = :source_table
  AND exception_type = :exception_type
  AND row_key IS NOT NULL
  AND NOT EXISTS (
    SELECT 1
    FROM {{ mart }} m
    WHERE m.{{ q(key) }} = {{ exceptions_table_q }}.row_key
      AND m.{{ q(archive_column) }} < :cutoff
  )
