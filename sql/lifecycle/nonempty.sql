-- Which history tables hold at least one row: one statement per cycle, so reactivation
-- probes only tables that can hold a key (a period's table is created ahead, empty).
{% for h in hists %}
SELECT :name_{{ loop.index0 }} AS table_name WHERE EXISTS (SELECT 1 FROM {{ h }})
{% if not loop.last %}UNION ALL{% endif %}

{% endfor %}
