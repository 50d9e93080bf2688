-- Partition layout epochs (docs/integrity.md, "Layout epochs"). After `sealtrail reshard` the
-- pipeline seals into new topics whose partitions are numbered from 0 again, so a row's place in
-- the sealed log is its epoch, partition and offset. Rows written before this migration are all
-- of the first epoch.
ALTER TABLE events ADD COLUMN IF NOT EXISTS layout_epoch UInt32 DEFAULT 1 COMMENT 'Partition layout epoch of sealed_partition';
ALTER TABLE tombstones ADD COLUMN IF NOT EXISTS layout_epoch UInt32 DEFAULT 1 COMMENT 'Partition layout epoch of sealed_partition';
ALTER TABLE checkpoints
    ADD COLUMN IF NOT EXISTS layout_epoch UInt32 DEFAULT 1 COMMENT 'Signed in scheme 2: the partition layout epoch',
    ADD COLUMN IF NOT EXISTS layout_partitions UInt32 DEFAULT 0 COMMENT 'Signed in scheme 2: the layout partition count (0 in scheme 1)',
    ADD COLUMN IF NOT EXISTS closes_epoch Bool DEFAULT false COMMENT 'Signed in scheme 2: the last checkpoint of its partition in its epoch';
ALTER TABLE tenant_checkpoints
    ADD COLUMN IF NOT EXISTS layout_epoch UInt32 DEFAULT 1,
    ADD COLUMN IF NOT EXISTS layout_partitions UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS closes_epoch Bool DEFAULT false;

-- The projection names its columns, so it is made again with the new ones; a checkpoint a running
-- sink inserts between the two statements gets its tenant rows from the backfill after them.
DROP VIEW IF EXISTS tenant_checkpoints_projection;
CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_checkpoints_projection TO tenant_checkpoints AS
SELECT
    tupleElement(head, 1) AS tenant_id,
    sealed_partition, number, scheme, prev_checkpoint_hash, entries_root, entry_count, tenant_heads_root,
    tenant_count, source_offset, dlq_next_offset, created_at, key_id, checkpoint_hash, signature,
    [head] AS tenant_heads,
    sealed_offset,
    layout_epoch, layout_partitions, closes_epoch
FROM checkpoints
ARRAY JOIN checkpoints.tenant_heads AS head;

INSERT INTO tenant_checkpoints
SELECT
    tupleElement(head, 1) AS tenant_id,
    sealed_partition, number, scheme, prev_checkpoint_hash, entries_root, entry_count, tenant_heads_root,
    tenant_count, source_offset, dlq_next_offset, created_at, key_id, checkpoint_hash, signature,
    [head] AS tenant_heads,
    sealed_offset,
    layout_epoch, layout_partitions, closes_epoch
FROM checkpoints
ARRAY JOIN checkpoints.tenant_heads AS head
WHERE (layout_epoch, sealed_partition, number) NOT IN (SELECT layout_epoch, sealed_partition, number FROM tenant_checkpoints);
