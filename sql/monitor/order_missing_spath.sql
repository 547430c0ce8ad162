-- Active orders (in the tracking-state mart, not updated within the grace period) with no
-- path event in the path mart or in any history table (the list is discovered at run time).
SELECT u.order_id, u.status, u.update_time
FROM {{ uti }} AS u
WHERE u.update_time < :grace_before
  AND NOT EXISTS (SELECT 1 FROM {{ spath }} AS s WHERE s.order_id = u.order_id)
{% for h in hist %}
  AND NOT EXISTS (SELECT 1 FROM {{ h }} AS h{{ loop.index }} WHERE h{{ loop.index }}.order_id = u.order_id)
{% endfor %}
ORDER BY u.order_id
