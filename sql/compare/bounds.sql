-- Rows in scope on one side, and the key range they span: the first comparison level.
{% import 'compare/_scope.jinja' as s with context %}
SELECT MIN(t.{{ q(key) }}) AS ot_min, MAX(t.{{ q(key) }}) AS ot_max, COUNT(*) AS ot_rows
{{ s.relation() }}
WHERE 1 = 1
{{ s.scope() }}
{% if key_range %}
  AND t.{{ q(key) }} >= :key_lo AND t.{{ q(key) }} <= :key_last
{% endif %}
