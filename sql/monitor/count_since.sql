-- Source rows changed at or after :since (they may have left an earlier counting window).
SELECT COUNT(*) FROM {{ relation }}
WHERE {{ q(column) }} >= :since
