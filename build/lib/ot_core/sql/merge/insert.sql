-- Insert the staged versions into the mart.
INSERT INTO {{ mart }} ({{ cols(columns + ['_raw_id', '_batch_id']) }})
SELECT {{ cols(columns + ['_raw_id', '_batch_id']) }}
FROM {{ q(stage) }}
