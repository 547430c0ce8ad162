-- One checksum per key segment, computed inside the database: rows and the sum of a 28-bit
-- row hash over type-normalised column text. Only the listed key ranges are read.
{% import 'compare/_scope.jinja' as s with context %}
SELECT {{ bucket }} AS ot_bucket, COUNT(*) AS ot_rows, SUM({{ row_hash }}) AS ot_sum
{{ s.relation() }}
WHERE {{ s.in_ranges() }}
{{ s.scope() }}
GROUP BY {{ bucket }}
