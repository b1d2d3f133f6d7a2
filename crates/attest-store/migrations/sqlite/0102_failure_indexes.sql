-- Failure counts read failures only.
--
-- The risk signals count a request's recent *failures* by key, device and client address on
-- every attestation and assertion. With full indexes those counts walked every decision of the
-- subject in the window, successes included: under load from one address (a NAT, a carrier
-- gateway, a load test) each assertion read every assertion before it, and the server slowed
-- as the log grew. Partial indexes hold only failed decisions, which the query's
-- `code <> 'ok'` lets both SQLite and PostgreSQL use: a count now reads the failures it counts.
DROP INDEX decisions_by_ip;
CREATE INDEX decision_failures_by_key ON decisions (key_id, at) WHERE code <> 'ok';
CREATE INDEX decision_failures_by_device ON decisions (device_id, at) WHERE code <> 'ok';
CREATE INDEX decision_failures_by_ip ON decisions (client_ip, at) WHERE code <> 'ok';
CREATE INDEX decision_failures_by_app ON decisions (app_id, at) WHERE code <> 'ok';
