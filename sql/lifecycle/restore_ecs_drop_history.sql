-- Second half of moving a reactivated order back: delete the history copy of every order row
-- now in the mart (same order_id and same _raw_id) whose order is active again. Bounded by
-- this table's key range (history_keys.sql) like restore_ecs.sql.
DELETE FROM {{ hist }}
WHERE EXISTS (
  SELECT 1
  FROM {{ mart }} m
  JOIN {{ active_mart }} u ON u.order_id = m.order_id
  WHERE m.order_id = {{ hist_table_q }}.order_id
    AND m._raw_id = {{ hist_table_q }}._raw_id
    AND u._batch_id > :marker
    AND u._batch_id <= :upto
    AND u.order_id >= :hist_key_min
    AND u.order_id <= :hist_key_max
)
