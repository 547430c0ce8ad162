-- Rows of one relation whose column falls in [:lo, :hi) (epoch seconds computed in Python).
SELECT COUNT(*) FROM {{ relation }}
WHERE {{ q(column) }} >= :lo AND {{ q(column) }} < :hi
