-- Rows in scope on one side, and the key range they span: the first comparison level.
SELECT MIN(t.{{ q(key) }}) AS ot_min, MAX(t.{{ q(key) }}) AS ot_max, COUNT(*) AS ot_rows
FROM (
{% for r in relations %}
  SELECT {{ cols(columns) }} FROM {{ r }}
{% if not loop.last %}
  UNION ALL
{% endif %}
{% endfor %}
) t
WHERE 1 = 1
{% if scope_column %}
  AND t.{{ q(scope_column) }} >= :scope_lo AND t.{{ q(scope_column) }} < :scope_hi
{% endif %}
{% if cdc_column %}
  AND t.{{ q(cdc_column) }} < :cdc_hi
{% endif %}
{% if key_range %}
  AND t.{{ q(key) }} >= :key_lo AND t.{{ q(key) }} < :key_hi
{% endif %}
