-- Platform producers (issue 17): a producer key bound to a set of tenants writes events for its
-- tenant_id and for these, and reads nothing. Empty for every other key, and for rows written
-- before this migration.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS platform_tenants Array(String) DEFAULT [] COMMENT 'A platform producer''s other tenants: it writes events for tenant_id and these';
