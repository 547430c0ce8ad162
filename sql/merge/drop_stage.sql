DROP TABLE {{ q(stage) }}
