-- Staged rows that are not newer than the mart's version of their key lost: drop them.
-- Newer = higher version column (if the table has one), ties broken by _raw_id. Run before
-- delete_replaced, which then needs only key equality.
DELETE FROM {{ q(stage) }}
WHERE EXISTS (
  SELECT 1
  FROM {{ mart }} m
  WHERE {% for k in key %}m.{{ q(k) }} = {{ q(stage) }}.{{ q(k) }}{% if not loop.last %} AND {% endif %}{% endfor %}

{% if version_column %}
    AND NOT COALESCE({{ q(stage) }}.{{ q(version_column) }} > m.{{ q(version_column) }}
                     OR ({{ q(stage) }}.{{ q(version_column) }} = m.{{ q(version_column) }}
                         AND {{ q(stage) }}._raw_id > m._raw_id), FALSE)
{% else %}
    AND NOT COALESCE({{ q(stage) }}._raw_id > m._raw_id, FALSE)
{% endif %}
)
