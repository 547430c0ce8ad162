-- The key range of every history table, in one statement per cycle. An empty table (a
-- period's table is created ahead) has a NULL range and is not probed at all. Reactivation
-- probes only the keys merged since it last looked that fall inside a table's range: new
-- path events and updates of recent orders lie above the range of what was archived months
-- ago, so the probes follow the keys that can be in history, not every key merged.
-- (A primary-key index answers each MIN/MAX on PostgreSQL; DuckDB reads it from its
-- column statistics.)
{% for h in hists %}
SELECT :name_{{ loop.index0 }} AS table_name,
       MIN({{ q(h.key) }}) AS key_min,
       MAX({{ q(h.key) }}) AS key_max
FROM {{ h.relation }}
{% if not loop.last %}UNION ALL{% endif %}

{% endfor %}
