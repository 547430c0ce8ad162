-- Rows whose CDC column is NULL, at a source that declares that column nullable: no window
-- [lower, upper) can select them, so every cycle reads them all, after its window, in key
-- order; the landing drops those already in the mart unchanged (drop_unchanged_overlap).
-- A fast reader reads it in pages after the last key read (integer literals only).
SELECT {{ cols(columns) }}
FROM {{ source }}
WHERE {{ q(cdc_column) }} IS NULL
{% for condition in page %}
  AND {{ condition }}
{% endfor %}
ORDER BY {{ cols(key) }}
{% if limit %}
LIMIT {{ limit }}
{% endif %}
