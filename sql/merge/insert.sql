-- Insert the staged versions into the mart.
INSERT INTO {{ mart }} ({{ cols(columns + meta) }})
SELECT {{ cols(columns + meta) }}
FROM {{ q(stage) }}
