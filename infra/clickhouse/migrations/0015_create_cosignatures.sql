-- Witness cosignatures of checkpoints (docs/integrity.md, "Witnesses"), as the monitor received
-- them: the C2SP signature line over the checkpoint's note body. Exports carry them, so a verifier
-- holding the witness's key can check that the witness saw (and cosigned) each checkpoint.
CREATE TABLE IF NOT EXISTS cosignatures
(
    layout_epoch     UInt32,
    sealed_partition UInt32,
    number           UInt64,
    checkpoint_hash  String,
    origin           String COMMENT 'The note origin: <log origin>/epoch-E/partition-P',
    witness          String COMMENT 'The witness name in its verifier key',
    cosignature      String COMMENT 'The signature line: em dash, name, base64(key hash, timestamp, signature)',
    received_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (layout_epoch, sealed_partition, number, witness, checkpoint_hash);
