-- The rows of the smallest mismatching segments, each column as its normalised text, so
-- missing, extra and changed rows (and which columns changed) are found without type noise.
{% import 'compare/_scope.jinja' as s with context %}
SELECT t.{{ q(key) }} AS ot_key{% for f in fields %}, {{ f }} AS ot_f{{ loop.index0 }}{% endfor %}

{{ s.relation() }}
WHERE {{ s.in_ranges() }}
{{ s.scope() }}
