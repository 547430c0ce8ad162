-- Trim a raw table: delete the batches below the first one that is unmerged or still inside
-- the trim window (computed on the as_of clock and bound as :first_kept_batch).
DELETE FROM {{ raw }}
WHERE _batch_id < :first_kept_batch
