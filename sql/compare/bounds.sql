-- Rows in scope on one side, and the key range they span: the first comparison level.
-- Without a column scope each relation's key index answers MIN and MAX on its own (no scan):
-- the rows are then counted by the first checksum level, which reads every row anyway.
{% import 'compare/_scope.jinja' as s with context %}
{% if count %}
SELECT MIN(t.{{ q(key) }}) AS ot_min, MAX(t.{{ q(key) }}) AS ot_max, COUNT(*) AS ot_rows
{{ s.relation() }}
WHERE 1 = 1
{{ s.scope() }}
{% if key_range %}
  AND t.{{ q(key) }} >= :key_lo AND t.{{ q(key) }} <= :key_last
{% endif %}
{% else %}
SELECT MIN(b.ot_min) AS ot_min, MAX(b.ot_max) AS ot_max
FROM (
{% for r in relations %}
  SELECT MIN({{ q(key) }}) AS ot_min, MAX({{ q(key) }}) AS ot_max FROM {{ r }}
{% if key_range %}
  WHERE {{ q(key) }} >= :key_lo AND {{ q(key) }} <= :key_last
{% endif %}
{% if not loop.last %}
  UNION ALL
{% endif %}
{% endfor %}
) b
{% endif %}
