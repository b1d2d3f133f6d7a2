-- Keys carry their platform, and a sign counter only when their platform has one: App Attest
-- keys count their signatures, Android Key Attestation keys do not (a spent challenge is their
-- replay defence). Keys stored before this migration are App Attest keys.
ALTER TABLE device_keys ADD COLUMN platform TEXT NOT NULL DEFAULT 'ios'
    CHECK (platform IN ('ios', 'android'));
ALTER TABLE device_keys ALTER COLUMN platform DROP DEFAULT;
ALTER TABLE device_keys ALTER COLUMN counter DROP NOT NULL;
ALTER TABLE device_keys ADD CONSTRAINT device_keys_counter_by_platform
    CHECK ((counter IS NOT NULL) = (platform = 'ios'));
