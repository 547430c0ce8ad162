-- Take the job's lock row unless another (unexpired) row exists.
INSERT INTO {{ locks }} (job, token, holder, acquired_at, expires_at)
SELECT :job, :token, :holder, :now, :expires_at
WHERE NOT EXISTS (SELECT 1 FROM {{ locks }} AS l WHERE l.job = :job)
