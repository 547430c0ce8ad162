-- Extract the rows a timestamp-CDC table changed in [lower, upper).
-- lower = previous watermark - lookback (the overlap catches late commits); upper = as_of.
-- Ordered so _raw_id follows extraction order deterministically.
SELECT {{ cols(columns) }}
FROM {{ source }}
WHERE {{ q(cdc_column) }} >= :lower
  AND {{ q(cdc_column) }} < :upper
ORDER BY {{ q(cdc_column) }}, {{ cols(key) }}
