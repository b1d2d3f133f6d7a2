-- Every App Attest key's evidence names its receipt status. Keys attested before statuses were
-- recorded were accepted only with a verified receipt, so one with a stored receipt is `valid`
-- and one without is `missing`; reading that from the receipt on each request would put the
-- ~5 KB receipt back on the assertion path, which reads the key without it.
UPDATE device_keys
SET metadata = jsonb_set(metadata::jsonb, '{receiptStatus}',
    to_jsonb(CASE WHEN EXISTS (SELECT 1 FROM device_key_receipts r
                               WHERE r.key_id = device_keys.key_id AND length(r.receipt) > 0)
                  THEN 'valid'::text ELSE 'missing'::text END))::text
WHERE platform = 'ios'
  AND coalesce(metadata::jsonb -> 'receiptStatus', 'null'::jsonb) = 'null'::jsonb;
