-- The order in which keys were stored, for settling concurrent re-attestations of one device
-- (`Store::settle_lineage`): the newest stored active key of a lineage wins. SQLite uses its
-- rowid, which grows the same way; existing keys are numbered in an arbitrary order, which only
-- matters for lineages that already have several active keys.
ALTER TABLE device_keys ADD COLUMN seq BIGSERIAL;
CREATE INDEX device_keys_active_lineage ON device_keys (app_id, device_id, environment, seq)
    WHERE revoked_at IS NULL;
