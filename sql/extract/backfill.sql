-- First extraction of a table (no watermark yet), or a full refresh: every row before as_of.
-- Read in primary-key order, which the source can stream without sorting. A fast reader
-- reads it in pages (after the last row read) or key ranges: integer literals only.
SELECT {{ cols(columns) }}
FROM {{ source }}
WHERE 1 = 1
{% if cdc_column %}
  AND {{ q(cdc_column) }} < :upper
{% endif %}
{% for condition in page %}
  AND {{ condition }}
{% endfor %}
ORDER BY {{ cols(key) }}
{% if limit %}
LIMIT {{ limit }}
{% endif %}
