-- Reactivation, step 1 of the lifecycle. A key merged since the lifecycle last ran (its mart
-- row's _batch_id is in (:marker, :upto]) holds the latest extracted version, so an older
-- version of the same key in this history table is removed: the key lives in the mart again.
-- A history row with the SAME _raw_id is an archived copy whose trim a crash interrupted; it
-- is kept, and the trim below completes the move. Only merged keys inside this table's key
-- range [:hist_key_min, :hist_key_max] (history_keys.sql) can match one of its rows, so the
-- bound changes no answer; it keeps the probe to the keys that can be in history.
DELETE FROM {{ hist }}
WHERE EXISTS (
  SELECT 1
  FROM {{ mart }} m
  WHERE m.{{ q(key) }} = {{ hist_table_q }}.{{ q(key) }}
    AND m._batch_id > :marker
    AND m._batch_id <= :upto
    AND m._raw_id <> {{ hist_table_q }}._raw_id
    AND m.{{ q(key) }} >= :hist_key_min
    AND m.{{ q(key) }} <= :hist_key_max
)
