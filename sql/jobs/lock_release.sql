-- Release the lock row this run holds (its token), never another run's.
DELETE FROM {{ locks }}
WHERE job = :job AND token = :token
