-- Load one table's batch from the Parquet parts staged in S3 (ot_core/engines/redshift_s3.py).
-- The manifest names exactly this batch's parts, each mandatory: a part missing fails the
-- COPY and with it the landing, instead of loading fewer rows. Parquet columns load by
-- position, so the parts are written in the raw table's column order. Both values are bound
-- parameters; no credentials appear here: the IAM role's trust decides what S3 reads.
COPY {{ target }}
FROM :manifest
IAM_ROLE :iam_role
FORMAT AS PARQUET
MANIFEST
