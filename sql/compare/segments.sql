-- One checksum per key segment, computed inside the database: rows and the sum of a 28-bit
-- row hash over type-normalised column text. Only the listed key ranges are read.
SELECT {{ bucket }} AS ot_bucket, COUNT(*) AS ot_rows, SUM({{ row_hash }}) AS ot_sum
FROM (
{% for r in relations %}
  SELECT {{ cols(columns) }} FROM {{ r }}
{% if not loop.last %}
  UNION ALL
{% endif %}
{% endfor %}
) t
WHERE ({% for i in range(n_ranges) %}(t.{{ q(key) }} >= :lo_{{ i }} AND t.{{ q(key) }} < :hi_{{ i }}){% if not loop.last %} OR {% endif %}{% endfor %})
{% if scope_column %}
  AND t.{{ q(scope_column) }} >= :scope_lo AND t.{{ q(scope_column) }} < :scope_hi
{% endif %}
{% if cdc_column %}
  AND t.{{ q(cdc_column) }} < :cdc_hi
{% endif %}
GROUP BY {{ bucket }}
