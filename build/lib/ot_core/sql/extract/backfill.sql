-- First extraction of a table (no watermark yet), or a full refresh: every row before as_of.
-- Read in primary-key order, which the source can stream without sorting.
SELECT {{ cols(columns) }}
FROM {{ source }}
{% if cdc_column %}
WHERE {{ q(cdc_column) }} < :upper
{% endif %}
ORDER BY {{ cols(key) }}
