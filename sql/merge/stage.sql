-- Stage one batch: its raw rows deduplicated to the latest version per key.
-- Latest = highest version column (if the table has one), ties broken by _raw_id:
-- the later extraction wins
-- (docs/legacy-defects.md#1-tie-break-missing-in-the-latest-state-ranking).
CREATE TEMP TABLE {{ q(stage) }} AS
SELECT {{ cols(columns + meta) }}
FROM (
  SELECT {{ cols(columns + meta) }},
         ROW_NUMBER() OVER (
           PARTITION BY {{ cols(key) }}
           ORDER BY {% if version_column %}{{ q(version_column) }} DESC, {% endif %}_raw_id DESC
         ) AS ot_rank
  FROM {{ raw }}
  WHERE _batch_id = :batch_id
) ranked
WHERE ot_rank = 1
