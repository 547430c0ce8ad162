-- Reactivation of an order: its tracking state was merged again (mart_uni_tracking_info row
-- with _batch_id in (:marker, :upto]), so its archived order row moves back from this history
-- table into mart_ecs_order_info. Runs in one transaction with restore_ecs_drop_history.sql.
-- The active orders probed are bounded by this table's key range (history_keys.sql): only
-- those can match one of its rows, so the bound changes no answer.
INSERT INTO {{ mart }} ({{ cols(columns) }})
SELECT {{ cols(columns, 'h') }}
FROM {{ hist }} h
WHERE EXISTS (
    SELECT 1
    FROM {{ active_mart }} u
    WHERE u.order_id = h.order_id
      AND u._batch_id > :marker
      AND u._batch_id <= :upto
      AND u.order_id >= :hist_key_min
      AND u.order_id <= :hist_key_max
  )
  AND NOT EXISTS (
    SELECT 1
    FROM {{ mart }} m
    WHERE m.order_id = h.order_id
  )
