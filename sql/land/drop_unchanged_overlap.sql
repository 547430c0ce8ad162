-- The lookback overlap re-reads rows the previous batch already landed (and every cycle
-- re-reads the rows whose CDC value is NULL). Drop from this batch the re-read rows whose
-- exact content is already the mart's current version, so a cycle with nothing new lands
-- nothing (and counts nothing twice). Null-safe comparison on
-- every column; the key equality lets the mart's key index drive the lookup.
DELETE FROM {{ raw }}
WHERE {{ raw_table_q }}._batch_id = :batch_id
{% if cdc_column %}
  AND ({{ raw_table_q }}.{{ q(cdc_column) }} < :overlap_end
       OR {{ raw_table_q }}.{{ q(cdc_column) }} IS NULL)
{% endif %}
  AND EXISTS (
    SELECT 1
    FROM {{ mart }} m
    WHERE {% for k in key %}m.{{ q(k) }} = {{ raw_table_q }}.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

{% for c in compare %}
      AND (m.{{ q(c) }} = {{ raw_table_q }}.{{ q(c) }} OR (m.{{ q(c) }} IS NULL AND {{ raw_table_q }}.{{ q(c) }} IS NULL))
{% endfor %}
  )
