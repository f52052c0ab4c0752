-- Message patterns of common words, newest first, whatever was inserted last.
--
-- A search for `SKU-00` (in a tenth of all messages) wants the newest page of several
-- hundred thousand matching rows. The trigram index can only give all of them, unordered; the
-- time index gives rows newest first but reads every row that does not match until the page
-- is full, so 220,000 new events that do not match cost ~100 ms before the first match. This
-- index keys each trigram of a message with the hour of its event (`<hour>:<trigram>`): the
-- service asks it hour by hour, newest first, and each hour costs its matching rows only.
--
-- The functions are IMMUTABLE because an index expression must be: the hour is taken from
-- the distance to the Unix epoch, which no time zone setting changes, and the trigrams are
-- pg_trgm's own (`show_trgm`). Their bodies are parsed now, so a later search_path cannot
-- change what they call.

-- Whole hours since 1970-01-01 UTC.
CREATE FUNCTION audit_api_event_hour(p_ts timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.floor(
        pg_catalog.date_part('epoch', p_ts - pg_catalog.to_timestamp(0)) / 3600)::bigint;

-- Each trigram prefixed with the hour: '{sku,"ku "}' at hour 7 is '{7:sku,"7:ku "}'.
-- A trigram holds letters, digits, spaces or a 0x-prefixed hash, never a '|'.
CREATE FUNCTION audit_api_hour_keys(p_trigrams text[], p_hour bigint) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.string_to_array(
        p_hour::text || ':' || pg_catalog.array_to_string(p_trigrams, '|' || p_hour::text || ':'),
        '|');

CREATE FUNCTION audit_api_message_hours(p_message text, p_ts timestamptz) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN audit_api_hour_keys(public.show_trgm(p_message), audit_api_event_hour(p_ts));

CREATE INDEX auditevents_message_hours_idx ON auditevents
    USING gin (audit_api_message_hours(message, eventtimestamp));
