-- Job lock rows (warehouses without session locks, e.g. Redshift): drop this job's expired row.
DELETE FROM {{ locks }}
WHERE job = :job AND expires_at < :now
