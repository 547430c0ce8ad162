-- Delete the mart rows the staged batch replaces: by key only, no range predicate
-- (docs/legacy-defects.md#12-range-predicate-defeating-the-distribution-key). Every
-- staged row left is newer than the mart's version (drop_superseded ran first), so replaying
-- an old batch can never roll a row back. A plain key equality lets PostgreSQL/Redshift
-- drive the delete from the small stage through the mart's key index instead of scanning
-- the mart: the cost follows the batch.
DELETE FROM {{ mart }}
WHERE EXISTS (
  SELECT 1
  FROM {{ q(stage) }} s
  WHERE {% for k in key %}s.{{ q(k) }} = {{ mart_table_q }}.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

)
