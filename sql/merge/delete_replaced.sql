-- Delete the mart rows the staged batch replaces: by key only (reviewed defect 12), and only
-- where the staged version is newer, so replaying an old batch can never roll a row back.
DELETE FROM {{ mart }}
WHERE EXISTS (
  SELECT 1
  FROM {{ q(stage) }} s
  WHERE {% for k in key %}s.{{ q(k) }} = {{ mart_table_q }}.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

{% if version_column %}
    AND (s.{{ q(version_column) }} > {{ mart_table_q }}.{{ q(version_column) }}
         OR (s.{{ q(version_column) }} = {{ mart_table_q }}.{{ q(version_column) }}
             AND s._raw_id > {{ mart_table_q }}._raw_id))
{% else %}
    AND s._raw_id > {{ mart_table_q }}._raw_id
{% endif %}
)
