-- Extract the rows a timestamp-CDC table changed in [lower, upper).
-- lower = previous watermark - lookback (the overlap catches late commits); upper = as_of.
-- Ordered so _raw_id follows extraction order deterministically. A fast reader reads it in
-- pages after the last row read (integer literals only).
SELECT {{ cols(columns) }}
FROM {{ source }}
WHERE {{ q(cdc_column) }} >= :lower
  AND {{ q(cdc_column) }} < :upper
{% for condition in page %}
  AND {{ condition }}
{% endfor %}
ORDER BY {{ q(cdc_column) }}, {{ cols(key) }}
{% if limit %}
LIMIT {{ limit }}
{% endif %}
