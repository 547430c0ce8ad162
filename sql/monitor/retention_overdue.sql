-- Mart rows older than the retention cutoff that no open exception names (and, for the
-- order mart, whose order is no longer tracked: the lifecycle keeps an active order's row).
SELECT m.{{ q(key) }} AS row_key, m.{{ q(column) }} AS archive_value
FROM {{ mart }} AS m
WHERE m.{{ q(column) }} < :cutoff
  AND NOT EXISTS (
    SELECT 1 FROM {{ exceptions }} AS e
    WHERE e.source_table = :source_table
      AND e.row_key = m.{{ q(key) }}
      AND e.resolved_at IS NULL)
{% if active_mart %}
  AND NOT EXISTS (
    SELECT 1 FROM {{ active_mart }} AS a
    WHERE a.order_id = m.order_id)
{% endif %}
ORDER BY m.{{ q(column) }}
