-- The order in which keys were stored, for settling concurrent re-attestations of one device
-- (`Store::settle_lineage`): the newest stored active key of a lineage wins. SQLite orders by
-- rowid (growing with each insert; keys are never deleted); PostgreSQL adds a sequence column.
CREATE INDEX device_keys_active_lineage ON device_keys (app_id, device_id, environment)
    WHERE revoked_at IS NULL;
