-- Archive: copy the mart rows of one period that are older than the cutoff into that
-- period's history table. Candidates are found by the archive column range (an index on
-- PostgreSQL, the sort key on Redshift), so the cost follows the rows crossing the cutoff.
-- The guard is NOT EXISTS on the TRUE row key (id for path events, order_id otherwise),
-- never on order_id alone (docs/legacy-defects.md#6-archive-guard-too-broad), and with
-- NOT EXISTS, which a NULL cannot defeat
-- (docs/legacy-defects.md#9-not-in-over-a-subquery-with-nulls). Every candidate's key lies
-- in [:key_min, :key_max] and its order_id in [:order_min, :order_max] (crossing.sql, read
-- after the last write to this mart), so those bounds change no answer; they let the probes
-- skip the history and order-mart rows no candidate can match: the cost follows the rows
-- crossing, not the size of history.
INSERT INTO {{ hist }} ({{ cols(columns) }})
SELECT {{ cols(columns, 'm') }}
FROM {{ mart }} m
WHERE m.{{ q(archive_column) }} >= :period_start
  AND m.{{ q(archive_column) }} < :period_end
  AND m.{{ q(archive_column) }} < :cutoff
  AND NOT EXISTS (
    SELECT 1
    FROM {{ hist }} h
    WHERE h.{{ q(key) }} = m.{{ q(key) }}
      AND h.{{ q(key) }} >= :key_min
      AND h.{{ q(key) }} <= :key_max
  )
{% if active_mart %}
  -- orders are archived only once their tracking state has left the mart
  AND NOT EXISTS (
    SELECT 1
    FROM {{ active_mart }} u
    WHERE u.order_id = m.order_id
      AND u.order_id >= :order_min
      AND u.order_id <= :order_max
  )
{% endif %}
