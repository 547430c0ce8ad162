-- Raw rows in batches the raw trim should already have removed.
SELECT COUNT(*) FROM {{ raw }}
WHERE _batch_id < :first_kept_batch
