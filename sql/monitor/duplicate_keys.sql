-- Keys present more than once in a mart (DuckDB marts declare no primary key).
SELECT {{ cols(key) }}, COUNT(*) AS copies
FROM {{ mart }}
GROUP BY {{ cols(key) }}
HAVING COUNT(*) > 1
ORDER BY COUNT(*) DESC
