-- The rows of the smallest mismatching segments, each column as its normalised text, so
-- missing, extra and changed rows (and which columns changed) are found without type noise.
SELECT t.{{ q(key) }} AS ot_key{% for f in fields %}, {{ f }} AS ot_f{{ loop.index0 }}{% endfor %}

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
