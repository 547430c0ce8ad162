-- Delete the mart rows the staged batch replaces: by key only (reviewed defect 12), and only
-- where the staged version is newer, so replaying an old batch can never roll a row back.
-- The version test joins the stage to the mart inside the subquery, so the correlation is
-- a plain key equality: PostgreSQL/Redshift can then drive the delete from the (small)
-- stage through the mart's key index, instead of scanning the whole mart (the cost follows
-- the batch). The mart's key is unique, so m is the row being deleted.
DELETE FROM {{ mart }}
WHERE EXISTS (
  SELECT 1
  FROM {{ q(stage) }} s
  JOIN {{ mart }} m ON {% for k in key %}m.{{ q(k) }} = s.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

  WHERE {% for k in key %}s.{{ q(k) }} = {{ mart_table_q }}.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

{% if version_column %}
    AND (s.{{ q(version_column) }} > m.{{ q(version_column) }}
         OR (s.{{ q(version_column) }} = m.{{ q(version_column) }}
             AND s._raw_id > m._raw_id))
{% else %}
    AND s._raw_id > m._raw_id
{% endif %}
)
