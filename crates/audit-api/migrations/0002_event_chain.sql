-- Tamper evidence: every event is a link of its company's hash chain.
--
--   row_hash = SHA-256(prev_hash || canonical_v1(event))
--
-- canonical_v1 (UTF-8; fields in this order, each after a '|'; "-" for NULL; text fields as
-- <octet length>:<bytes> so that no value can imitate a separator):
--   'v1' | chain_seq | id | event time in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ
--        | functionality name | event type name | store id | company id | user | message
--        | status | additional_data as the stored jsonb prints it
-- Names rather than ids: renumbering the catalog cannot break a chain. The first link of a
-- chain has 32 zero bytes as prev_hash. The Rust verifier (audit_core::event_chain) is the
-- second implementation of this; the tests hold the two together.
--
-- The only write path is audit_api_append_events (SECURITY DEFINER): it locks the heads of
-- the chains it extends (in company order: two batches never deadlock), numbers, hashes and
-- inserts the events, and moves the heads, in the caller's transaction. The application's
-- role (audit_api_writer) may call it and read, and may not INSERT, UPDATE or DELETE events
-- directly: an edit needs the owner or a superuser, whose use the database's own logging sees.

DO $$
BEGIN
    IF pg_catalog.current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'the event chain needs a UTF8 database, this one is %',
            pg_catalog.current_setting('server_encoding');
    END IF;
END $$;

ALTER TABLE auditevents
    ADD COLUMN chain_seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash bytea;
ALTER TABLE auditevents_archival
    ADD COLUMN chain_seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash bytea;

-- The verifier reads each chain in order.
CREATE INDEX auditevents_chain_idx ON auditevents (companyid, chain_seq);
CREATE INDEX auditevents_archival_chain_idx ON auditevents_archival (companyid, chain_seq);

-- One head per chain (NULL company is a chain of its own).
CREATE TABLE auditevent_chain_heads (
    companyid bigint,
    chain_seq bigint NOT NULL,
    row_hash bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT auditevent_chain_heads_company UNIQUE NULLS NOT DISTINCT (companyid)
);

-- Links of events archived to S3 (their content is in the archive file): the chain in the
-- database continues across them.
CREATE TABLE auditevent_chain_archived (
    companyid bigint,
    chain_seq bigint NOT NULL,
    prev_hash bytea NOT NULL,
    row_hash bytea NOT NULL,
    archive text NOT NULL,
    CONSTRAINT auditevent_chain_archived_link UNIQUE NULLS NOT DISTINCT (companyid, chain_seq)
);

-- When existing events were chained (once, by this migration).
CREATE TABLE auditevent_chain_genesis (
    chained_at timestamptz NOT NULL DEFAULT now(),
    events bigint NOT NULL,
    chains bigint NOT NULL
);

CREATE FUNCTION audit_api_event_canonical_v1(
    p_seq bigint, p_id bigint, p_ts timestamptz, p_functionality text, p_event_type text,
    p_store bigint, p_company bigint, p_user text, p_message text, p_status text, p_data text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
-- No SET clause: it would stop the planner inlining this into the statements that call it.
AS $$
    SELECT 'v1|' || p_seq || '|' || p_id
        || '|' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || '|' || octet_length(p_functionality) || ':' || p_functionality
        || '|' || octet_length(p_event_type) || ':' || p_event_type
        || '|' || coalesce(p_store::text, '-')
        || '|' || coalesce(p_company::text, '-')
        || '|' || coalesce(octet_length(p_user) || ':' || p_user, '-')
        || '|' || coalesce(octet_length(p_message) || ':' || p_message, '-')
        || '|' || octet_length(p_status) || ':' || p_status
        || '|' || coalesce(octet_length(p_data) || ':' || p_data, '-')
$$;

CREATE FUNCTION audit_api_append_events(
    p_ts text[], p_functionality int[], p_event_type int[], p_store bigint[],
    p_company bigint[], p_user text[], p_message text[], p_status text[], p_data text[])
RETURNS TABLE (id bigint, eventtimestamp timestamptz, functionality text, event_type text,
               storelocationid bigint, companyid bigint, username text, message text,
               status text, additionaldata text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
AS $$
-- Linear in the number of events: arrays are built by appending to PL/pgSQL variables (kept
-- expanded, so each append is in place) and read back with unnest, never by subscript from
-- SQL (a subscript of a flat array of text walks it from the start: quadratic).
DECLARE
    n int := coalesce(array_length(p_ts, 1), 0);
    v_ord bigint[] := '{}'; v_id bigint[] := '{}'; v_ts timestamptz[] := '{}';
    v_fname text[] := '{}'; v_tname text[] := '{}'; v_company bigint[] := '{}';
    v_data text[] := '{}'; v_tail text[] := '{}';
    v_seq bigint[] := '{}'; v_prev bytea[] := '{}'; v_hash bytea[] := '{}';
    h_company bigint[]; h_seq bigint[]; h_hash bytea[];
    r record;
    k int;
    head int := 0;
    seq bigint;
    prev bytea;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF array_length(p_functionality, 1) IS DISTINCT FROM n
       OR array_length(p_event_type, 1) IS DISTINCT FROM n
       OR array_length(p_store, 1) IS DISTINCT FROM n
       OR array_length(p_company, 1) IS DISTINCT FROM n
       OR array_length(p_user, 1) IS DISTINCT FROM n
       OR array_length(p_message, 1) IS DISTINCT FROM n
       OR array_length(p_status, 1) IS DISTINCT FROM n
       OR array_length(p_data, 1) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'audit_api_append_events: arrays of different lengths';
    END IF;
    -- Before any lock: ids, times, stored jsonb and the canonical form after its place, in
    -- chain order (company, then input order).
    FOR r IN
        SELECT i.ord, nextval('auditevents_id_seq') AS new_id, i.company,
               coalesce(i.ts::timestamptz, now()) AS at, f.name::text AS fname,
               t.name::text AS tname, i.data::jsonb::text AS stored_data, i.store, i.usr, i.msg, i.st
        FROM unnest(p_ts, p_functionality, p_event_type, p_store, p_company, p_user,
                    p_message, p_status, p_data)
            WITH ORDINALITY AS i (ts, fid, tid, store, company, usr, msg, st, data, ord)
        JOIN auditfunctionalities f ON f.id = i.fid
        JOIN auditeventtypes t ON t.id = i.tid AND t.functionalityid = i.fid
        ORDER BY i.company NULLS FIRST, i.ord
    LOOP
        v_ord := v_ord || r.ord; v_id := v_id || r.new_id; v_ts := v_ts || r.at;
        v_fname := v_fname || r.fname; v_tname := v_tname || r.tname;
        v_company := v_company || r.company; v_data := v_data || r.stored_data;
        v_tail := v_tail || substr(audit_api_event_canonical_v1(0, r.new_id, r.at, r.fname,
            r.tname, r.store, r.company, r.usr, r.msg, r.st, r.stored_data), 5);
    END LOOP;
    IF coalesce(array_length(v_ord, 1), 0) <> n THEN
        RAISE EXCEPTION 'audit_api_append_events: an event names an unknown functionality or event type';
    END IF;
    INSERT INTO auditevent_chain_heads (companyid, chain_seq, row_hash)
    SELECT DISTINCT c, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
    FROM unnest(p_company) AS c
    ON CONFLICT ON CONSTRAINT auditevent_chain_heads_company DO NOTHING;
    -- The heads, locked in company order (the order the chains were sorted in); held to
    -- the commit, so everything above happens before the wait.
    SELECT array_agg(l.companyid ORDER BY l.companyid NULLS FIRST),
           array_agg(l.chain_seq ORDER BY l.companyid NULLS FIRST),
           array_agg(l.row_hash ORDER BY l.companyid NULLS FIRST)
    INTO h_company, h_seq, h_hash
    FROM (SELECT x.companyid, x.chain_seq, x.row_hash FROM auditevent_chain_heads x
          WHERE x.companyid = ANY (p_company)
             OR (x.companyid IS NULL AND array_position(p_company, NULL) IS NOT NULL)
          ORDER BY x.companyid NULLS FIRST FOR UPDATE) l;
    FOR k IN 1..n LOOP
        IF k = 1 OR v_company[k] IS DISTINCT FROM v_company[k - 1] THEN
            head := head + 1;
            seq := h_seq[head];
            prev := h_hash[head];
        END IF;
        seq := seq + 1;
        v_seq := v_seq || seq;
        v_prev := v_prev || prev;
        prev := sha256(prev || convert_to('v1|' || seq || v_tail[k], 'UTF8'));
        v_hash := v_hash || prev;
    END LOOP;
    INSERT INTO auditevents (id, eventtimestamp, functionalityid, eventtypeid, storelocationid,
                             companyid, username, message, status, additionaldata,
                             chain_seq, prev_hash, row_hash)
    SELECT u.id, u.ts, i.fid, i.tid, i.store, u.company, i.usr, i.msg, i.st, u.data::jsonb,
           u.seq, u.prev, u.hash
    FROM unnest(v_ord, v_id, v_ts, v_company, v_data, v_seq, v_prev, v_hash)
            AS u (ord, id, ts, company, data, seq, prev, hash)
    JOIN unnest(p_functionality, p_event_type, p_store, p_user, p_message, p_status)
            WITH ORDINALITY AS i (fid, tid, store, usr, msg, st, ord)
      ON i.ord = u.ord;
    UPDATE auditevent_chain_heads h
    SET chain_seq = last.seq, row_hash = last.hash, updated_at = now()
    FROM (SELECT DISTINCT ON (u.company) u.company, u.seq, u.hash
          FROM unnest(v_company, v_seq, v_hash) AS u (company, seq, hash)
          ORDER BY u.company, u.seq DESC) last
    WHERE h.companyid IS NOT DISTINCT FROM last.company;
    RETURN QUERY
    SELECT u.id, u.ts, u.fname, u.tname, i.store, u.company, i.usr, i.msg, i.st, u.data
    FROM unnest(v_ord, v_id, v_ts, v_fname, v_tname, v_company, v_data)
            AS u (ord, id, ts, fname, tname, company, data)
    JOIN unnest(p_store, p_user, p_message, p_status) WITH ORDINALITY AS i (store, usr, msg, st, ord)
      ON i.ord = u.ord
    ORDER BY u.ord;
END
$$;

-- Chains the events stored before this migration: per company in (eventtimestamp, id) order,
-- once, and records that it did.
DO $$
DECLARE
    r record;
    chain_company bigint;
    started boolean := false;
    seq bigint := 0;
    prev bytea;
    zero bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    hash bytea;
    total bigint := 0;
    chains bigint := 0;
BEGIN
    FOR r IN
        SELECT e.id, e.eventtimestamp, f.name::text AS fname, t.name::text AS tname,
               e.storelocationid, e.companyid, e.username::text AS usr, e.message,
               e.status::text AS st, e.additionaldata::text AS data
        FROM auditevents e
        JOIN auditfunctionalities f ON f.id = e.functionalityid
        JOIN auditeventtypes t ON t.id = e.eventtypeid
        ORDER BY e.companyid NULLS FIRST, e.eventtimestamp, e.id
    LOOP
        IF NOT started OR r.companyid IS DISTINCT FROM chain_company THEN
            IF started THEN
                INSERT INTO auditevent_chain_heads (companyid, chain_seq, row_hash)
                VALUES (chain_company, seq, prev);
            END IF;
            started := true;
            chain_company := r.companyid;
            seq := 0;
            prev := zero;
            chains := chains + 1;
        END IF;
        seq := seq + 1;
        hash := sha256(prev || convert_to(audit_api_event_canonical_v1(
            seq, r.id, r.eventtimestamp, r.fname, r.tname, r.storelocationid, r.companyid,
            r.usr, r.message, r.st, r.data), 'UTF8'));
        UPDATE auditevents SET chain_seq = seq, prev_hash = prev, row_hash = hash
        WHERE auditevents.id = r.id AND auditevents.eventtimestamp = r.eventtimestamp;
        prev := hash;
        total := total + 1;
    END LOOP;
    IF started THEN
        INSERT INTO auditevent_chain_heads (companyid, chain_seq, row_hash)
        VALUES (chain_company, seq, prev);
    END IF;
    INSERT INTO auditevent_chain_genesis (events, chains) VALUES (total, chains);
END $$;

-- The functions resolve names in this schema only (and pg_catalog first): a caller's
-- search_path cannot substitute a table or an operator.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_api_append_events(text[], int[], int[], bigint[], '
                   'bigint[], text[], text[], text[], text[]) '
                   'SET search_path = pg_catalog, %I, pg_temp', current_schema());
END $$;

-- The application's role: reads, and appends through the function only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_api_writer') THEN
        CREATE ROLE audit_api_writer NOLOGIN;
    END IF;
EXCEPTION
    -- Roles belong to the cluster: another database's migration made it meanwhile.
    WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO audit_api_writer', current_schema());
END $$;
REVOKE ALL ON auditevents, auditevents_archival, auditevent_chain_heads,
    auditevent_chain_archived, auditevent_chain_genesis FROM PUBLIC;
GRANT SELECT ON audit_api_migrations, auditevents, auditevents_archival, auditevent_chain_heads,
    auditevent_chain_archived, auditevent_chain_genesis, auditfunctionalities,
    auditeventtypes TO audit_api_writer;
REVOKE ALL ON FUNCTION audit_api_append_events(text[], int[], int[], bigint[], bigint[],
    text[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_api_append_events(text[], int[], int[], bigint[], bigint[],
    text[], text[], text[], text[]) TO audit_api_writer;
