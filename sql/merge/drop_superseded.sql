-- Staged rows whose key is still in the mart lost to a newer version there: drop them.
DELETE FROM {{ q(stage) }}
WHERE EXISTS (
  SELECT 1
  FROM {{ mart }} m
  WHERE {% for k in key %}m.{{ q(k) }} = {{ q(stage) }}.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

)
