-- Archive: copy the mart rows of one period that are older than the cutoff into that
-- period's history table. Candidates are found by the archive column range (an index on
-- PostgreSQL, the sort key on Redshift), so the cost follows the rows crossing the cutoff.
-- The guard is NOT EXISTS on the TRUE row key (id for path events, order_id otherwise),
-- never on order_id alone (reviewed defect 6), and with NOT EXISTS, which a NULL cannot
-- defeat (reviewed defect 9).
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
  )
{% if active_mart %}
  -- orders are archived only once their tracking state has left the mart
  AND NOT EXISTS (
    SELECT 1
    FROM {{ active_mart }} u
    WHERE u.order_id = m.order_id
  )
{% endif %}
